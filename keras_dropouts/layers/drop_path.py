"""DropPath: stochastic depth for residual branches (Huang et al. 2016)."""

import keras

from keras_dropouts.layers.base import RateLayer
from keras_dropouts import _checks
from keras_dropouts.ops.dropout import (
    _dropout,
    check_drop_path_mode,
    check_drop_path_rank,
    path_noise_shape,
)


@keras.saving.register_keras_serializable(package="keras_dropouts")
class DropPath(RateLayer):
    """Drops the whole residual branch of a sample with probability `rate`.

    Put it on the branch output, before the residual add: `x + DropPath(r)(f(x))`.
    Kept samples are scaled by 1/(1-rate), so expectations are unchanged; at
    inference it is the identity. `mode="batch"` drops the branch of the whole batch
    at once (torchvision's `StochasticDepth(mode="batch")`); `scale_by_keep=False`
    keeps the kept samples unscaled in training (timm's option; the block's expected
    output then shrinks by 1-rate in training, and inference is still the identity).
    The branch is computed for every sample; `StochasticResidual` skips the work of
    the dropped ones. For a network of `depth` blocks the usual rule
    (and `LateDropout(..., depth_rule=True)`) is rates `linspace(0, rate, depth)`.

    Args:
        rate: Float in [0, 1], the probability of dropping a sample's branch.
        seed: Optional int seed.
        mode: `"row"` (default: one draw per sample) or `"batch"` (one draw for
            the whole batch).
        scale_by_keep: True (default) scales kept samples by 1/(1-rate); False
            leaves them unscaled.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Floating-point tensor with the batch on axis 0.
        training: Python bool; the branch is dropped only when True.

    Example:
    >>> x = keras.Input((16,))
    >>> y = keras.layers.Add()([x, DropPath(0.1)(keras.layers.Dense(16)(x))])
    >>> whole_batch = DropPath(0.1, mode="batch", scale_by_keep=False)
    """

    def __init__(self, rate, seed=None, mode="row", scale_by_keep=True, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        self.mode = check_drop_path_mode(mode)
        self.scale_by_keep = _checks.check_bool(scale_by_keep, "scale_by_keep")
        self._build_at_construction()

    def call(self, inputs, training=False):
        self._check_inputs(inputs)
        check_drop_path_rank(inputs, "inputs", type(self).__name__)
        if not training:
            return inputs
        return _dropout(
            inputs,
            self.rate_source,
            path_noise_shape(inputs, self.mode),
            self.seed_generator,
            self.scale_by_keep,
        )

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "scale_by_keep": self.scale_by_keep})
        return config
