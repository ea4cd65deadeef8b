"""Host-side reads and writes of many scalar variables at once (the schedule callbacks'
rates, read when a `fit` starts and shared out when it ends).

The portable path: nothing to sync, one `variable.assign` per written value, one
stacked read for many values.
"""

import numpy as np
from keras import ops


def write(variable, value):
    """Assigns the host value `value` (a Python number, a NumPy array or scalar) to
    `variable`."""
    variable.assign(value)


def sync(model):
    """Makes `model`'s variables hold the live state before a host write (nothing to
    do where the variables are the state)."""
    del model


class Assigner:
    """`assigner(indices, values)`: `variables[indices[k]].assign(values[k])`.

    Args:
        variables: The scalar variables, in a fixed order.
    """

    def __init__(self, variables):
        self.variables = list(variables)

    def __call__(self, indices, values):
        for i, value in zip(indices, values):
            self._write(self.variables[i], value)

    _write = staticmethod(write)


def read_scalars(variables):
    """The values of scalar `variables` as one float32 NumPy vector: one stacked read
    and one device-to-host transfer, not one per variable."""
    if not variables:
        return np.zeros((0,), "float32")
    return np.asarray(ops.convert_to_numpy(ops.stack([ops.cast(v.value, "float32") for v in variables])))


def fill(variables, value):
    """Assigns the scalar `value` to every variable of `variables` (assign copies the
    value into each variable's own storage)."""
    for variable in variables:
        variable.assign(value)
