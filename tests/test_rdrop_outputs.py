"""RDropModel: sequence (masked), regression, binary, multi-output, passes, every-k."""

import keras
import numpy as np
import pytest
from rdrop_helpers import data, log_softmax, mlp, pass_rows, sparse_ce, sym_kl, two_pass

from keras_dropouts.models import RDropModel


def test_sequence_outputs_exclude_keras_mask_padding():
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 20, size=(8, 6))
    lengths = np.array([6, 5, 4, 3, 2, 1, 6, 3])
    tokens[np.arange(6)[None, :] >= lengths[:, None]] = 0
    mask = tokens != 0
    y = rng.integers(0, 4, size=(8, 6))
    inputs = keras.Input((6,), dtype="int32")
    h = keras.layers.Embedding(20, 8, mask_zero=True)(inputs)
    h = keras.layers.Dropout(0.4)(h)
    out = keras.layers.Dense(4)(h)
    model = RDropModel(inputs, out, alpha=1.0)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    y_pred, loss, cons = two_pass(model, tokens, y)
    h1, h2 = pass_rows(y_pred)
    # Make the padded positions disagree wildly: they must not count.
    kl = sym_kl(log_softmax(h1), log_softmax(h2))
    ref_kl = kl[mask].mean()
    np.testing.assert_allclose(cons, ref_kl / 2, rtol=1e-5)
    nll = 0.5 * (sparse_ce(h1, y)[mask].mean() + sparse_ce(h2, y)[mask].mean())
    np.testing.assert_allclose(loss, nll + ref_kl / 2, rtol=1e-5)


def test_sequence_outputs_sample_weight_padding():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 5, 3)).astype("float32")
    y = rng.integers(0, 4, size=(6, 5))
    sw = (rng.uniform(size=(6, 5)) > 0.3).astype("float32")
    inputs = keras.Input((5, 3))
    out = keras.layers.Dense(4)(keras.layers.Dropout(0.5)(keras.layers.Dense(8)(inputs)))
    model = RDropModel(inputs, out, alpha=2.0)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    y_pred, _loss, cons = two_pass(model, x, y, sample_weight=sw)
    h1, h2 = pass_rows(y_pred)
    kl = (sym_kl(log_softmax(h1), log_softmax(h2)) * sw).mean()
    np.testing.assert_allclose(cons, 2.0 * kl / 2, rtol=1e-5)


def test_regression_uses_mean_squared_difference():
    x, _ = data()
    y = np.random.default_rng(0).normal(size=(32, 2)).astype("float32")
    model = RDropModel(*mlp(n_out=2, rate=0.5), alpha=0.8)
    model.compile("sgd", "mse")
    y_pred, loss, cons = two_pass(model, x, y)
    h1, h2 = pass_rows(y_pred)
    msd = ((h1 - h2) ** 2).mean()
    np.testing.assert_allclose(cons, 0.8 * msd / 2, rtol=1e-5)
    mse = 0.5 * (((h1 - y) ** 2).mean() + ((h2 - y) ** 2).mean())
    np.testing.assert_allclose(loss, mse + 0.8 * msd / 2, rtol=1e-5)


def test_binary_crossentropy_probabilities():
    x, _ = data()
    y = np.random.default_rng(0).integers(0, 2, size=(32, 3)).astype("float32")
    model = RDropModel(*mlp(n_out=3, rate=0.5, activation="sigmoid"), alpha=1.0)
    model.compile("sgd", "binary_crossentropy")
    y_pred, _, cons = two_pass(model, x, y)
    p, q = (h.astype("float64") for h in pass_rows(y_pred))
    ref = (0.5 * (p - q) * (np.log(p / (1 - p)) - np.log(q / (1 - q)))).mean()
    np.testing.assert_allclose(cons, ref / 2, rtol=1e-4)


def _two_head(seed=0):
    inputs = keras.Input((8,))
    h = keras.layers.Dropout(0.4, seed=seed)(keras.layers.Dense(16, activation="relu")(inputs))
    cls = keras.layers.Dense(3, name="cls")(h)
    reg = keras.layers.Dense(1, name="reg")(h)
    return inputs, [cls, reg]


@pytest.mark.parametrize("alpha", [[1.0, 0.5], {"cls": 1.0, "reg": 0.5}, 0.75])
def test_multi_output_alpha_per_output_or_shared(alpha):
    x, y = data()
    yr = np.random.default_rng(2).normal(size=(32, 1)).astype("float32")
    model = RDropModel(*_two_head(), alpha=alpha)
    model.compile(
        "sgd",
        loss=[keras.losses.SparseCategoricalCrossentropy(from_logits=True), "mse"],
        loss_weights=[1.0, 0.3],
    )
    (c, r), loss, cons = two_pass(model, x, (y, yr))
    a_cls, a_reg = (0.75, 0.75) if alpha == 0.75 else (1.0, 0.5)
    (c1, c2), (r1, r2) = pass_rows(c), pass_rows(r)
    kl = sym_kl(log_softmax(c1), log_softmax(c2)).mean()
    msd = ((r1 - r2) ** 2).mean()
    np.testing.assert_allclose(cons, a_cls * kl / 2 + a_reg * msd / 2, rtol=1e-5)
    nll = 0.5 * (sparse_ce(c1, y).mean() + sparse_ce(c2, y).mean())
    mse = 0.5 * (((r1 - yr) ** 2).mean() + ((r2 - yr) ** 2).mean())
    np.testing.assert_allclose(loss, nll + 0.3 * mse + cons, rtol=1e-5)
    logs = model.fit(x, (y, yr), epochs=1, verbose=0).history
    assert {"loss", "consistency_loss", "cls_loss", "reg_loss"} <= set(logs)


def test_multi_output_bad_alpha_structure():
    x, y = data(8)
    model = RDropModel(*_two_head(), alpha=[1.0, 2.0, 3.0])
    model.compile("sgd", loss=["sparse_categorical_crossentropy", "mse"])
    with pytest.raises(ValueError, match="alpha"):
        two_pass(model, x, (y, np.zeros((8, 1), "float32")))


def test_three_passes_average_pairwise_consistency():
    x, y = data()
    model = RDropModel(*mlp(rate=0.5), alpha=1.2, passes=3)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    y_pred, loss, cons = two_pass(model, x, y)
    parts = pass_rows(y_pred, 3)
    pairs = [(0, 1), (0, 2), (1, 2)]
    kl = np.mean([sym_kl(log_softmax(parts[a]), log_softmax(parts[b])).mean() for a, b in pairs])
    np.testing.assert_allclose(cons, 1.2 * kl / 2, rtol=1e-5)
    nll = np.mean([sparse_ce(p, y).mean() for p in parts])
    np.testing.assert_allclose(loss, nll + cons, rtol=1e-5)


def test_consistency_every_k_steps_alternates():
    x, y = data(16)
    model = RDropModel(*mlp(rate=0.3), alpha=1.0, consistency_every=2)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # Every step logs the same keys (a plain step reports the running mean over the
    # R-Drop steps); only R-Drop steps add to the tracker's count.
    ran = []
    for _ in range(4):
        before = float(keras.ops.convert_to_numpy(model.consistency_tracker.state)[1])
        assert "consistency_loss" in model.train_on_batch(x, y, return_dict=True)
        after = float(keras.ops.convert_to_numpy(model.consistency_tracker.state)[1])
        ran.append(after > before)
    assert ran == [True, False, True, False]
    hist = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
