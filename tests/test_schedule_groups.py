"""Layers that share a schedule share one rate in the compiled step (issue 27, part 1).

The step computes and writes one rate per group of layers with equal schedules (the
group's first layer); the others read it. Every layer must still drop at its rate at
every step, report it through `layer.rate` and save it mid-`fit`, and hold it in its own
variable after the `fit`.
"""

import os

import keras
import numpy as np
import pytest
from callback_helpers import BATCH, WIDTH, LastValue, ZeroFrac, assert_follows

import keras_dropouts as kd
from keras_dropouts.schedules import linear_ramp

N_LAYERS, STEPS = 3, 6


def _model(rates=(0.5, 0.5, 0.5)):
    inp = keras.Input((WIDTH,))
    outputs, losses, metrics = {}, {}, {}
    drops = [kd.layers.ScheduledDropout(r, seed=30 + k, name=f"d{k}") for k, r in enumerate(rates)]
    for k, drop in enumerate(drops):
        outputs[f"f{k}"] = ZeroFrac(name=f"f{k}")(drop(inp))
        losses[f"f{k}"] = None
        metrics[f"f{k}"] = [LastValue()]
    outputs["pred"] = keras.layers.Dense(1, kernel_initializer="zeros", name="pred")(inp)
    losses["pred"] = "mse"
    model = keras.Model(inp, outputs)
    model.compile(keras.optimizers.SGD(1e-6), loss=losses, metrics=metrics)
    return model, drops


class Watch(keras.callbacks.Callback):
    """Per step: each output's zero fraction, and (after a state sync) each layer's rate."""

    def __init__(self, drops, save_at=None, path=None):
        super().__init__()
        self.drops, self.save_at, self.path = drops, save_at, path
        self.fracs, self.rates = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.fracs.append([float(logs[f"f{k}_frac"]) for k in range(len(self.drops))])
        _ = self.model  # syncs the JAX state
        self.rates.append([d.rate for d in self.drops])
        if batch == self.save_at:
            self.model.save(self.path)


def _fit(model, callbacks):
    x = np.ones((BATCH * STEPS, WIDTH), "float32")
    y = {f"f{k}": np.zeros((len(x), 1), "float32") for k in range(N_LAYERS)}
    y["pred"] = np.zeros((len(x), 1), "float32")
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False, callbacks=callbacks)


def test_every_layer_of_a_shared_schedule_follows_it(tmp_path):
    model, drops = _model()
    path = os.path.join(tmp_path, "mid.keras")
    watch = Watch(drops, save_at=2, path=path)
    _fit(model, [kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.5, end_step=5)), watch])
    expected = [linear_ramp(s, 0.5, 5) for s in range(STEPS)]
    fracs = np.asarray(watch.fracs)
    for k in range(N_LAYERS):
        assert_follows(fracs[:, k], expected)
        assert [r[k] for r in watch.rates] == pytest.approx(expected, abs=1e-7)
    # After the fit each layer's own variable holds the last rate.
    for d in drops:
        assert float(keras.ops.convert_to_numpy(d.rate_variable.value)) == pytest.approx(0.5)
        assert d.rate_source is d.rate_variable
    # A save in the middle of the fit stored every layer's rate of that step.
    loaded = keras.saving.load_model(path, custom_objects={"ZeroFrac": ZeroFrac, "LastValue": LastValue})
    for k in range(N_LAYERS):
        assert loaded.get_layer(f"d{k}").rate == pytest.approx(expected[2], abs=1e-7)


def test_layers_with_different_factors_keep_their_own_rates():
    # relative=True: each layer's rate is the schedule times its own configured rate;
    # a traceable callable (not a built-in schedule) takes the other in-step path.
    model, drops = _model(rates=(0.2, 0.4, 0.4))

    def ramp(step):
        return keras.ops.minimum(keras.ops.cast(step, "float32") / 5.0, 1.0)

    watch = Watch(drops)
    _fit(model, [kd.callbacks.DropoutScheduler(ramp, relative=True), watch])
    assert watch.model is model
    fracs = np.asarray(watch.fracs)
    for k, base in enumerate((0.2, 0.4, 0.4)):
        expected = [min(s / 5.0, 1.0) * base for s in range(STEPS)]
        assert_follows(fracs[:, k], expected)
        assert [r[k] for r in watch.rates] == pytest.approx(expected, abs=1e-6)
    assert [d.rate for d in drops] == pytest.approx([0.2, 0.4, 0.4])


def test_fits_after_a_shared_schedule_run_and_keep_their_rates():
    model, drops = _model()
    for _ in range(2):  # the second fit reuses the cached scheduled step
        _fit(model, [kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.5, end_step=5))])
        assert [d.rate for d in drops] == pytest.approx([0.5] * N_LAYERS)
    watch = Watch(drops)
    _fit(model, [watch])  # no schedule: every layer at its own (last) rate
    assert_follows(np.asarray(watch.fracs)[:, 2], [0.5] * STEPS)
    drops[2].rate = 0.1
    watch = Watch(drops)
    _fit(model, [watch])
    assert_follows(np.asarray(watch.fracs)[:, 2], [0.1] * STEPS)
    assert_follows(np.asarray(watch.fracs)[:, 1], [0.5] * STEPS)
