"""Schedules reach the compiled train step at the very next optimizer step."""

import keras
import numpy as np
import pytest
from callback_helpers import (
    BACKEND,
    TRACES,
    LastValue,
    TraceCount,
    ZeroFrac,
    assert_follows,
    fit_probe,
    probe_model,
)
from keras import ops

import keras_dropouts as kd

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
    assert hist.history["early_dropout_rate"] == [0.5, 0.0, 0.0]
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
@pytest.mark.parametrize("jit", JITS)
def test_steps_per_execution_rate_is_right_at_every_step(jit):
    model = probe_model(kd.layers.ScheduledDropout(0.0, seed=4), jit=jit, steps_per_execution=4)
    sched = kd.schedules.Early(0.6, 12, "linear")
    fracs, _ = fit_probe(model, 12, [kd.callbacks.DropoutScheduler(sched)])
    # The metric shows the last step of each execution of 4 steps: the rate was
    # computed inside the step, not once per execution (which would give 0.6, 0.4, 0.2).
    assert_follows(fracs, [sched(s) for s in (3, 7, 11)])


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
    # The log is read back from the layer: the rate of each epoch's last step.
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
    # Epochs are numbered as fit's own progress lines ("Epoch 2/3").
    assert "EarlyDropout: Epoch 2: early_rate 0.2 -> 0 on 1 layer(s)." in out
    assert out.count("EarlyDropout:") == 1


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: kd.callbacks.EarlyDropout(-0.1, 1), "rate"),
        (lambda: kd.callbacks.EarlyDropout(1.5, 1), "between 0 and 1"),
        (lambda: kd.callbacks.EarlyDropout("0.1", 1), "rate"),
        (lambda: kd.callbacks.EarlyDropout(0.1, "2"), "cutoff_epoch"),
        (lambda: kd.callbacks.EarlyDropout(0.1, float("inf")), "cutoff_epoch"),
        (lambda: kd.callbacks.EarlyDropout(0.1, cutoff_step=True), "cutoff_step"),
        (lambda: kd.callbacks.LateDropout(0.1, 3, mode="linear", end_epoch=2), "end_epoch"),
        (lambda: kd.callbacks.LateDropout(0.1, start_step=9, end_step=4), "end_step"),
        (lambda: kd.callbacks.DropoutScheduler(lambda s: 0.1, verbose=2), "verbose"),
        (lambda: kd.callbacks.DropoutScheduler(lambda s: 0.1, relative="yes"), "relative"),
        (lambda: kd.callbacks.DropoutScheduler(lambda s: 0.1, log_name=""), "log_name"),
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


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda step: 1.5, r"returned 1\.5.*\[0, 1\]"),
        (lambda step: "0.1", r"returned '0\.1'"),
        (lambda step: None, "returned None"),
        (lambda step: [0.1, 0.2], r"returned \[0\.1, 0\.2\]"),
    ],
)
def test_schedule_bad_values_are_caught_at_fit_start(fn, match):
    model = probe_model(kd.layers.ScheduledDropout(0.0))
    with pytest.raises(ValueError, match=match):
        fit_probe(model, 2, [kd.callbacks.DropoutScheduler(fn)])


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
