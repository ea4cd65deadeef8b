"""The exact-gamma table as a concrete JAX array, even when first used inside a trace."""

import jax

from keras_dropouts.backend.common import gamma as common


def constant(table):
    """`table` as a concrete array, never a tracer."""
    with jax.ensure_compile_time_eval():
        return jax.numpy.asarray(table)


def exact_gamma(rate, sizes, blocks):
    """`common.gamma.exact_gamma` with a trace-proof table (see `constant`)."""
    return common.exact_gamma(rate, sizes, blocks, constant)
