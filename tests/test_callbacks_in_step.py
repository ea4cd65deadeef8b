"""Issue 8: rates are computed inside the compiled train step, with no host writes."""

import warnings

import keras
import numpy as np
import pytest
from callback_helpers import (
    BACKEND,
    TRACES,
    TraceCount,
    ZeroFrac,
    assert_follows,
    fit_probe,
    probe_model,
)

import keras_dropouts as kd

JITS = [False] if BACKEND == "torch" else [True, False]


def _eager():
    if BACKEND != "tensorflow":
        return True
    import tensorflow as tf

    return tf.executing_eagerly()


class AssignSpy(keras.callbacks.Callback):
    """Counts host (eager) assigns of the given variables while batches run.

    Counted up to the end of the last batch: JAX's own end-of-epoch state sync
    (one assign per variable per epoch, by Keras) comes after it.
    """

    def __init__(self, variables):
        super().__init__()
        self.variables = variables
        self.count = 0
        self.host_assigns = None

    def on_train_batch_end(self, batch, logs=None):
        self.host_assigns = self.count

    def on_train_begin(self, logs=None):
        for v in self.variables:
            original = v.assign

            def spy(value, _original=original):
                if _eager():  # an assign traced into a TF graph runs on the device
                    self.count += 1
                return _original(value)

            v.assign = spy

    def on_train_end(self, logs=None):
        for v in self.variables:
            del v.assign


def _deep_probe(n_layers, jit="auto"):
    """`n_layers` ScheduledDropout layers in a row; the zero fraction of the last one."""
    inp = keras.Input((512,))
    x = inp
    layers = []
    for i in range(n_layers):
        layer = kd.layers.ScheduledDropout(0.0, seed=i, name=f"d{i}")
        layers.append(layer)
        x = layer(x)
    d = TraceCount()(x)
    model = keras.Model(
        inp, {"pred": keras.layers.Dense(1, name="pred")(d), "zero_frac": ZeroFrac(name="zero_frac")(x)}
    )
    from callback_helpers import LastValue

    model.compile(
        keras.optimizers.SGD(1e-6),
        loss={"pred": "mse", "zero_frac": None},
        metrics={"zero_frac": [LastValue()]},
        jit_compile=jit,
    )
    return model, layers


@pytest.mark.parametrize("jit", JITS)
def test_no_host_rate_writes_during_a_per_step_ramp(jit):
    model, layers = _deep_probe(3, jit)
    spy = AssignSpy([layer.rate_variable for layer in layers])
    cb = kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.6, end_step=10))
    fracs, _ = fit_probe(model, 10, [cb, spy])
    assert cb.evaluation == "in_step"
    assert spy.host_assigns == 0
    # Three layers in a row keep (1 - r)^3 of the units.
    assert_follows(fracs, [1 - (1 - 0.6 * s / 10) ** 3 for s in range(10)])
    # `layer.rate` after fit is the rate the last step used (step 9).
    for layer in layers:
        assert layer.rate == pytest.approx(0.54, abs=1e-6)


@pytest.mark.parametrize("jit", JITS)
def test_one_trace_for_two_fits_with_different_ramps(jit):
    def run(callbacks_per_fit):
        model = probe_model(kd.layers.ScheduledDropout(0.0, seed=11), jit=jit)
        counts, all_fracs = [], []
        for cbs in callbacks_per_fit:
            TRACES["n"] = 0
            fracs, _ = fit_probe(model, 6, cbs)
            counts.append(TRACES["n"])
            all_fracs.append(fracs)
        return counts, all_fracs

    baseline, _ = run([[], []])
    counts, fracs = run(
        [
            [kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.5, end_step=6))],
            [kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.3, start_rate=0.6, start_step=6, end_step=12))],
        ]
    )
    # Same number of traces as the same two fits without any schedule.
    assert counts == baseline
    assert_follows(fracs[0], [0.5 * s / 6 for s in range(6)])
    assert_follows(fracs[1], [0.6 - 0.3 * (s - 6) / 6 for s in range(6, 12)])


def test_traceable_callable_runs_in_step():
    model = probe_model(kd.layers.ScheduledDropout(0.0, seed=12))
    cb = kd.callbacks.DropoutScheduler(lambda step: 0.05 * keras.ops.cast(step % 4, "float32"))
    fracs, _ = fit_probe(model, 8, [cb])
    assert cb.evaluation == "in_step"
    assert_follows(fracs, [0.05 * (s % 4) for s in range(8)])


@pytest.mark.skipif(BACKEND == "torch", reason="torch runs every callable eagerly in the step")
def test_untraceable_callable_falls_back_to_host_with_a_warning():
    model = probe_model(kd.layers.ScheduledDropout(0.0, seed=13))
    layer = model.layers[1]
    spy = AssignSpy([layer.rate_variable])
    cb = kd.callbacks.DropoutScheduler(lambda step: 0.4 if step % 2 else 0.1)
    with pytest.warns(UserWarning, match="cannot be evaluated inside the compiled train step"):
        fracs, _ = fit_probe(model, 6, [cb, spy])
    assert cb.evaluation == "host"
    assert spy.host_assigns >= 6  # the spy sees host writes: at least one per step here
    assert_follows(fracs, [0.4 if s % 2 else 0.1 for s in range(6)])


@pytest.mark.skipif(BACKEND == "torch", reason="mixed_float16 training is slow on torch CPU")
def test_mixed_precision_loss_scaling_keeps_the_schedule():
    keras.config.set_dtype_policy("mixed_float16")
    model = probe_model(kd.layers.ScheduledDropout(0.0, seed=14))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    cb = kd.callbacks.EarlyDropout(0.6, cutoff_step=6, mode="linear")
    fracs, _ = fit_probe(model, 8, [cb])
    assert_follows(fracs, [kd.schedules.early_rate(s, 0.6, 6, "linear") for s in range(8)])


def test_composes_with_a_custom_train_step_and_rdrop():
    class Counting(keras.Model):
        steps = 0

        def train_step(self, *args, **kwargs):
            type(self).steps += 1  # runs once per trace when compiled, per step eagerly
            return super().train_step(*args, **kwargs)

    inp = keras.Input((16,))
    drop = kd.layers.ScheduledDropout(0.0, seed=15)
    model = Counting(inp, keras.layers.Dense(3)(drop(inp)))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = np.ones((32, 16), "float32"), np.zeros((32,), "int32")
    cb = kd.callbacks.LateDropout(0.3, start_step=2)
    hist = model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[cb])
    assert Counting.steps >= 1 and drop.rate == pytest.approx(0.3)
    assert hist.history["late_dropout_rate"] == pytest.approx([0.3])

    inp = keras.Input((16,))
    drop2 = kd.layers.ScheduledDropout(0.0, seed=16)
    base = keras.Model(inp, keras.layers.Dense(3)(drop2(inp)))
    rdrop = kd.models.RDropModel.from_model(base, alpha=1.0)
    rdrop.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.4, end_step=3))
    hist = rdrop.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[cb])
    assert drop2.rate == pytest.approx(0.4)
    assert "consistency_loss" in hist.history


def test_train_step_is_restored_after_fit():
    model = probe_model(kd.layers.ScheduledDropout(0.2, seed=17))
    assert "train_step" not in model.__dict__
    fit_probe(model, 3, [kd.callbacks.EarlyDropout(0.5, cutoff_step=1)])
    assert "train_step" not in model.__dict__
    assert model.layers[1].rate == 0.0
    # Without a callback the layer keeps its last rate: the schedule is gone.
    fracs, _ = fit_probe(model, 2, [])
    np.testing.assert_array_equal(fracs, 0.0)


def test_warning_free_on_the_built_in_path():
    model = probe_model(kd.layers.ScheduledDropout(0.0, seed=18))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*keras_dropouts.*|.*DropoutScheduler.*")
        fit_probe(model, 2, [kd.callbacks.DropoutScheduler(kd.schedules.Constant(0.2))])


def _distributed_scope():
    """A 2-replica scope (JAX DataParallel on host devices, TF MirroredStrategy), or skip."""
    import contextlib

    if BACKEND == "jax":
        devices = keras.distribution.list_devices("cpu")
        if len(devices) < 2:
            pytest.skip("needs 2 JAX host devices (XLA_FLAGS set in conftest)")
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices[:2]))
        return contextlib.nullcontext()
    if BACKEND == "tensorflow":
        import tensorflow as tf

        if len(tf.config.list_logical_devices("CPU")) < 2:
            pytest.skip("needs 2 logical TF CPU devices (set in conftest)")
        # No collective ops: their instance keys would clash with a later strategy's
        # collectives in the same test process.
        return tf.distribute.MirroredStrategy(
            ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
        ).scope()
    pytest.skip("torch backend has no Keras data-parallel distribution on CPU")


def test_schedule_under_data_parallel_and_mirrored_strategy():
    scope = _distributed_scope()
    try:
        with scope:
            inp = keras.Input((8,))
            drop = kd.layers.ScheduledDropout(0.0, seed=19)
            model = keras.Model(inp, keras.layers.Dense(1)(drop(inp)))
            model.compile("sgd", "mse")
        seen = []
        probe = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: seen.append(drop.rate)
        )
        cb = kd.callbacks.EarlyDropout(0.5, cutoff_step=6, mode="linear")
        hist = model.fit(
            np.ones((32, 8), "float32"), np.ones((32, 1), "float32"), batch_size=8, epochs=2,
            verbose=0, callbacks=[cb, probe],
        )
    finally:
        if BACKEND == "jax":
            keras.distribution.set_distribution(None)
    # Last steps of the epochs: 3 -> 0.5 * (1 - 3/6); 7 -> 0.
    assert seen == [0.25, 0.0]
    assert hist.history["early_dropout_rate"] == [0.25, 0.0]


def test_gradient_accumulation_follows_optimizer_updates():
    inp = keras.Input((8,))
    drop = kd.layers.ScheduledDropout(0.0, seed=20)
    model = keras.Model(inp, keras.layers.Dense(1)(drop(inp)))
    model.compile(keras.optimizers.SGD(1e-3, gradient_accumulation_steps=2), "mse")
    rates = []

    class Rates(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            _ = self.model  # JAX: sync the state
            rates.append(drop.rate)

    cb = kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.4, end_step=4))
    model.fit(np.ones((48, 8), "float32"), np.ones((48, 1), "float32"), batch_size=8,
              epochs=1, verbose=0, callbacks=[cb, Rates()])
    # Six micro-batches are three optimizer updates: steps 0, 0, 1, 1, 2, 2.
    np.testing.assert_allclose(rates, [0.0, 0.0, 0.1, 0.1, 0.2, 0.2], atol=1e-7)


@pytest.mark.parametrize("jit", JITS)
def test_layers_sharing_a_scale_share_one_rate_and_others_keep_theirs(jit):
    """A relative schedule over rates 0.1, 0.3, 0.1, 0.3: two groups of layers with equal
    knots (computed once per group on JAX); each layer ends at its own rate."""
    inp = keras.Input((4,))
    x = inp
    layers = []
    for i, r in enumerate((0.1, 0.3, 0.1, 0.3)):
        layers.append(kd.layers.ScheduledDropout(r, seed=i, name=f"g{i}"))
        x = layers[-1](x)
    model = keras.Model(inp, keras.layers.Dense(1)(x))
    model.compile(keras.optimizers.SGD(1e-6), "mse", jit_compile=jit)
    cb = kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(1.0, end_step=8), relative=True)
    model.fit(np.ones((12, 4)), np.ones((12, 1)), batch_size=4, epochs=1, verbose=0, callbacks=[cb])
    assert cb.evaluation == "in_step"
    rates = np.array([float(layer.rate) for layer in layers])
    assert 0 < rates[0] < 0.05  # the scheduled rate (factor <= 3/8), not the configured 0.1
    np.testing.assert_allclose(rates[[2, 3]], rates[[0, 1]], rtol=0, atol=0)
    np.testing.assert_allclose(rates[1], 3 * rates[0], rtol=1e-5)
