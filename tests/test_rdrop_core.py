"""RDropModel: two-pass loss, metrics/logs, construction forms, errors."""

import warnings

import keras
import numpy as np
import pytest
from conftest import to_np
from keras import ops
from rdrop_helpers import data, log_softmax, mlp, noise_mlp, pass_rows, sparse_ce, sym_kl, two_pass

from keras_dropouts.layers import ScheduledDropout
from keras_dropouts.models import RDropModel


def _compile(model, **kw):
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        **kw,
    )


@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_loss_matches_numpy_reference_from_the_two_halves(alpha):
    x, y = data()
    model = RDropModel(*mlp(rate=0.4), alpha=alpha)
    _compile(model)
    y_pred, loss, cons = two_pass(model, x, y)
    assert y_pred.shape == (64, 3)
    h1, h2 = pass_rows(y_pred)
    assert not np.allclose(h1, h2)  # independent masks
    nll = 0.5 * (sparse_ce(h1, y).mean() + sparse_ce(h2, y).mean())
    kl = sym_kl(log_softmax(h1), log_softmax(h2)).mean()
    np.testing.assert_allclose(cons, alpha * kl / 2, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(loss, nll + alpha * kl / 2, rtol=1e-5)
    if alpha == 0.0:
        assert cons == 0.0


def test_probabilities_output_uses_probs_and_stays_finite():
    x, y = data()
    model = RDropModel(*mlp(rate=0.5, activation="softmax"), alpha=2.0)
    model.compile("sgd", "sparse_categorical_crossentropy")
    y_pred, loss, cons = two_pass(model, x, y)
    h1, h2 = pass_rows(y_pred)
    kl = sym_kl(np.log(h1.astype("float64")), np.log(h2.astype("float64"))).mean()
    np.testing.assert_allclose(cons, 2.0 * kl / 2, rtol=1e-4)
    # Saturated (exactly one-hot) probabilities: no NaN/inf.
    big = x * 1e4
    _, loss, cons = two_pass(model, big, y)
    assert np.isfinite(loss) and np.isfinite(cons)


def test_no_randomness_equals_plain_model_loss_and_update():
    x, y = data()
    with pytest.warns(UserWarning, match="no dropout-like layer"):
        rdrop = RDropModel(*mlp(rate=0.0), alpha=3.0)
    plain = keras.Model(*mlp(rate=0.0))
    plain.set_weights(rdrop.get_weights())
    _compile(rdrop)
    _compile(plain)
    lr = rdrop.train_on_batch(x, y, return_dict=True)
    lp = plain.train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(lr["loss"], lp["loss"], rtol=1e-6)
    assert lr["accuracy"] == lp["accuracy"]
    assert lr["consistency_loss"] < 1e-6
    for a, b in zip(rdrop.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_logs_metrics_and_single_pass_evaluation():
    x, y = data(64)
    model = RDropModel(*mlp(rate=0.3), alpha=1.0)
    _compile(model)
    hist = model.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_data=(x, y))
    assert set(hist.history) == {"loss", "accuracy", "consistency_loss", "val_loss", "val_accuracy"}
    assert all(v > 0 for v in hist.history["consistency_loss"])
    # Evaluation / prediction are exactly the base model (single pass, no term).
    ev = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(ev) == {"loss", "accuracy"}
    assert set(model.test_on_batch(x, y, return_dict=True)) == {"loss", "accuracy"}
    # The tracker is muted only while evaluating: read directly, it computes its mean.
    model.consistency_tracker.reset_state()
    model.consistency_tracker.update_state(ops.convert_to_tensor(0.25))
    assert float(to_np(model.consistency_tracker.result())) == 0.25
    base = model.base_model
    _compile(base)
    ev_base = base.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(ev["loss"], ev_base["loss"], rtol=1e-6)
    np.testing.assert_allclose(hist.history["val_loss"][-1], ev["loss"], rtol=1e-6)
    np.testing.assert_array_equal(model.predict(x, verbose=0), base.predict(x, verbose=0))
    # A direct call is a single pass even with training=True.
    assert tuple(model(x, training=True).shape) == (64, 3)


@pytest.mark.parametrize("jit", [False, "auto"])
def test_log_consistency_false_leaves_only_the_log_entry_out(jit):
    # Same deterministic 'masks' (CopyNoise) in both models: the same loss and update.
    x, y = data(32)
    logged, quiet = (RDropModel(*noise_mlp(), alpha=2.0, log_consistency=v) for v in (True, False))
    quiet.set_weights(logged.get_weights())
    for m in (logged, quiet):
        _compile(m, jit_compile=jit)
    a = logged.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False).history
    b = quiet.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False).history
    assert set(a) == {"loss", "accuracy", "consistency_loss"} and set(b) == {"loss", "accuracy"}
    assert min(a["consistency_loss"]) > 0
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-5)
    for u, v in zip(logged.get_weights(), quiet.get_weights()):
        np.testing.assert_allclose(v, u, rtol=1e-5, atol=1e-6)
    assert quiet.consistency_tracker is None
    assert "consistency_loss" not in quiet.metrics_names
    assert set(quiet.evaluate(x, y, verbose=0, return_dict=True)) == {"loss", "accuracy"}
    with pytest.raises(ValueError, match="log_consistency"):
        RDropModel(*mlp(), log_consistency="no")


class SubclassedNet(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.d1 = keras.layers.Dense(16, activation="relu")
        self.drop = ScheduledDropout(0.3)
        self.d2 = keras.layers.Dense(3)

    def call(self, x, training=None):
        return self.d2(self.drop(self.d1(x), training=training))


def _sequential():
    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dropout(0.3),
         keras.layers.Dense(3)]
    )


def _functional():
    return keras.Model(*mlp())


def _subclassed():
    m = SubclassedNet()
    m(np.zeros((1, 8), "float32"))
    return m


@pytest.mark.parametrize("make", [_sequential, _functional, _subclassed])
def test_from_model_trains_and_shares_weights(make):
    x, y = data(32)
    base = make()
    model = RDropModel.from_model(base, alpha=0.5)
    _compile(model)
    before = [w.copy() for w in base.get_weights()]
    hist = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0]) and hist.history["consistency_loss"][0] > 0
    assert any(not np.allclose(a, b) for a, b in zip(before, base.get_weights()))
    np.testing.assert_array_equal(model.predict(x, verbose=0), base.predict(x, verbose=0))


def test_both_construction_forms_in_one_process():
    # Functional construction must not break subclass-style wrapping afterwards.
    a = RDropModel(*mlp(), alpha=1.0)
    b = RDropModel.from_model(_sequential(), alpha=1.0)
    c = RDropModel(*mlp(), alpha=1.0)
    assert all(isinstance(m, RDropModel) for m in (a, b, c))


@pytest.mark.parametrize("form", ["functional", "sequential", "subclassed"])
def test_save_load_round_trip(tmp_path, form):
    x, y = data(32)
    if form == "functional":
        model = RDropModel(*mlp(), alpha=0.3, passes=3, consistency_every=2)
    elif form == "sequential":
        model = RDropModel.from_model(_sequential(), alpha=[0.25], consistency="kl")
    else:
        model = RDropModel.from_model(_subclassed(), alpha=2.0, log_consistency=False)
    _compile(model)
    model.train_on_batch(x, y)
    path = str(tmp_path / "m.keras")
    model.save(path)
    custom = {"SubclassedNet": SubclassedNet} if form == "subclassed" else None
    loaded = keras.models.load_model(path, custom_objects=custom)
    assert type(loaded) is RDropModel
    for attr in ("alpha", "passes", "consistency_every", "consistency", "log_consistency"):
        assert loaded.get_config()[attr] == model.get_config()[attr]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    # The loaded model keeps training with R-Drop.
    logs = loaded.train_on_batch(x, y, return_dict=True)
    assert ("consistency_loss" in logs) == (form != "subclassed")


def test_bad_arguments():
    args = mlp()
    with pytest.raises(ValueError, match="alpha"):
        RDropModel(*args, alpha=-0.1)
    with pytest.raises(ValueError, match="alpha"):
        RDropModel(*args, alpha=float("nan"))
    with pytest.raises(ValueError, match="passes"):
        RDropModel(*args, passes=1)
    with pytest.raises(ValueError, match="consistency_every"):
        RDropModel(*args, consistency_every=0)
    with pytest.raises(ValueError, match="consistency"):
        RDropModel(*args, consistency="cosine")
    with pytest.raises(ValueError, match="either"):
        RDropModel(alpha=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RDropModel.from_model(_sequential())  # has dropout: no warning
    with pytest.warns(UserWarning, match="no dropout-like layer"):
        RDropModel.from_model(keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)]))


def test_unsupported_loss_is_a_clear_error_unless_overridden():
    x, y = data(16)
    yf = keras.utils.to_categorical(y, 3)
    model = RDropModel(*mlp(), alpha=1.0)
    model.compile("sgd", loss="categorical_hinge")
    with pytest.raises(ValueError, match="cannot derive a consistency term"):
        model.train_on_batch(x, yf)
    model = RDropModel(*mlp(), alpha=1.0, consistency="mse")
    model.compile("sgd", loss="categorical_hinge")
    logs = model.train_on_batch(x, yf, return_dict=True)
    assert logs["consistency_loss"] > 0


def test_sample_weight_and_class_weight_reference():
    x, y = data()
    w = np.linspace(0.1, 2.0, 32).astype("float32")
    model = RDropModel(*mlp(rate=0.4), alpha=1.5)
    _compile(model)
    y_pred, loss, cons = two_pass(model, x, y, sample_weight=w)
    h1, h2 = pass_rows(y_pred)
    nll = 0.5 * ((sparse_ce(h1, y) * w).mean() + (sparse_ce(h2, y) * w).mean())
    kl = (sym_kl(log_softmax(h1), log_softmax(h2)) * w).mean()
    np.testing.assert_allclose(cons, 1.5 * kl / 2, rtol=1e-5)
    np.testing.assert_allclose(loss, nll + 1.5 * kl / 2, rtol=1e-5)
    # class_weight goes through fit's own sample-weight path.
    hist = model.fit(x, y, class_weight={0: 1.0, 1: 2.0, 2: 0.5}, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])


def test_add_loss_regularisation_counted_once():
    x, y = data()
    reg = keras.regularizers.L2(0.1)

    def build(rate):
        inputs = keras.Input((8,))
        h = keras.layers.Dense(16, kernel_regularizer=reg, activity_regularizer=keras.regularizers.L1(0.01))(inputs)
        if rate:
            h = keras.layers.Dropout(rate)(h)
        return inputs, keras.layers.Dense(3)(h)

    with pytest.warns(UserWarning):
        rdrop = RDropModel(*build(0.0), alpha=1.0)
    plain = keras.Model(*build(0.0))
    plain.set_weights(rdrop.get_weights())
    _compile(rdrop)
    _compile(plain)
    np.testing.assert_allclose(
        rdrop.train_on_batch(x, y, return_dict=True)["loss"],
        plain.train_on_batch(x, y, return_dict=True)["loss"],
        rtol=1e-6,
    )
    # With dropout: reference = mean NLL + consistency + regularisers (once).
    model = RDropModel(*build(0.3), alpha=1.0)
    _compile(model)
    y_pred, loss, cons = two_pass(model, x, y)
    h1, h2 = pass_rows(y_pred)
    nll = 0.5 * (sparse_ce(h1, y).mean() + sparse_ce(h2, y).mean())
    reg_loss = float(to_np(keras.ops.sum([keras.ops.sum(v) for v in model.losses])))
    np.testing.assert_allclose(loss, nll + cons + reg_loss, rtol=1e-5)
    assert reg_loss > 0
