"""Dropout with JAX's flat noise draw."""

from keras_dropouts.backend.common import dropout as common
from keras_dropouts.backend.jax import noise


def dropout(x, rate, noise_shape, seed, scale_by_keep=True):
    """`common.dropout.dropout` with `noise.uniform` (see there for the arguments)."""
    return common.dropout(x, rate, noise_shape, seed, noise.uniform, scale_by_keep)
