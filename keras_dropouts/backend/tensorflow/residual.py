"""The compute-skipping residual with replica-independent noise (see `noise`)."""

from keras_dropouts.backend.common import residual as common
from keras_dropouts.backend.tensorflow import noise


def stochastic_residual(x, branch, rate, seed, buckets, variables=(), shortcut=None):
    """`common.stochastic_residual` with `noise.uniform` (arguments: common's)."""
    return common.stochastic_residual(x, branch, rate, seed, buckets, variables, noise.uniform, shortcut=shortcut)
