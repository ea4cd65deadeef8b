"""Writing many scalar rate variables at once, cheaply, on every backend.

`RateWriter.write(indices, values)` assigns `values[k]` to `variables[indices[k]]`
through the backend's `variables` module: on JAX after `model.jax_state_sync()`
(docs/architecture.md, "JAX state"), on TensorFlow many at once in one `tf.function`.
"""

from keras_dropouts import backend


class RateWriter:
    """Assigns float values to a fixed list of scalar variables of `model`."""

    def __init__(self, model, variables):
        self.model = model
        self.variables = list(variables)
        self._assign = backend.variables.Assigner(self.variables)

    def write(self, indices, values):
        """Assigns `values[k]` to `self.variables[indices[k]]`."""
        if not indices:
            return
        backend.variables.sync(self.model)
        self._assign(indices, values)
