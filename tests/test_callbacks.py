"""Schedules reach the compiled train step at the very next optimizer step.

A probe model feeds ones through a dropout layer; a metric reports the fraction of
zeros of the *last* step (not an epoch mean), read from the batch logs, so the
JAX state is never synced by the probe itself (DESIGN.md §2).
"""

import keras
import numpy as np
import pytest
from keras import ops

import keras_dropouts as kd

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


# On torch "jit" means torch.compile: far too slow for this suite (eager only there).
JITS = [False] if BACKEND == "torch" else [True, False]


@pytest.mark.parametrize("jit", JITS)
def test_early_linear_follows_schedule_step_by_step(jit):
    model = probe_model(kd.layers.ScheduledDropout(0.0, seed=1), jit=jit)
    cb = kd.callbacks.EarlyDropout(0.6, cutoff_step=8, mode="linear")
    fracs, _ = fit_probe(model, 12, [cb])
    # Changes at every step mid-epoch: a one-step lag would be off by 0.075.
    assert_follows(fracs, [kd.schedules.early_rate(s, 0.6, 8, "linear") for s in range(12)])


@pytest.mark.parametrize("jit", JITS)
def test_epoch_cutoffs_are_exact_and_follow_iterations(jit):
    model = probe_model(kd.layers.ScheduledDropout(0.0, seed=2), jit=jit)
    early = kd.callbacks.EarlyDropout(0.5, cutoff_epoch=1.5)  # 4 steps/epoch -> cutoff step 6
    fracs, hist = fit_probe(model, 4, [early], epochs=3)
    expected = [0.5 if s < 6 else 0.0 for s in range(12)]
    assert_follows(fracs, expected)
    assert hist.history["dropout_rate"] == [0.5, 0.0, 0.0]
    # Resume with initial_epoch: the schedule follows optimizer.iterations (12 now).
    late = kd.callbacks.LateDropout(0.3, start_epoch=4)  # start at step 16
    fracs, _ = fit_probe(model, 4, [late], epochs=6, initial_epoch=3)
    assert_follows(fracs, [0.3 if s >= 16 else 0.0 for s in range(12, 24)])


def test_schedule_survives_save_and_reload(tmp_path):
    model = probe_model(kd.layers.ScheduledDropout(0.0, seed=3))
    fit_probe(model, 5, [kd.callbacks.LateDropout(0.4, start_step=7)])
    path = str(tmp_path / "probe.keras")
    model.save(path)
    loaded = keras.saving.load_model(
        path,
        custom_objects={"ZeroFrac": ZeroFrac, "TraceCount": TraceCount, "LastValue": LastValue},
    )
    assert int(ops.convert_to_numpy(loaded.optimizer.iterations)) == 5
    fracs, _ = fit_probe(loaded, 5, [kd.callbacks.LateDropout(0.4, start_step=7)])
    assert_follows(fracs, [0.4 if s >= 7 else 0.0 for s in range(5, 10)])


@pytest.mark.skipif(BACKEND == "torch", reason="torch requires steps_per_execution=1")
def test_steps_per_execution_granularity():
    model = probe_model(kd.layers.ScheduledDropout(0.0, seed=4), steps_per_execution=3)
    sched = kd.schedules.Early(0.6, 9, "linear")
    fracs, _ = fit_probe(model, 12, [kd.callbacks.DropoutScheduler(sched)])
    # One callback per execution: all 3 steps use the rate of the first step of it;
    # the metric shows the last step of each execution.
    assert_follows(fracs, [sched(s) for s in (0, 3, 6, 9)])


@pytest.mark.parametrize("jit", JITS)
def test_package_layers_never_retrace(jit):
    model = probe_model(kd.layers.ScheduledDropout(0.1, seed=5), jit=jit)
    TRACES["n"] = 0
    fit_probe(model, 6, [])
    baseline = TRACES["n"]
    model = probe_model(kd.layers.ScheduledDropout(0.1, seed=5), jit=jit)
    TRACES["n"] = 0
    cb = kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.5, end_step=6))
    fracs, _ = fit_probe(model, 6, [cb])
    assert TRACES["n"] == baseline
    assert cb.retrace_count == 0
    assert_follows(fracs, [0.5 * s / 6 for s in range(6)])


def test_dropblock_ramp_over_all_training_in_one_line():
    model = probe_model(kd.layers.ScheduledDropout(0.0, seed=6))
    fracs, hist = fit_probe(
        model, 5, [kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.5))], epochs=2
    )
    assert_follows(fracs, [0.5 * s / 10 for s in range(10)])
    assert hist.history["dropout_rate"] == pytest.approx([0.2, 0.45])


def test_learning_rate_schedule_objects_are_accepted():
    lr_like = keras.optimizers.schedules.PolynomialDecay(0.5, decay_steps=4, end_learning_rate=0.0)
    model = probe_model(kd.layers.ScheduledDropout(0.0, seed=7))
    fracs, _ = fit_probe(model, 6, [kd.callbacks.DropoutScheduler(lr_like)])
    assert_follows(fracs, [0.5, 0.375, 0.25, 0.125, 0.0, 0.0])


def test_depth_rule_droppath():
    inp = keras.Input((8,))
    x = inp
    paths = []
    for i in range(5):
        p = kd.layers.DropPath(0.0, name=f"dp{i}")
        paths.append(p)
        x = keras.layers.Add()([x, p(keras.layers.Dense(8)(x))])
    model = keras.Model(inp, keras.layers.Dense(1)(x))
    model.compile("sgd", "mse")
    cb = kd.callbacks.LateDropout(0.4, start_step=0, layers=kd.layers.DropPath, depth_rule=True)
    model.fit(np.ones((8, 8)), np.ones((8, 1)), epochs=1, batch_size=4, verbose=0, callbacks=[cb])
    assert [t.name for t in cb.targets] == [f"dp{i}" for i in range(5)]
    np.testing.assert_allclose([p.rate for p in paths], np.linspace(0, 0.4, 5), atol=1e-7)


def test_logs_and_verbose(capsys):
    model = probe_model(kd.layers.ScheduledDropout(0.2, seed=8))
    cb = kd.callbacks.EarlyDropout(0.2, cutoff_step=3, verbose=1, log_name="early_rate")
    _, hist = fit_probe(model, 2, [cb], epochs=3)
    assert hist.history["early_rate"] == [0.2, 0.0, 0.0]
    out = capsys.readouterr().out
    assert "EarlyDropout: epoch 2, step 3: dropout rate 0.2 -> 0" in out
    assert out.count("EarlyDropout:") == 1


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: kd.callbacks.EarlyDropout(-0.1, 1), "rate"),
        (lambda: kd.callbacks.EarlyDropout(1.5, 1), r"\[0, 1\]"),
        (lambda: kd.callbacks.EarlyDropout(0.1, -2), "cutoff_epoch"),
        (lambda: kd.callbacks.EarlyDropout(0.1, 2, mode="cosine"), "mode"),
        (lambda: kd.callbacks.EarlyDropout(0.1), "cutoff_epoch"),
        (lambda: kd.callbacks.LateDropout(0.1, -1), "start_epoch"),
        (lambda: kd.callbacks.LateDropout(0.1, 1, mode="step"), "mode"),
        (
            lambda: kd.callbacks.DropoutScheduler(lambda s: 0.1, steps_per_epoch=0),
            "steps_per_epoch",
        ),
    ],
)
def test_bad_arguments(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_non_callable_schedule():
    with pytest.raises(TypeError, match="schedule"):
        kd.callbacks.DropoutScheduler(0.1)


def test_schedule_out_of_range_at_runtime():
    model = probe_model(kd.layers.ScheduledDropout(0.0))
    with pytest.raises(ValueError, match=r"returned 1\.5.*\[0, 1\]"):
        fit_probe(model, 2, [kd.callbacks.DropoutScheduler(lambda step: 1.5)])


def test_unknown_steps_per_epoch_is_a_clear_error():
    def gen():
        while True:
            yield np.ones((4, 3), "float32"), np.ones((4, 1), "float32")

    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(1)(kd.layers.ScheduledDropout(0.1)(inp)))
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="steps_per_epoch"):
        model.fit(
            gen(),
            epochs=1,
            steps_per_epoch=None,
            verbose=0,
            callbacks=[kd.callbacks.EarlyDropout(0.1, cutoff_epoch=1)],
        )
