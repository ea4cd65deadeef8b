"""The update and read of R-Drop's running mean of the consistency term.

The state is one variable `[total, count]`, updated by one add per step (one fused
kernel on XLA, one variable assignment on TF).
"""

from keras import ops


def update(state, value):
    """`state += [value, 1]`.

    Args:
        state: The metric's float variable of shape (2,).
        value: A scalar tensor.
    """
    state.assign_add(ops.stack([ops.cast(value, state.dtype), ops.ones((), state.dtype)]))


def result(state):
    """`total / max(count, 1)` of the state variable."""
    state = ops.convert_to_tensor(state)  # one read of the variable
    return state[0] / ops.maximum(state[1], 1.0)
