"""The backend's implementations, chosen once, at import (docs/architecture.md).

As Keras' own `keras/src/backend/__init__.py` does: the running backend's package is
imported here and its modules are what the rest of `keras_dropouts` uses
(`from keras_dropouts.backend import blocks, consistency, dropout, ...`). Each
backend package holds only what that backend does differently; `common` holds the
`keras.ops` reference implementations. Nothing else in the package asks which
backend runs (except `_internals.py`, the Keras-internals module).
"""

import importlib

import keras

_NAME = keras.backend.backend()
IS_TORCH = _NAME == "torch"

# The modules every backend package has (`common` re-exported where nothing differs).
_MODULES = ("blocks", "consistency", "dropout", "gamma", "noise", "rate_step", "residual", "tracker", "variables")
# numpy / openvino run the `keras.ops` reference implementations.
_PACKAGE = _NAME if _NAME in ("jax", "tensorflow", "torch") else "common"

for _module in _MODULES:
    globals()[_module] = importlib.import_module(f"keras_dropouts.backend.{_PACKAGE}.{_module}")
del _module

__all__ = ["IS_TORCH", *_MODULES]
