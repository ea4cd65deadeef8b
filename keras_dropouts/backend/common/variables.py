"""Host-side writes of many scalar variables at once (the schedule callbacks' rates).

The portable path: nothing to sync, one `variable.assign` per written value.
"""


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
            self.variables[i].assign(value)
