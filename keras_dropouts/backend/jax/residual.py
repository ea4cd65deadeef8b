"""The compute-skipping residual on JAX: each bucket rematerialised, the branch's state
writes carried out of the switch.

Reverse mode through `jax.lax.switch` makes every bucket return the residuals (saved
activations) of all buckets, zeros where it did not compute them, and XLA copies them out
of the conditional: on the CPU the whole batch through the switch cost 1.94x the plain
blocks, and a quarter of the batch 1.38x instead of 0.25x (`benchmarks/diag_cond_cpu.py`).
Each bucket therefore runs under `jax.checkpoint`: only its inputs cross the conditional,
and the backward pass recomputes the chosen bucket's forward inside it (whole batch 0.99x,
a quarter 0.25x, three quarters 0.71x there).

`jax.lax.switch` traces each bucket in its own scope: a variable the branch writes
(BatchNorm statistics, a dropout layer's seed state) would hold a value that cannot
leave that trace. Each bucket therefore runs in its own `keras.StatelessScope` fed
with the variables' current values, returns the values they end with, and the
writes are made after the switch.

Under a distribution (`keras.distribution.DataParallel`) each batch shard draws its
own subset, so the gathers stay on their device (`common`'s `shards`).
"""

import jax
import keras

from keras_dropouts.backend.common import residual as common
from keras_dropouts.backend.jax import noise


def switch(index, fns, operands, variables):
    """`common.switch` with each bucket under `jax.checkpoint` and the writes of
    `variables` carried out of the switch."""
    variables = list(variables)
    written = [v for v in variables if not v.trainable]  # the forward pass writes only state
    values = [v.value for v in variables]

    def scoped(fn):
        def run(operands, values):
            return common.scoped_run(fn, operands, list(zip(variables, values)), written)

        return jax.checkpoint(run)

    y, ends = jax.lax.switch(index, [scoped(fn) for fn in fns], tuple(operands), values)
    for v, end in zip(written, ends):
        v.assign(end)
    return y


def batch_shards():
    """How many shards the active distribution splits the batch into (its device mesh's
    size along the batch axis: `DataParallel`, `ModelParallel`), 1 without one."""
    distribution = keras.distribution.distribution()
    name = getattr(distribution, "batch_dim_name", None)
    if name is None:
        return 1
    mesh = distribution.device_mesh
    return dict(zip(mesh.axis_names, mesh.shape)).get(name, 1)


def stochastic_residual(x, branch, rate, seed, buckets, variables=(), shortcut=None):
    """`common.stochastic_residual` with JAX's noise and `switch`, a subset per batch
    shard under a distribution (arguments: common's)."""
    return common.stochastic_residual(
        x, branch, rate, seed, buckets, variables, noise.uniform, switch, shortcut, batch_shards()
    )
