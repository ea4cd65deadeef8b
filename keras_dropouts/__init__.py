"""keras-dropouts: modern dropout regularisers for Keras 3."""

from keras_dropouts import callbacks, layers, models, ops, schedules, surgery
from keras_dropouts.version import __version__

__all__ = ["callbacks", "layers", "models", "ops", "schedules", "surgery", "__version__"]
