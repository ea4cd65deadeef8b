"""Host-side variable writes on torch: `common`'s."""

from keras_dropouts.backend.common.variables import Assigner, sync  # noqa: F401
