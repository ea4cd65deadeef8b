"""Host-side variable writes on JAX: sync the state out of the fit loop first.

Mid-epoch the JAX state lives outside the variables: `model.jax_state_sync()` (what
reading `Callback.model` does; docs/architecture.md, "JAX state") writes it back, and after the sync the
fit loop re-reads every variable before the next step, so a new rate is used at the
very next step. Writing into `model._jax_state` instead does *not* work: Keras'
attribute tracking stores copies of those lists, so the loop never sees such writes.
The sync (one pass over all model variables) is the price of a mid-epoch rate
change on JAX; it is paid only on steps where a rate actually changes.

Host values are copied into a buffer of JAX's own before they are assigned: on CPU,
`variable.assign(numpy_array)` can keep a zero-copy view of the NumPy array's memory,
and with Keras 3.8 / JAX 0.4.38 and JAX's persistent compilation cache such a
variable has been seen holding other bytes after a `fit` (the NumPy array freed;
plain Keras shows it too: benchmarks/diag_jax_persistent_cache.py).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from keras_dropouts.backend.common import variables as common
from keras_dropouts.backend.common.variables import read_scalars  # noqa: F401


def write(variable, value):
    """Assigns the host value `value` to `variable`, from a copy JAX owns (see the
    module docstring); a JAX array is assigned as it is."""
    if not isinstance(value, jax.Array):
        value = jnp.array(np.asarray(value), dtype=variable.dtype, copy=True)
    variable.assign(value)


class Assigner(common.Assigner):
    """`common.variables.Assigner`, writing through `write`."""

    _write = staticmethod(write)


@functools.lru_cache(maxsize=64)
def _copies(n):
    # One dispatch for n copies; the outputs of a compiled function are n buffers.
    return jax.jit(lambda x: tuple(jnp.broadcast_to(x, (n,))[k] for k in range(n)))


def fill(variables, value):
    """Assigns the scalar `value` to every variable of `variables`, each its own buffer:
    a JAX variable keeps the array it is given, and a step that donates its state must
    not receive one buffer twice. One compiled dispatch makes all the copies."""
    variables = list(variables)
    if not variables:
        return
    for variable, copy in zip(variables, _copies(len(variables))(value)):
        variable.assign(copy)


def sync(model):
    """`model.jax_state_sync()` where the model has one."""
    if hasattr(model, "jax_state_sync"):
        model.jax_state_sync()
