"""RDropModel's step is the hand-tiled step plus the consistency term, and nothing else.

The compiled loss runs once on the tiled batch when that equals the per-pass mean
(built-in losses) and once per pass otherwise; the consistency term computed from
the tiled output equals the `ops.divergence` functions; the per-compile plan and
the split are made once; `add_loss` terms count once on every supported Keras.
"""

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_np
from keras import ops
from rdrop_helpers import HandTiled, data, mlp, noise_mlp, pass_rows, sparse_ce, two_pass

from keras_dropouts import _internals
from keras_dropouts import backend
from keras_dropouts.backend.common import consistency as common_consistency
from keras_dropouts.models import RDropModel
from keras_dropouts.models import _consistency
from keras_dropouts.models import _rdrop_plan as plan_lib
from keras_dropouts.models import rdrop as rdrop_module
from keras_dropouts.ops import divergence


def _sgd_ce(model, **kw):
    model.compile(keras.optimizers.SGD(0.5), keras.losses.SparseCategoricalCrossentropy(from_logits=True), **kw)
    return model


@pytest.mark.parametrize("weighted", [False, True])
def test_alpha0_equals_hand_tiled_loss_and_update(weighted):
    x, y = data(16)
    sw = np.linspace(0.2, 1.5, 16).astype("float32") if weighted else None
    rdrop = _sgd_ce(RDropModel(*noise_mlp(), alpha=0.0))
    hand = _sgd_ce(HandTiled(*noise_mlp()))
    hand.set_weights(rdrop.get_weights())
    lr = rdrop.train_on_batch(x, y, sample_weight=sw, return_dict=True)
    lh = hand.train_on_batch(x, y, sample_weight=sw, return_dict=True)
    np.testing.assert_allclose(lr["loss"], lh["loss"], rtol=1e-6)
    for a, b in zip(rdrop.get_weights(), hand.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # The copies really differ: with alpha > 0 the term is positive.
    x2 = RDropModel(*noise_mlp(), alpha=1.0)
    _sgd_ce(x2)
    assert x2.train_on_batch(x, y, return_dict=True)["consistency_loss"] > 1e-4


@pytest.mark.parametrize("passes", [2, 3])
@pytest.mark.parametrize(
    "kind,from_logits",
    [("kl", True), ("kl", False), ("binary_kl", True), ("binary_kl", False), ("mse", False)],
)
def test_tiled_consistency_equals_divergence_ops(kind, from_logits, passes):
    rng = np.random.default_rng(3)
    z = rng.normal(size=(6, passes, 4, 5)).astype("float32")  # grouped: (B, passes, ...)
    if not from_logits and kind == "kl":
        z = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    elif not from_logits and kind == "binary_kl":
        z = 1.0 / (1.0 + np.exp(-z))
        z[0, 0, 0, 0] = 1.0  # saturated probability: finite in both
    pairs = [(a, b) for a in range(passes) for b in range(a + 1, passes)]
    got = to_np(backend.consistency.tiled(kind, ops.convert_to_tensor(z), from_logits, 0.7))
    parts = [ops.convert_to_tensor(z[:, k]) for k in range(passes)]
    ref = to_np(_consistency.pairwise(kind, parts, pairs, from_logits)) * 0.7
    assert np.isfinite(got)
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=1e-7)
    fn = {"kl": divergence.symmetric_kl, "binary_kl": divergence.binary_symmetric_kl}.get(kind)
    if fn is not None:  # pairwise is exactly the public op
        np.testing.assert_allclose(
            to_np(fn(parts[0], parts[1], from_logits=from_logits)),
            to_np(_consistency.pairwise(kind, parts[:2], [(0, 1)], from_logits)), rtol=1e-6,
        )


@pytest.mark.parametrize("passes", [2, 3])
def test_tiled_consistency_keeps_its_precision_when_the_passes_nearly_agree(passes):
    # Large logits (~40) whose passes differ by ~1e-3: the term is ~1e-8 per pair. Summing
    # `m * v_a - sum_b v_b` directly rounds at the size of `v` and was off by ~9x here;
    # the kernel works on differences between passes, exact for such close values.
    rng = np.random.default_rng(0)
    z0 = 40.0 + 20.0 * rng.normal(size=(64, 1, 10))
    z = (z0 + 1e-3 * rng.normal(size=(64, passes, 10))).astype("float32")
    got = float(to_np(backend.consistency.tiled("kl", ops.convert_to_tensor(z), True, 1.0)))
    lp = z.astype("float64") - z.max(-1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    p = np.exp(lp)
    pairs = [(a, b) for a in range(passes) for b in range(a + 1, passes)]
    ref = sum(0.5 * ((p[:, a] - p[:, b]) * (lp[:, a] - lp[:, b])).sum(-1).mean() for a, b in pairs)
    assert ref > 0
    np.testing.assert_allclose(got, ref, rtol=1e-3)


def summed_ce(y_true, y_pred):
    """A custom loss that reduces over the batch itself (a sum): not tileable."""
    return ops.sum(keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True))


@pytest.mark.parametrize(
    "loss,tileable",
    [
        ("sparse_categorical_crossentropy", True),
        ("mse", True),
        ("crossentropy", True),
        (keras.losses.SparseCategoricalCrossentropy(from_logits=True), True),
        (keras.losses.MeanSquaredError(reduction="mean"), True),
        (keras.losses.MeanSquaredError(reduction="sum"), False),
        (keras.losses.Dice(), False),
        (summed_ce, False),
        (None, True),
    ],
)
def test_which_losses_run_once_on_the_tiled_batch(loss, tileable):
    assert plan_lib.loss_is_tileable(loss) is tileable


def test_custom_loss_runs_once_per_pass():
    x, y = data()
    model = RDropModel(*mlp(rate=0.4), alpha=0.0, consistency="kl")
    model.compile("sgd", loss=summed_ce)
    y_pred, loss, _ = two_pass(model, x, y)
    assert model._rdrop_plan.tile_loss is False
    h1, h2 = pass_rows(y_pred)
    ref = 0.5 * (sparse_ce(h1, y).sum() + sparse_ce(h2, y).sum())
    np.testing.assert_allclose(loss, ref, rtol=1e-5)


def test_recompile_rebuilds_the_plan():
    x, y = data()
    model = RDropModel(*mlp(n_out=3, rate=0.4), alpha=1.0)
    _sgd_ce(model)
    two_pass(model, x, y)
    assert model._rdrop_plan.terms[0][2] == "kl"
    model.compile("sgd", "mse")
    yr = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    y_pred, _, cons = two_pass(model, x, yr)
    assert model._rdrop_plan.terms[0][2] == "mse"
    h1, h2 = pass_rows(y_pred)
    np.testing.assert_allclose(cons, ((h1 - h2) ** 2).mean() / 2, rtol=1e-5)


@pytest.mark.skipif(BACKEND == "jax", reason="JAX scores metrics outside the traced loss (XLA merges the slice)")
def test_one_split_and_one_plan_per_step(monkeypatch):
    x, y = data(16)
    model = _sgd_ce(RDropModel(*mlp(rate=0.3), alpha=1.0), metrics=["accuracy"])
    model.train_on_batch(x, y)  # traces (TF) / first step builds the plan
    splits, plans = [], []
    original_split, original_terms = rdrop_module.split, plan_lib.consistency_terms
    # `split(y_pred, passes, count)`: record `count`, as the tiled-loss plan asks for one.
    monkeypatch.setattr(
        rdrop_module, "split", lambda t, m, *a: splits.append(a) or original_split(t, m, *a)
    )
    monkeypatch.setattr(plan_lib, "consistency_terms", lambda *a: plans.append(1) or original_terms(*a))
    for _ in range(3):
        model.train_on_batch(x, y)
    assert plans == []
    # TF: traced once, before. The tiled loss needs the first pass only (for the metrics).
    assert splits == ([] if BACKEND == "tensorflow" else [(1,)] * 3)


def test_add_loss_mean_in_forward_counted_once():
    class MeanPenalty(keras.layers.Layer):
        def call(self, x):
            self.add_loss(0.1 * ops.mean(ops.square(x)))
            return x

    def build():
        inputs = keras.Input((8,))
        h = MeanPenalty()(keras.layers.Dense(16, kernel_initializer=keras.initializers.GlorotUniform(4))(inputs))
        return inputs, keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(5))(h)

    x, y = data()
    with pytest.warns(UserWarning, match="no dropout-like layer"):
        rdrop = _sgd_ce(RDropModel(*build(), alpha=1.0))
    plain = _sgd_ce(keras.Model(*build()))
    plain.set_weights(rdrop.get_weights())
    np.testing.assert_allclose(
        rdrop.train_on_batch(x, y, return_dict=True)["loss"],
        plain.train_on_batch(x, y, return_dict=True)["loss"],
        rtol=1e-6,
    )


def test_activity_regulariser_branch_matches_keras_version():
    layer = keras.layers.Dense(2, activity_regularizer="l1")
    model = keras.Sequential([keras.Input((3,)), layer])
    expected = [] if _internals.KERAS_VERSION >= (3, 14) else [layer]
    assert _internals.activity_regularized_layers(model) == expected
    original = layer.activity_regularizer
    with _internals.per_pass_activity_loss([layer], 2):
        with _internals.per_pass_activity_loss([layer], 2):  # re-entrant
            assert layer.activity_regularizer is not original
    assert layer.activity_regularizer is original


def test_rdrop_model_as_a_layer_of_a_functional_model():
    x, y = data(16)
    rdrop = RDropModel(*mlp(rate=0.3), alpha=1.0)
    inputs = keras.Input((8,))
    outer = keras.Model(inputs, keras.layers.Activation("softmax")(rdrop(inputs)))
    probs = to_np(outer(x))
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(to_np(rdrop(x)), to_np(rdrop.base_model(x)), rtol=1e-6)


def test_every_k_keeps_a_train_step_wrapper_installed_on_the_instance():
    x, y = data(16)
    model = _sgd_ce(RDropModel(*mlp(rate=0.3), alpha=1.0, consistency_every=2))
    calls = []
    own = type(model).train_step.__get__(model)

    def wrapper(*args, **kwargs):
        calls.append(1)
        return own(*args, **kwargs)

    model.__dict__["train_step"] = wrapper
    model.make_train_function(force=True)
    # Only R-Drop steps add to the tracker's count (every step logs `consistency_loss`).
    ran = []
    for _ in range(4):
        before = float(to_np(model.consistency_tracker.state)[1])
        model.train_on_batch(x, y, return_dict=True)
        ran.append(float(to_np(model.consistency_tracker.state)[1]) > before)
    assert ran == [True, False, True, False]
    assert model.__dict__["train_step"] is wrapper
    assert calls  # both variants went through the wrapper (traced once each on TF/JAX)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's branch")
@pytest.mark.parametrize("passes", [2, 3])
@pytest.mark.parametrize(
    "kind,from_logits,dtype",
    [("kl", True, "float32"), ("kl", True, "float16"), ("kl", False, "float32"),
     ("binary_kl", True, "float32"), ("binary_kl", False, "float32"), ("mse", False, "float32")],
)
def test_xla_term_equals_graph_ops_in_value_and_gradient(kind, from_logits, dtype, passes):
    import tensorflow as tf

    from keras_dropouts.backend.tensorflow import consistency as _consistency_tf

    rng = np.random.default_rng(5)
    z = rng.normal(size=(6, passes, 5)).astype("float32")
    if not from_logits:
        z = 1.0 / (1.0 + np.exp(-z)) if kind == "binary_kl" else np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    z = tf.constant(z.astype(dtype))
    xla = _consistency_tf.compiled(common_consistency.tiled, kind, from_logits, 0.7)

    @tf.function
    def value_and_gradient(fn):
        with tf.GradientTape() as tape:
            tape.watch(z)
            value = fn(z) * 3.0  # an upstream gradient other than 1
        return value, tape.gradient(value, z)

    got = value_and_gradient(xla)
    ref = value_and_gradient(lambda t: common_consistency.tiled(kind, t, from_logits, 0.7))
    assert got[1].dtype == z.dtype
    tol = 1e-5 if dtype == "float32" else 1e-3
    np.testing.assert_allclose(to_np(got[0]), to_np(ref[0]), rtol=tol, atol=1e-7)
    np.testing.assert_allclose(to_np(got[1]).astype("float32"), to_np(ref[1]).astype("float32"), rtol=tol, atol=1e-6)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's branch")
@pytest.mark.parametrize("mode", ["graph", "jit_compile", "run_eagerly", "no_xla_build"])
def test_xla_term_only_where_the_step_has_no_xla(monkeypatch, mode):
    from keras_dropouts.backend.tensorflow import consistency as _consistency_tf

    if mode == "no_xla_build":  # a TensorFlow build whose CPU XLA fails: plain graph ops
        monkeypatch.setattr(_consistency_tf, "_xla_works", lambda: False)
    x, y = data(16)
    model = _sgd_ce(
        RDropModel(*mlp(rate=0.3), alpha=1.0),
        jit_compile=mode == "jit_compile", run_eagerly=mode == "run_eagerly",
    )
    seen = []
    original = _consistency_tf.wanted
    monkeypatch.setattr(_consistency_tf, "wanted", lambda m: seen.append(original(m)) or seen[-1])
    model.train_on_batch(x, y)
    assert seen == [mode == "graph"]


def test_tracker_updates_are_collected_in_a_stateless_scope():
    model = RDropModel(*mlp(rate=0.3), alpha=1.0)
    tracker = model.consistency_tracker
    with keras.StatelessScope() as scope:
        tracker.update_state(ops.convert_to_tensor(2.5))
        assert float(to_np(tracker.result())) == 2.5  # the scope's values
    assert all(np.all(to_np(v) == 0) for v in tracker.variables)  # not applied
    assert all(scope.get_current_value(v) is not None for v in tracker.variables)
    tracker.update_state(ops.convert_to_tensor(2.5))
    tracker.update_state(ops.convert_to_tensor(0.5))
    assert float(to_np(tracker.result())) == pytest.approx(1.5)
