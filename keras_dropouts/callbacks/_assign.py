"""Writing many scalar rate variables at once, cheaply, on every backend.

`RateWriter.write(indices, values)` assigns `values[k]` to `variables[indices[k]]`.
The portable path is `variable.assign`, preceded on JAX by `model.jax_state_sync()`
(what reading `Callback.model` does, DESIGN.md §2): mid-epoch the JAX state lives
outside the variables, and after the sync the fit loop re-reads every variable
before the next step, so the new rate is used at the very next step.

Note: writing into `model._jax_state` instead does *not* work: Keras' attribute
tracking stores copies of those lists, so the loop never sees such writes. The
sync (one pass over all model variables) is therefore the price of a mid-epoch
rate change on JAX; it is paid only on steps where a rate actually changes.

TensorFlow branch: one `tf.function` assigns all changed variables from one
float32 vector (one dispatch instead of one eager op per variable).
"""

import keras
import numpy as np


class RateWriter:
    """Assigns float values to a fixed list of scalar variables of `model`."""

    def __init__(self, model, variables):
        self.model = model
        self.variables = list(variables)
        self.backend = keras.backend.backend()
        self._tf_fn = None

    def write(self, indices, values):
        """Assigns `values[k]` to `self.variables[indices[k]]`."""
        if not indices:
            return
        if self.backend == "jax" and hasattr(self.model, "jax_state_sync"):
            self.model.jax_state_sync()
        if self.backend == "tensorflow" and len(indices) > 4:
            self._write_tf(indices, values)
            return
        for i, value in zip(indices, values):
            self.variables[i].assign(value)

    def _write_tf(self, indices, values):
        import tensorflow as tf

        if self._tf_fn is None:
            tf_vars = [v.value for v in self.variables]

            @tf.function(reduce_retracing=True)
            def assign_all(idx, vals):
                # One graph: gather the selected values into their variables.
                full = tf.tensor_scatter_nd_update(
                    tf.stack([v.read_value() for v in tf_vars]), idx[:, None], vals
                )
                for k, var in enumerate(tf_vars):
                    var.assign(full[k])

            self._tf_fn = assign_all
        self._tf_fn(
            tf.constant(np.asarray(indices, "int32")), tf.constant(np.asarray(values, "float32"))
        )
