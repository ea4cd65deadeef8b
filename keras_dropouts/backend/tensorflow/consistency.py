"""R-Drop's consistency term on TensorFlow: one XLA launch per step, and the replica count.

On a CPU, TensorFlow runs `fit`'s step as a graph without XLA (Keras' `"auto"`
`jit_compile` is off on CPU-only machines), and its executor costs about 10 us
per op on small tensors: the term's ~6 ops forward and ~13 backward were about 5%
of a small MLP's step (`benchmarks/bench_rdrop.py`). Here one XLA computation
returns the term and its gradient with respect to the tiled output (no extra
arithmetic: the backward pass has to compute that gradient anyway), and the
backward pass only scales it by the incoming gradient: one launch and one op.
Values are those of the graph ops up to float rounding.

`RDropModel` asks for it only where XLA is otherwise off on a CPU-only machine
(see `wanted`): a step that Keras compiles with XLA contains the term anyway, and
eager runs (`run_eagerly=True`, used to debug) and `tf.distribute` steps (where
Keras turns XLA off) keep plain ops.
"""

import functools

import tensorflow as tf

from keras_dropouts.backend.common import consistency as common
from keras_dropouts.backend.common.consistency import MAY_BE_THE_ONLY_LOSS  # noqa: F401


def num_replicas():
    """Number of `tf.distribute` replicas in sync (Keras divides the loss by it)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def tiled(kind, grouped, from_logits, weight, xla=False):
    """`common.consistency.tiled`; with `xla=True` (see `wanted`) its value and gradient
    come from one XLA computation (`compiled`)."""
    if xla:
        return compiled(common.tiled, kind, from_logits, weight)(grouped)
    return common.tiled(kind, grouped, from_logits, weight)


def wanted(model):
    """Whether `model`'s train step, traced now, should compute its term with XLA."""
    return (
        not model.jit_compile
        and not tf.executing_eagerly()
        and not tf.distribute.has_strategy()
        and not tf.config.list_logical_devices("GPU")
        and _xla_works()
    )


@functools.lru_cache(maxsize=None)
def _xla_works():
    """Whether this TensorFlow build compiles XLA on the CPU (checked once, eagerly)."""
    try:
        with tf.init_scope():
            tf.function(lambda t: t + 1.0, jit_compile=True)(tf.constant(1.0))
    except Exception:  # noqa: BLE001 - any failure means: use plain graph ops
        return False
    return True


@functools.lru_cache(maxsize=None)
def compiled(fn, kind, from_logits, weight):
    """`z -> fn(kind, z, from_logits, weight)`, value and gradient from one XLA call (`z`:
    the grouped output, `(B, passes, ...)`)."""

    @tf.function(jit_compile=True, autograph=False)
    def value_and_gradient(z):
        with tf.GradientTape() as tape:
            tape.watch(z)
            value = fn(kind, z, from_logits, weight)
        return value, tape.gradient(value, z)

    # Not converted by autograph (a user's `tf.function`): it would call the undecorated
    # function and lose the custom gradient.
    @tf.autograph.experimental.do_not_convert
    @tf.custom_gradient
    def term(z):
        value, gradient = value_and_gradient(z)
        return value, lambda upstream: tf.cast(upstream, gradient.dtype) * gradient

    return term
