"""The compute-skipping residual on TensorFlow: each bucket rematerialised, the branch's
state writes carried out of the switch.

The gradient of `tf.switch_case` (as JAX's `lax.switch`) makes every bucket return the
intermediates of all buckets, zeros where it did not compute them, and XLA copies them
out of the conditional: the whole batch through the switch cost 1.31x the plain blocks
on the CPU, three quarters of it 1.02x instead of 0.75x
(`benchmarks/diag_cond_cpu_tf.py`). Each bucket therefore runs under a custom gradient
that recomputes its forward in the backward pass, so only its inputs cross the
conditional (three quarters 0.86x there).

The recomputation must see the variables as the forward pass saw them (a dropout
layer's seed state advances when it draws): each bucket runs in a `keras.StatelessScope`
fed with the variables' values read before the switch, returns the values its state
ends with, and the writes are made after the switch, as on JAX. It runs when the
gradient is taken, after the layer call: it re-enters that call's context, so that its
layers see the same `training` flag. A layer that closes over tensors (a weight read
outside it) has them found by one trace and made inputs of the custom gradient, so that
they get their gradients; one that reads variables it does not own, a plain function
(its layers' variables are unknown) and eager execution (which records only the chosen
bucket) use `common.switch`.
"""

import keras
import tensorflow as tf

from keras_dropouts import _internals
from keras_dropouts.backend.common import residual as common
from keras_dropouts.backend.tensorflow import noise


def _floating(value):
    return value.dtype.is_floating


def scoped(fn, variables, values, written):
    """`run(s, x, floats) -> (y, ends)`: `fn(s, x)` reading `variables` from `values`
    (the floating ones from `floats`), `ends` the values `written` end with."""
    fixed = [(v, value) for v, value in zip(variables, values) if not _floating(value)]
    free = [v for v, value in zip(variables, values) if _floating(value)]
    # The layers of a recomputation (in the backward pass, after the layer call has
    # returned) must see the call's `training` flag.
    context = _internals.current_call_context()

    def run(s, x, floats):
        with _internals.call_context(context):
            return common.scoped_run(fn, (s, x), fixed + list(zip(free, floats)), written)

    return run


def closed_over(run, s, x, floats):
    """The floating tensors `run` reads from its closure (a layer holding a weight
    tensor): traced once, they become inputs of `checkpointed` so that they get their
    gradients. None where it reads a variable it was not given (the recomputation in
    the gradient of a conditional cannot read one)."""
    concrete = tf.function(lambda s, x, *floats: run(s, x, floats)).get_concrete_function(s, x, *floats)
    captured = concrete.captured_inputs
    if any(t.dtype == tf.resource for t in captured):
        return None
    return [t for t in captured if _floating(t)]


def checkpointed(run, captured):
    """`run` as a function of `(s, x, *floats, *captured)` returning `(y, *ends)`, whose
    gradient recomputes the forward from those inputs."""

    @tf.custom_gradient
    def bucket(s, x, *inputs):
        floats = inputs[: len(inputs) - len(captured)]
        y, ends = run(s, x, floats)

        def grad(dy, *unused):
            # Copies of the inputs `run` takes (`s` is `x` itself without a projection
            # shortcut: each must get only its own share); `run` reads `captured` itself.
            # (`run` reads no variable directly: `closed_over` sent such a branch to
            # `common.switch`.)
            sources = [tf.identity(t) for t in (s, x, *floats)] + list(inputs[len(floats):])
            with tf.GradientTape() as tape:
                tape.watch(sources)
                y, _ = run(sources[0], sources[1], sources[2: 2 + len(floats)])
            grads = tape.gradient(y, sources, output_gradients=dy)
            return [tf.zeros_like(t) if g is None else g for t, g in zip(sources, grads)]

        # Outputs made in this graph (an unchanged state value is the caller's tensor).
        return tuple(tf.identity(t) for t in (y, *ends)), grad

    return bucket


def switch(index, fns, operands, variables):
    """`common.switch` with each bucket rematerialised (`checkpointed`) and the writes
    of the non-trainable `variables` carried out of the switch (graph mode)."""
    variables = list(variables)
    written = [v for v in variables if not v.trainable]
    values = [tf.convert_to_tensor(v.value) for v in variables]
    floats = [value for value in values if _floating(value)]
    s, x = operands
    runs = [scoped(fn, variables, values, written) for fn in fns]
    captured = closed_over(runs[-1], s, x, floats)  # every bucket runs the same branch
    if captured is None:
        return common.switch(index, fns, operands, variables)
    buckets = [checkpointed(run, captured) for run in runs]
    outputs = tf.switch_case(index, [lambda b=bucket: b(s, x, *floats, *captured) for bucket in buckets])
    y, ends = outputs[0], outputs[1:]
    for v, end in zip(written, ends):
        v.assign(end)
    return y


def stochastic_residual(x, branch, rate, seed, buckets, variables=(), shortcut=None):
    """`common.stochastic_residual` with TensorFlow's noise, and `switch` for a Keras
    layer's branch in a graph (arguments: common's). A plain function may read layers'
    variables it does not name, and eagerly `tf.switch_case` runs and records only the
    chosen bucket: both use `common.switch`."""
    remat = isinstance(branch, keras.layers.Layer) and not tf.executing_eagerly()
    chosen = switch if remat else common.switch
    return common.stochastic_residual(x, branch, rate, seed, buckets, variables, noise.uniform, chosen, shortcut)
