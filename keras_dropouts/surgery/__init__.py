"""Model surgery: structured dropout and stochastic depth for models you did not write.

- `swap_dropout(model)`: stock `Dropout` / `SpatialDropout*` -> `ScheduledDropout`, and
  other libraries' per-sample drop-path layers -> `keras_dropouts.layers.DropPath`, in
  the graph and inside subclassed layers (keras-hub blocks), so the callbacks can
  schedule their rates without retracing.
- `insert_drop_path(model, rate, depth_rule)`: a `DropPath` on the residual branch of
  every residual addition (`keras.layers.Add` or `+`) of a functional model; with
  `skip_compute=True` a `StochasticResidual` around each branch that can be cut out
  of the graph (`residual_branch`), so dropped branches cost no compute.
- `insert_drop_block(model, rate, block_size, after)`: DropBlock after chosen layers and
  on the skip connections of the residual blocks they close.

Each returns a new model (layers copied from their configs, weights copied) and leaves
the input model unchanged. The layout of this package is described in
`docs/architecture.md`.
"""

from keras_dropouts.surgery._convert import to_scheduled_dropout
from keras_dropouts.surgery._model import SurgeryModel
from keras_dropouts.surgery.drop_block import insert_drop_block
from keras_dropouts.surgery.drop_path import insert_drop_path
from keras_dropouts.surgery.swap import swap_dropout

__all__ = ["SurgeryModel", "insert_drop_block", "insert_drop_path", "swap_dropout", "to_scheduled_dropout"]
