"""The running-mean tracker on JAX: `common`'s."""

from keras_dropouts.backend.common.tracker import result, update  # noqa: F401
