"""Functional tensor ops built only on `keras.ops` / `keras.random`."""

from keras_dropouts.ops.dropout import drop_path, dropout

__all__ = ["dropout", "drop_path"]
