"""StochasticResidual / ops.stochastic_residual: the branch runs on a subset of the batch.

The subset size of a batch B with `buckets` K is one of ceil(j * B / K); kept rows
are scaled by B / size. With a branch whose output is 1 everywhere, the mean of
`(y - x)^2` over a batch is therefore B / size exactly (0 when nothing is kept):
the tests read the chosen bucket from it.
"""

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_np

import keras_dropouts as kd

JIT = BACKEND != "torch"


def _mlp(width=8, seed=0):
    init = keras.initializers.GlorotUniform(seed)
    return keras.Sequential(
        [
            keras.layers.Dense(12, activation="tanh", kernel_initializer=init),
            keras.layers.Dense(width, kernel_initializer=init),
        ]
    )


@pytest.mark.parametrize("batch", [1, 8, 13])
def test_rate_zero_is_the_residual_and_rate_one_the_shortcut(batch):
    x = np.random.rand(batch, 3, 8).astype("float32")
    mlp = _mlp()
    plain = x + to_np(mlp(x))
    np.testing.assert_array_equal(to_np(kd.ops.stochastic_residual(x, mlp, 0.0, seed=1, buckets=4)), plain)
    np.testing.assert_array_equal(to_np(kd.ops.stochastic_residual(x, mlp, 1.0, seed=1, buckets=4)), x)
    layer = kd.layers.StochasticResidual(mlp, 0.0, buckets=4, seed=2)
    np.testing.assert_array_equal(to_np(layer(x, training=True)), plain)
    layer.rate = 1.0
    np.testing.assert_array_equal(to_np(layer(x, training=True)), x)
    np.testing.assert_array_equal(to_np(layer(x, training=False)), plain)


class Draws(keras.Model):
    """`predict` runs the layer in training mode: one draw per batch, compiled."""

    def __init__(self, layer):
        super().__init__()
        self.inner = layer

    def call(self, x, training=None):
        return self.inner(x, training=True)


def test_mean_over_draws_is_the_residual_block():
    # B = 13 is not divisible by the 4 buckets: sizes 0, 4, 7, 10, 13.
    batch, draws, rate = 13, 1500, 0.3
    x = np.random.rand(batch, 6).astype("float32")
    mlp = _mlp(6)
    ref = x + to_np(mlp(x))
    model = Draws(kd.layers.StochasticResidual(mlp, rate, buckets=4, seed=3))
    y = to_np(model.predict(np.tile(x, (draws, 1)), batch_size=batch, verbose=0)).reshape(draws, batch, 6)
    # Standard error of each entry's mean from the draws themselves; 5 of them.
    tolerance = 5 * y.std(axis=0) / np.sqrt(draws) + 1e-6
    assert np.all(np.abs(y.mean(axis=0) - ref) <= tolerance)
    kept = np.abs(y - x).max(axis=2) > 0
    # Every sample keeps its branch with probability 1 - rate ...
    p = kept.mean(axis=0)
    assert np.all(np.abs(p - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / draws))
    # ... in subsets of a bucket's size, scaled by B / size.
    sizes = kept.sum(axis=1)
    assert set(sizes) <= {7, 10}  # 13 * 0.7 = 9.1 lies between them
    assert abs((sizes == 10).mean() - 0.7) < 5 * np.sqrt(0.21 / draws)
    branch = ref - x
    for d in range(5):
        rows = kept[d]
        np.testing.assert_allclose(y[d][rows] - x[rows], branch[rows] * batch / rows.sum(), rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(y[d][~rows], x[~rows])


def _value_and_grads(fn, x, w):
    """fn(x, w) -> tensor; returns (value, d sum(value * c) / dx, ... / dw) as NumPy."""
    c = np.linspace(-1.0, 1.0, x.size, dtype="float32").reshape(x.shape)
    if BACKEND == "jax":
        import jax

        def loss(x, w):
            y = fn(x, w)
            return (y * c).sum(), y

        (_, y), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(x, w)
        return to_np(y), *map(np.asarray, grads)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x, w = tf.constant(x), tf.constant(w)
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = fn(x, w)
            loss = tf.reduce_sum(y * c)
        return to_np(y), *(g.numpy() for g in tape.gradient(loss, [x, w]))
    import torch

    x, w = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    y = fn(x, w)
    (y * torch.tensor(c)).sum().backward()
    return to_np(y.detach()), x.grad.numpy(), w.grad.numpy()


@pytest.mark.parametrize("rate", [0.3, 0.6])
def test_gradients_equal_the_masked_full_compute_form(rate):
    batch = 11
    rng = np.random.default_rng(0)
    x = rng.random((batch, 4, 5), dtype="float32") + 0.1
    w = rng.random((5, 5), dtype="float32") + 0.1

    def branch_of(w):
        return lambda t: keras.ops.tanh(keras.ops.matmul(t, w)) + 0.5

    def skipping(x, w):
        return kd.ops.stochastic_residual(x, branch_of(w), rate, seed=7, buckets=3)

    y, gx, gw = _value_and_grads(skipping, x, w)
    kept = np.abs(y - x).reshape(batch, -1).max(axis=1) > 0  # the draw (branch > 0)
    assert 0 < kept.sum() < batch
    scale = (batch / kept.sum() * kept).astype("float32").reshape(batch, 1, 1)

    def masked(x, w):
        return x + keras.ops.convert_to_tensor(scale) * branch_of(w)(x)

    y_ref, gx_ref, gw_ref = _value_and_grads(masked, x, w)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-5, atol=1e-5)


class _Count(keras.layers.Layer):
    traces = 0

    def call(self, x):
        _Count.traces += 1
        return x


def _bucket_probe(rate, buckets, seed=0):
    """Model whose mse against 0 is B / size of the subset the layer chose."""
    ones = keras.layers.Dense(4, kernel_initializer="zeros", bias_initializer="ones", trainable=False)
    layer = kd.layers.StochasticResidual(keras.Sequential([_Count(), ones]), rate, buckets=buckets, seed=seed)
    inputs = keras.Input((4,))
    # A trainable weight that stays 0 (SGD at learning rate 0): the optimizer steps.
    zero = keras.layers.Dense(4, use_bias=False, kernel_initializer="zeros")(inputs)
    model = keras.Model(inputs, keras.layers.Add()([keras.layers.Subtract()([layer(inputs), inputs]), zero]))
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse", jit_compile=JIT)
    return model, layer


def test_rate_variable_changes_never_retrace():
    model, layer = _bucket_probe(0.0, 4)
    x, y = np.random.rand(16, 4).astype("float32"), np.zeros((16, 4), "float32")
    losses, traces = {}, []
    for rate in (0.0, 0.5, 0.75, 1.0, 0.0):
        layer.rate = rate
        losses[rate] = model.fit(x, y, batch_size=16, epochs=2, verbose=0).history["loss"]
        traces.append(_Count.traces)
    # 16 * (1 - rate) is a bucket: the size is exact and mse = 16 / size, up to the
    # float32 rounding of the reduction (oneDNN may sum in another order).
    expected = {0.0: 1.0, 0.5: 2.0, 0.75: 4.0, 1.0: 0.0}
    for rate, loss in expected.items():
        np.testing.assert_allclose(losses[rate], [loss, loss], rtol=1e-6, atol=1e-7)
    if BACKEND != "torch":  # torch runs eagerly: every call runs the branch
        assert traces[0] == traces[-1], traces


def test_in_step_schedule_drives_the_subset_size():
    model, layer = _bucket_probe(0.0, 4)
    x, y = np.random.rand(16, 4).astype("float32"), np.zeros((16, 4), "float32")
    cb = kd.callbacks.DropoutScheduler(lambda step: 0.25 * keras.ops.cast(step % 4, "float32"))

    class PerStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(logs["loss"])

    seen = []
    model.fit(x, y, batch_size=16, epochs=8, verbose=0, callbacks=[cb, PerStep()])
    assert cb.evaluation == "in_step"
    # Keras logs the running mean of the epoch: one step an epoch, so the step's loss.
    expected = [16 / s if s else 0.0 for s in (16, 12, 8, 4)] * 2
    np.testing.assert_allclose(seen, expected, rtol=1e-6)


def test_save_load_round_trip(tmp_path):
    layer = kd.layers.StochasticResidual(_mlp(8), 0.2, buckets=5, skip_compute=True, seed=4)
    inputs = keras.Input((3, 8))
    model = keras.Model(inputs, layer(inputs))
    layer.rate = 0.35
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded_model = keras.saving.load_model(path)
    loaded = loaded_model.layers[1]
    assert isinstance(loaded, kd.layers.StochasticResidual)
    assert (loaded.rate, loaded.buckets, loaded.skip_compute, loaded.seed) == (0.35, 5, True, 4)
    x = np.random.rand(5, 3, 8).astype("float32")
    np.testing.assert_allclose(to_np(loaded_model(x)), to_np(model(x)), rtol=1e-6)
    config = layer.get_config()
    assert kd.layers.StochasticResidual.from_config(config).get_config() == config


def test_skip_compute_off_is_per_sample_drop_path():
    batch, rate = 4000, 0.3
    ones = keras.layers.Dense(2, kernel_initializer="zeros", bias_initializer="ones")
    layer = kd.layers.StochasticResidual(ones, rate, skip_compute=False, seed=1)
    x = np.zeros((batch, 2), "float32")
    y = to_np(layer(x, training=True))
    kept = y[:, 0] > 0
    assert abs(kept.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / batch)
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    compute = policy.split("_")[1]
    model, layer = _bucket_probe(0.5, 4)
    # x = 0: the kept rows are 0 + 2 * 1 = 2, exact in either dtype; mse = 16 / 8.
    x, y = np.zeros((16, 4), "float32"), np.zeros((16, 4), "float32")
    assert model.fit(x, y, batch_size=16, epochs=1, verbose=0).history["loss"] == [2.0]
    out = layer(keras.ops.zeros((16, 4), compute), training=True)
    assert keras.backend.standardize_dtype(out.dtype) == compute
    assert sorted(np.unique(to_np(keras.ops.cast(out, "float32")))) == [0.0, 2.0]
    assert layer.rate_variable.dtype == "float32"


def test_batch_norm_in_the_branch_sees_only_the_subset():
    batch = 16
    bn = keras.layers.BatchNormalization(momentum=0.0, center=False, scale=False)
    layer = kd.layers.StochasticResidual(bn, 0.5, buckets=4, seed=5)  # 8 of 16 rows
    x = np.random.rand(batch, 3).astype("float32") * 4
    y = to_np(layer(x, training=True))
    kept = np.abs(y - x).max(axis=1) > 0
    assert kept.sum() == 8
    np.testing.assert_allclose(to_np(bn.moving_mean), x[kept].mean(axis=0), rtol=1e-4)


def test_batch_norm_branch_trains_compiled():
    bn = keras.Sequential([keras.layers.Dense(4), keras.layers.BatchNormalization(), keras.layers.Dropout(0.1)])
    layer = kd.layers.StochasticResidual(bn, 0.3, buckets=2, seed=6)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer="sgd", loss="mse", jit_compile=JIT)
    x = np.random.rand(64, 4).astype("float32") + 3.0
    history = model.fit(x, x, batch_size=16, epochs=2, verbose=0).history["loss"]
    assert np.isfinite(history).all()
    moving = to_np(bn.layers[1].moving_mean)
    assert np.all(moving != 0)  # the statistics left the switch


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"buckets": 0}, "buckets"),
        ({"buckets": 2.5}, "buckets"),
        ({"rate": 1.5}, "rate"),
        ({"skip_compute": 1}, "skip_compute"),
    ],
)
def test_bad_arguments(kwargs, name):
    args = {"branch": keras.layers.Dense(3), "rate": 0.1, **kwargs}
    with pytest.raises(ValueError, match=f"argument `{name}`"):
        kd.layers.StochasticResidual(**args)
    with pytest.raises(ValueError, match="argument `branch`"):
        kd.layers.StochasticResidual(lambda t: t, 0.1)
    with pytest.raises(ValueError, match="argument `branch`"):
        kd.ops.stochastic_residual(np.ones((2, 3), "float32"), "dense", 0.1)


def test_last_partial_batch_trains():
    # 20 rows in batches of 8: TensorFlow retraces the last batch of 4 with an unknown
    # batch size, which runs the masked form (XLA cannot compile subset sizes then).
    model, layer = _bucket_probe(0.5, 4)
    x, y = np.zeros((20, 4), "float32"), np.zeros((20, 4), "float32")
    losses = model.fit(x, y, batch_size=8, epochs=3, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and min(losses) > 0
    layer.rate = 1.0
    assert model.fit(x, y, batch_size=8, epochs=1, verbose=0).history["loss"] == [0.0]


def test_projection_shortcut_pair():
    """`[shortcut, x]`: `shortcut + drop_path(branch(x))`, the branch changing the width
    (8 -> 5); the subset is drawn from `x` and lands on the shortcut's rows."""
    batch = 8
    x = np.random.rand(batch, 8).astype("float32")
    shortcut = np.random.rand(batch, 5).astype("float32")
    mlp = _mlp(5)
    branch = to_np(mlp(x))
    layer = kd.layers.StochasticResidual(mlp, 0.0, buckets=4, seed=2)
    np.testing.assert_array_equal(to_np(layer([shortcut, x], training=True)), shortcut + branch)
    np.testing.assert_array_equal(to_np(layer([shortcut, x], training=False)), shortcut + branch)
    layer.rate = 1.0
    np.testing.assert_array_equal(to_np(layer([shortcut, x], training=True)), shortcut)
    # Rate 0.5 (4 of 8 kept, scaled by 2): each row is the shortcut, or shortcut + 2 branch.
    y = to_np(kd.ops.stochastic_residual(x, mlp, 0.5, seed=3, buckets=4, shortcut=shortcut))
    kept = np.abs(y - shortcut).max(axis=1) > 0
    assert kept.sum() == 4
    np.testing.assert_allclose(y[kept], shortcut[kept] + 2 * branch[kept], rtol=1e-5, atol=1e-6)
    assert layer.compute_output_shape([(None, 5), (None, 8)]) == (None, 5)
    inputs = [keras.Input((5,)), keras.Input((8,))]
    assert kd.layers.StochasticResidual(_mlp(5), 0.1)(inputs).shape == (None, 5)
    with pytest.raises(ValueError, match="argument `shortcut`.*batch size"):
        kd.ops.stochastic_residual(x, mlp, 0.5, shortcut=shortcut[:3])


def _cond_outputs(jaxpr):
    """Element counts of every output of every `cond` in `jaxpr` and its sub-jaxprs."""
    sizes = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "cond":
            sizes += [int(np.prod(v.aval.shape)) for v in eqn.outvars]
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    sizes += _cond_outputs(inner)
    return sizes


@pytest.mark.skipif(BACKEND != "jax", reason="JAX's conditional in reverse mode")
def test_jax_switch_carries_no_saved_activations_out():
    """Each bucket runs under `jax.checkpoint`: the conditional of the gradient passes only
    inputs and cotangents (at most the input's size), never the branch's saved activations
    (here 4x the input: the hidden layer is 4x wider), which reverse mode would otherwise
    make every bucket return."""
    import jax

    width = 8
    branch = keras.Sequential([keras.layers.Dense(4 * width, activation="tanh"), keras.layers.Dense(width)])
    layer = kd.layers.StochasticResidual(branch, 0.3, buckets=4, seed=1)
    x = np.random.default_rng(0).normal(size=(16, 16, width)).astype("float32")
    layer(x, training=True)  # builds the branch

    def loss(x):
        return keras.ops.sum(layer(x, training=True) ** 2)

    sizes = _cond_outputs(jax.make_jaxpr(jax.grad(loss))(x).jaxpr)
    assert sizes, "no conditional in the gradient: the test no longer sees the switch"
    assert max(sizes) <= x.size, (max(sizes), x.size)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's conditional in reverse mode")
def test_tensorflow_switch_carries_no_saved_activations_out():
    """TensorFlow's counterpart of the test above: each bucket's gradient recomputes its
    forward, so the forward conditional of a differentiated step outputs nothing larger
    than the input (the gradient of `tf.switch_case` otherwise makes every bucket return
    every bucket's intermediates, here 4x the input)."""
    import tensorflow as tf

    width = 8
    branch = keras.Sequential([keras.layers.Dense(4 * width, activation="tanh"), keras.layers.Dense(width)])
    layer = kd.layers.StochasticResidual(branch, 0.3, buckets=4, seed=1)
    x = tf.constant(np.random.default_rng(0).normal(size=(16, 16, width)).astype("float32"))
    layer(x, training=True)  # builds the branch

    @tf.function
    def grads(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) ** 2)
        return tape.gradient(loss, [x, *[v.value for v in layer.trainable_variables]])

    graph = grads.get_concrete_function(x).graph
    cases = [op for op in graph.get_operations() if op.type in ("Case", "StatelessCase")]
    assert len(cases) == 2, [op.type for op in cases]  # the forward switch and its gradient
    sizes = [int(np.prod(t.shape)) for op in cases for t in op.outputs if t.shape.is_fully_defined()]
    assert max(sizes) <= x.shape.num_elements(), (max(sizes), x.shape.num_elements())


def _kernel_gradient(layer, x, c, compiled):
    """`(y, d sum(y * c) / d kernel)` of `layer(x, training=True)` for the one trainable
    variable of `layer`, as NumPy (compiled: in a `jax.jit` / `tf.function(jit_compile=True)`)."""
    (kernel,) = layer.trainable_variables
    if BACKEND == "jax":
        import jax

        def loss(k, state):
            # A layer call (not `stateless_call`, which skips `__call__`): the branch's
            # Dropout inherits `training=True` from it, as in a model's step.
            mapping = [(kernel, k), *zip(layer.non_trainable_variables, state)]
            with keras.StatelessScope(state_mapping=mapping):
                y = layer(x, training=True)
            return keras.ops.sum(y * c), y

        step = jax.value_and_grad(loss, has_aux=True)
        state = [v.value for v in layer.non_trainable_variables]
        (_, y), g = (jax.jit(step) if compiled else step)(kernel.value, state)
        return to_np(y), np.asarray(g)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        def step(x):
            with tf.GradientTape() as tape:
                y = layer(x, training=True)
                loss = tf.reduce_sum(y * c)
            return y, tape.gradient(loss, kernel.value)

        y, g = (tf.function(step, jit_compile=True) if compiled else step)(tf.constant(x))
        return to_np(y), g.numpy()
    y = layer(x, training=True)
    keras.ops.sum(y * keras.ops.convert_to_tensor(c)).backward()
    return to_np(y.detach()), kernel.value.grad.cpu().numpy()


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.skipif(not JIT, reason="eager"))])
def test_gradient_sees_the_forward_passs_dropout_mask(compiled):
    """A branch that draws (Dropout, then an identity Dense): the gradient must use the
    mask of the forward pass, though JAX and TensorFlow recompute the branch in the
    backward pass (the seed state is read as it was before the switch). With kernel I,
    `y - x` is the scaled dropped-out subset, so d sum(y * c) / d kernel is
    `(y - x)^T c` summed over the rows; a redrawn mask gives another value."""
    width, batch = 6, 12
    branch = keras.Sequential(
        [keras.layers.Dropout(0.5, seed=4), keras.layers.Dense(width, use_bias=False, kernel_initializer="identity")]
    )
    layer = kd.layers.StochasticResidual(branch, 0.4, buckets=3, seed=2)
    rng = np.random.default_rng(1)
    x = rng.random((batch, width), dtype="float32") + 0.5
    c = rng.normal(size=(batch, width)).astype("float32")
    layer(x, training=True)  # builds; draws once
    y, g = _kernel_gradient(layer, x, c, compiled)
    d = y - x
    kept = np.abs(d).max(axis=1) > 0
    assert 0 < kept.sum() < batch  # some rows kept, some not
    assert (d[kept] == 0).any() and (d[kept] != 0).any()  # Dropout dropped some entries of them
    np.testing.assert_allclose(g, d.T @ c, rtol=1e-5, atol=1e-5)
