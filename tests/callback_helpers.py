"""Probe models for the scheduling tests.

A probe model feeds ones through a dropout layer; a metric reports the fraction of
zeros of the *last* step (not an epoch mean), read from the batch logs, so the
JAX state is never synced by the probe itself (docs/architecture.md, "JAX state").
"""

import keras
import numpy as np
from keras import ops

BACKEND = keras.backend.backend()
WIDTH, BATCH = 512, 32
N_PER_STEP = WIDTH * BATCH
TRACES = {"n": 0}


class ZeroFrac(keras.layers.Layer):
    def call(self, x):
        return ops.mean(ops.cast(ops.equal(x, 0), "float32"), axis=-1, keepdims=True)


class TraceCount(keras.layers.Layer):
    """Identity that counts how often its `call` runs (once per trace when compiled)."""

    def call(self, x):
        TRACES["n"] += 1
        return x


class LastValue(keras.metrics.Metric):
    def __init__(self, name="frac", **kwargs):
        super().__init__(name=name, **kwargs)
        self.v = self.add_variable(shape=(), initializer="zeros", name="v")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.v.assign(ops.mean(ops.cast(y_pred, "float32")))

    def result(self):
        return ops.convert_to_tensor(self.v)

    def reset_state(self):
        self.v.assign(0.0)


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.fracs = []

    def on_train_batch_end(self, batch, logs=None):
        self.fracs.append(float(logs["zero_frac_frac"]))


def probe_model(layer, jit="auto", steps_per_execution=1):
    # "auto": XLA on TF/JAX, eager on torch (torch.compile is too slow for the suite).
    inp = keras.Input((WIDTH,))
    d = TraceCount()(layer(inp))
    pred = keras.layers.Dense(1, kernel_initializer="zeros", name="pred")(d)
    frac = ZeroFrac(name="zero_frac")(d)
    model = keras.Model(inp, {"pred": pred, "zero_frac": frac})
    model.compile(
        keras.optimizers.SGD(1e-6),
        loss={"pred": "mse", "zero_frac": None},
        metrics={"zero_frac": [LastValue()]},
        jit_compile=jit,
        steps_per_execution=steps_per_execution,
    )
    return model


def fit_probe(model, steps, callbacks, epochs=1, **kwargs):
    n = BATCH * steps
    x = np.ones((n, WIDTH), "float32")
    y = {"pred": np.zeros((n, 1), "float32"), "zero_frac": np.zeros((n, 1), "float32")}
    rec = Recorder()
    history = model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=epochs,
        verbose=0,
        shuffle=False,
        callbacks=[*callbacks, rec],
        **kwargs,
    )
    return np.array(rec.fracs), history


def assert_follows(fracs, expected):
    expected = np.asarray(expected, "float64")
    assert fracs.shape == expected.shape
    # 6 standard errors of a binomial fraction over N_PER_STEP units, per step.
    tol = 6 * np.sqrt(np.maximum(expected * (1 - expected), 1e-12) / N_PER_STEP) + 1e-6
    bad = np.abs(fracs - expected) > tol
    assert not bad.any(), f"steps {np.where(bad)[0]}: got {fracs[bad]}, expected {expected[bad]}"
    # Exact zeros where the schedule says 0 (rate 0 never drops a unit).
    np.testing.assert_array_equal(fracs[expected == 0], 0.0)
