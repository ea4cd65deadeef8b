"""Functional tensor ops built only on `keras.ops` / `keras.random`."""

from keras_dropouts.ops.drop_block import drop_block
from keras_dropouts.ops.dropout import drop_path, dropout
from keras_dropouts.ops.prob_drop_block import prob_drop_block

__all__ = ["drop_block", "prob_drop_block", "dropout", "drop_path"]
