"""The running-mean tracker on TensorFlow: `common`'s."""

from keras_dropouts.backend.common.tracker import result, update  # noqa: F401
