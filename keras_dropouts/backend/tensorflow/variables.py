"""Host-side variable writes on TensorFlow: more than four at once in one `tf.function`
(one dispatch instead of one eager op per variable)."""

import numpy as np
import tensorflow as tf

from keras_dropouts.backend.common import variables as common
from keras_dropouts.backend.common.variables import fill, sync, write  # noqa: F401


def read_scalars(variables):
    """The values of scalar `variables` as one float32 NumPy vector (one transfer;
    `Tensor.numpy()`: NumPy 2 warns when `np.array` converts a TensorFlow tensor)."""
    if not variables:
        return np.zeros((0,), "float32")
    return tf.stack([tf.cast(v.value, tf.float32) for v in variables]).numpy()


class Assigner(common.Assigner):
    """`common.variables.Assigner`, assigning all changed variables from one float32
    vector when more than four change."""

    def __init__(self, variables):
        super().__init__(variables)
        self._fn = None

    def __call__(self, indices, values):
        if len(indices) <= 4:
            super().__call__(indices, values)
            return
        if self._fn is None:
            tf_vars = [v.value for v in self.variables]

            @tf.function(reduce_retracing=True)
            def assign_all(idx, vals):
                # One graph: gather the selected values into their variables.
                full = tf.tensor_scatter_nd_update(
                    tf.stack([v.read_value() for v in tf_vars]), idx[:, None], vals
                )
                for k, var in enumerate(tf_vars):
                    var.assign(full[k])

            self._fn = assign_all
        self._fn(
            tf.constant(np.asarray(indices, "int32")), tf.constant(np.asarray(values, "float32"))
        )
