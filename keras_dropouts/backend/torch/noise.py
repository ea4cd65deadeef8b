"""torch's `keras.ops` path draws `common`'s noise (the eager path: `generators`)."""

from keras_dropouts.backend.common.noise import uniform  # noqa: F401
