"""The backend's implementations, chosen once, at import (docs/architecture.md).

As Keras' own `keras/src/backend/__init__.py` does: the running backend's package is
imported here and its modules are what the rest of `keras_dropouts` uses
(`from keras_dropouts.backend import blocks, consistency, dropout, ...`). Each
backend package holds only what that backend does differently; `common` holds the
`keras.ops` reference implementations. Nothing else in the package asks which
backend runs (except `_internals.py`, the Keras-internals module).
"""

import keras

_NAME = keras.backend.backend()
IS_TORCH = _NAME == "torch"

if _NAME == "torch":
    from keras_dropouts.backend.torch import (
        blocks,
        consistency,
        dropout,
        gamma,
        noise,
        rate_step,
        residual,
        tracker,
        variables,
    )
elif _NAME == "jax":
    from keras_dropouts.backend.jax import (
        blocks,
        consistency,
        dropout,
        gamma,
        noise,
        rate_step,
        residual,
        tracker,
        variables,
    )
elif _NAME == "tensorflow":
    from keras_dropouts.backend.tensorflow import (
        blocks,
        consistency,
        dropout,
        gamma,
        noise,
        rate_step,
        residual,
        tracker,
        variables,
    )
else:  # numpy / openvino: the `keras.ops` reference implementations
    from keras_dropouts.backend.common import (
        blocks,
        consistency,
        dropout,
        gamma,
        noise,
        rate_step,
        residual,
        tracker,
        variables,
    )

__all__ = [
    "IS_TORCH",
    "blocks",
    "consistency",
    "dropout",
    "gamma",
    "noise",
    "rate_step",
    "residual",
    "tracker",
    "variables",
]
