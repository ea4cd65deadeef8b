"""Relative schedules (`relative=True`, `rate=None`) on stock Keras dropout layers do not
compound across save / load: the configured rate survives `.keras` round trips."""

import os

import keras
import numpy as np
import pytest
from callback_helpers import assert_follows, fit_probe, probe_model

from keras_dropouts.callbacks import DropoutScheduler, EarlyDropout, LateDropout
from keras_dropouts.layers import ScheduledDropout

CALLBACKS = {
    "scheduler_relative": lambda: DropoutScheduler(
        lambda step: 0.5, layers=keras.layers.Dropout, relative=True
    ),
    "steps_relative": lambda: DropoutScheduler(
        lambda step: 0.5 - 0.25 * (step >= 4), layers=[keras.layers.Dropout, "gauss"],
        relative=True,
    ),
    "early_own_rate": lambda: EarlyDropout(
        None, cutoff_epoch=1, mode="linear", layers=[keras.layers.Dropout, "gauss"]
    ),
    "late_own_rate": lambda: LateDropout(None, start_epoch=1, layers=keras.layers.Dropout),
}


def _model():
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu")(inputs)
    h = keras.layers.Dropout(0.2, seed=1, name="stock")(h)
    h = keras.layers.GaussianDropout(0.4, seed=2, name="gauss")(h)
    h = ScheduledDropout(0.3, seed=3, name="package")(h)
    return keras.Model(inputs, keras.layers.Dense(3)(h))


def _fit(model, callback):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 8)).astype("float32"), rng.integers(0, 3, 16)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[callback])


def _configured(model):
    return {name: model.get_layer(name).get_config()["rate"] for name in ("stock", "gauss", "package")}


@pytest.mark.parametrize("name", sorted(CALLBACKS))
def test_configured_rate_survives_two_keras_round_trips(name, tmp_path):
    model = _model()
    built = {"stock": 0.2, "gauss": 0.4, "package": 0.3}
    logged = []
    for i in range(2):
        history = _fit(model, CALLBACKS[name]())
        logged.append(history.history)
        assert _configured(model) == built
        path = os.path.join(tmp_path, f"m{i}.keras")
        model.save(path)
        model = keras.models.load_model(path)
        assert _configured(model) == built
        assert model.get_layer("stock").rate == 0.2
        assert model.get_layer("gauss").rate == 0.4
    # The reloaded model is scheduled from the same rates: the same logged values.
    key = [k for k in logged[0] if k.endswith("_rate")]
    assert key and logged[0][key[0]] == logged[1][key[0]]


def test_current_rate_is_left_alone_and_a_rate_set_by_hand_is_saved():
    # EarlyDropout(None) ends at 0: the stock layer keeps rate 0 in this session (a
    # later fit without the callback trains without dropout) and saves its configured
    # rate; a rate the user sets afterwards is saved as is.
    model = probe_model(keras.layers.Dropout(0.5, seed=1, name="stock"))
    fracs, _ = fit_probe(
        model, 4, [EarlyDropout(None, cutoff_epoch=1, layers=keras.layers.Dropout)], epochs=2
    )
    assert_follows(fracs, [0.5] * 4 + [0.0] * 4)
    layer = model.get_layer("stock")
    assert layer.rate == 0.0
    assert layer.get_config()["rate"] == 0.5
    fracs, _ = fit_probe(model, 2, [])
    assert_follows(fracs, [0.0] * 2)
    layer.rate = 0.3
    assert keras.layers.deserialize(keras.layers.serialize(layer)).rate == 0.3


def test_absolute_schedule_on_a_stock_layer_is_unchanged():
    # Without `relative`, the stock layer keeps the schedule's last rate (as before).
    model = _model()
    _fit(model, EarlyDropout(0.1, cutoff_epoch=1, layers="stock"))
    assert model.get_layer("stock").rate == 0.0
