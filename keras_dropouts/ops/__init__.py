"""The public functional ops: each checks its arguments, then calls `keras_dropouts.backend`."""

from keras_dropouts.ops.divergence import (
    binary_symmetric_kl,
    mean_squared_difference,
    reduce_consistency,
    symmetric_kl,
)
from keras_dropouts.ops.drop_block import drop_block
from keras_dropouts.ops.dropout import drop_path, dropout
from keras_dropouts.ops.prob_drop_block import prob_drop_block
from keras_dropouts.ops.stochastic_residual import stochastic_residual

__all__ = [
    "binary_symmetric_kl",
    "drop_block",
    "drop_path",
    "dropout",
    "mean_squared_difference",
    "prob_drop_block",
    "reduce_consistency",
    "stochastic_residual",
    "symmetric_kl",
]
