"""In-step rate schedules on JAX (see `backend/common/rate_step.py`).

`train_step(state, data)` is pure: the step comes from the optimizer variables in
`state` (reading `optimizer.iterations` inside the trace would give its trace-time
value), and the leaders' rates replace their variables' entries of the
non-trainable part of `state`; the fit loop carries them to the next step and syncs
them into the variables at the end of the epoch.
"""

import jax
from keras import ops

from keras_dropouts._internals import jax_state_parts, jax_state_with_non_trainable, optimizer_step_counter


def step_reader(model):
    """`read(state)`: the optimizer's update count, from the `state` that `model`'s
    `train_step(state, data)` receives (a traced value inside the step)."""
    counter, every = optimizer_step_counter(model.optimizer)
    slot = [id(v) for v in model.optimizer.variables].index(id(counter))

    def read(state):
        _, optimizer_values = jax_state_parts(state)
        return optimizer_values[slot] // every

    return read


def make_step(model, original, rates):
    """The wrapped step: rates written into the non-trainable state."""
    read_step = step_reader(model)
    non_trainable = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
    rate_slots = [non_trainable[id(v)] for v in rates.variables]
    knot_slots = [non_trainable[id(layer.rate_schedule_variable)] for layer in rates.knot_leaders]

    def train_step(state, data):
        non_trainable_values, _ = jax_state_parts(state)
        step = read_step(state)
        new = rates.as_list(step, [non_trainable_values[i] for i in knot_slots])
        non_trainable_values = list(non_trainable_values)
        for slot, rate in zip(rate_slots, new):
            non_trainable_values[slot] = rate
        return original(jax_state_with_non_trainable(state, non_trainable_values), data)

    return train_step


def scalar_shape(fn, step_dtype):
    """The shape of `fn(step)` traced with a scalar `step` (nothing is computed)."""
    out = jax.eval_shape(lambda s: ops.convert_to_tensor(fn(s)), jax.ShapeDtypeStruct((), step_dtype))
    return tuple(out.shape)
