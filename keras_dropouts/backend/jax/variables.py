"""Host-side variable writes on JAX: sync the state out of the fit loop first.

Mid-epoch the JAX state lives outside the variables: `model.jax_state_sync()` (what
reading `Callback.model` does; docs/architecture.md, "JAX state") writes it back, and after the sync the
fit loop re-reads every variable before the next step, so a new rate is used at the
very next step. Writing into `model._jax_state` instead does *not* work: Keras'
attribute tracking stores copies of those lists, so the loop never sees such writes.
The sync (one pass over all model variables) is the price of a mid-epoch rate
change on JAX; it is paid only on steps where a rate actually changes.
"""

from keras_dropouts.backend.common.variables import Assigner  # noqa: F401


def sync(model):
    """`model.jax_state_sync()` where the model has one."""
    if hasattr(model, "jax_state_sync"):
        model.jax_state_sync()
