"""Block masks on JAX: flat noise, and pools in int8 (XLA pools it everywhere)."""

from keras_dropouts.backend.common.blocks import BlockMasks
from keras_dropouts.backend.jax import gamma, noise

_MASKS = BlockMasks(noise.uniform, gamma.exact_gamma, pool_dtype="int8")
drop_block = _MASKS.drop_block
prob_drop_block = _MASKS.prob_drop_block
