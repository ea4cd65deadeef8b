"""In-step rate schedules on TensorFlow: the graph-style step of `common`; a schedule
traces when `tf.function` can trace it as Keras traces its train step."""

import tensorflow as tf
from keras import ops

from keras_dropouts.backend.common.rate_step import make_step  # noqa: F401


def scalar_shape(fn, step_dtype):
    """The shape of `fn(step)` traced with a scalar `step`: without AutoGraph, as Keras
    traces its train step (no Python `if` on tensors)."""
    traced = tf.function(lambda s: ops.convert_to_tensor(fn(s)), autograph=False)
    return tuple(traced.get_concrete_function(tf.TensorSpec((), step_dtype)).structured_outputs.shape)
