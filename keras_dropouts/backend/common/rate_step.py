"""In-step rate schedules: the train-step wrapper, and whether a schedule traces.

`make_step(model, original, rates)` returns a step function that computes the
scheduled rates (`rates`: the callbacks' `_in_step._Rates`, one rate per group
leader) from the optimizer's step counter, writes them into the leaders' rate
variables, then runs `original`. This portable version is graph-style (TensorFlow):
in-graph reads of the counter and assigns of the variables, which automatic control
dependencies order before the forward pass. See docs/architecture.md.
"""

from keras import ops

from keras_dropouts._internals import optimizer_step_counter


def make_step(model, original, rates):
    """The wrapped step (see the module docstring)."""
    counter, every = optimizer_step_counter(model.optimizer)
    knot_vars = [layer.rate_schedule_variable for layer in rates.knot_leaders]

    def train_step(*args, **kwargs):
        new = rates.as_vector(counter.value // every, [v.value for v in knot_vars])
        for k, v in enumerate(rates.variables):  # the vector measured faster on TF
            v.assign(new[k])
        return original(*args, **kwargs)

    return train_step


def scalar_shape(fn, step_dtype):
    """The shape of `fn(step)` for a scalar tensor `step` (eager call)."""
    return tuple(ops.convert_to_tensor(fn(ops.convert_to_tensor(0, step_dtype))).shape)
