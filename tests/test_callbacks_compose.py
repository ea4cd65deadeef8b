"""Issue 13: schedules that cannot silently lie, and rates relative to each layer's own."""

import keras
import numpy as np
import pytest

import keras_dropouts as kd


class RateLog(keras.callbacks.Callback):
    """The rates the layers hold at the end of every epoch (what the last step used)."""

    def __init__(self, layers):
        super().__init__()
        self.layers = layers
        self.rates = []

    def on_epoch_end(self, epoch, logs=None):
        _ = self.model  # JAX: sync the state into the variables first
        self.rates.append([layer.rate for layer in self.layers])


def quickstart_model():
    """The README's quick-usage model, scaled down."""
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
            kd.layers.DropBlock2D(rate=0.0, block_size=3, name="dropblock"),
            keras.layers.Flatten(),
            kd.layers.ScheduledDropout(0.2, name="head_dropout"),
            keras.layers.Dense(3),
        ]
    )


def data(n=32):
    rng = np.random.default_rng(0)
    return rng.random((n, 8, 8, 1)).astype("float32"), rng.integers(0, 3, (n,)).astype("int32")


def compiled(model):
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_readme_pair_logs_both_rates_equal_to_the_layers():
    model = compiled(quickstart_model())
    ramp = kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.1), layers="dropblock")
    early = kd.callbacks.EarlyDropout(0.2, cutoff_epoch=2, mode="linear", layers="head_dropout")
    probe = RateLog([model.get_layer("dropblock"), model.get_layer("head_dropout")])
    x, y = data()
    hist = model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[ramp, early, probe])
    assert ramp.log_key == "dropblock_rate" and early.log_key == "head_dropout_rate"
    block, head = np.array(probe.rates).T
    np.testing.assert_allclose(hist.history["dropblock_rate"], block, rtol=0, atol=1e-7)
    np.testing.assert_allclose(hist.history["head_dropout_rate"], head, rtol=0, atol=1e-7)
    # 4 steps per epoch: the ramp ends at step 12; the early cutoff is step 8.
    np.testing.assert_allclose(block, [0.1 * 3 / 12, 0.1 * 7 / 12, 0.1 * 11 / 12], atol=1e-7)
    np.testing.assert_allclose(head, [0.2 * (1 - 3 / 8), 0.2 * (1 - 7 / 8), 0.0], atol=1e-7)


def test_default_log_keys():
    assert kd.callbacks.DropoutScheduler(kd.schedules.Constant(0.1)).log_key == "dropout_rate"
    assert kd.callbacks.EarlyDropout(0.1, 1).log_key == "early_dropout_rate"
    assert kd.callbacks.LateDropout(0.1, 1).log_key == "late_dropout_rate"
    late_sd = kd.callbacks.LateDropout(0.1, 1, layers=kd.layers.DropPath)
    assert late_sd.log_key == "drop_path_rate"
    assert kd.callbacks.EarlyDropout(0.1, 1, log_name="mine").log_key == "mine"


def test_two_schedules_on_one_layer_raise_naming_both():
    model = compiled(quickstart_model())
    x, y = data()
    callbacks = [
        kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.1)),
        kd.callbacks.EarlyDropout(0.3, cutoff_epoch=5),
    ]
    with pytest.raises(ValueError, match=r"'dropblock'.*DropoutScheduler.*EarlyDropout"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=callbacks)
    # Nothing is left installed: a plain fit afterwards works and does not schedule.
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert "train_step" not in model.__dict__


def test_colliding_log_keys_raise_naming_both():
    model = compiled(quickstart_model())
    x, y = data()
    callbacks = [
        kd.callbacks.DropoutScheduler(kd.schedules.Constant(0.1), layers="dropblock", log_name="r"),
        kd.callbacks.EarlyDropout(0.3, cutoff_epoch=5, layers="head_dropout", log_name="r"),
    ]
    with pytest.raises(ValueError, match=r"same key 'r'.*DropoutScheduler.*EarlyDropout"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=callbacks)


def two_rate_model():
    """Layers built with rates 0.1 and 0.3."""
    inp = keras.Input((16,))
    a = kd.layers.ScheduledDropout(0.1, name="a")(keras.layers.Dense(16)(inp))
    b = kd.layers.ScheduledDropout(0.3, name="b")(keras.layers.Dense(16)(a))
    return compiled(keras.Model(inp, keras.layers.Dense(3)(b)))


def test_early_then_late_with_each_layers_own_rate():
    model = two_rate_model()
    layers = [model.get_layer("a"), model.get_layer("b")]
    x, y = np.ones((32, 16), "float32"), np.zeros((32,), "int32")
    probe = RateLog(layers)
    early = kd.callbacks.EarlyDropout(None, cutoff_epoch=2)
    hist = model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[early, probe])
    assert probe.rates == [[0.1, 0.3], [0.1, 0.3], [0.0, 0.0]]
    assert hist.history["early_dropout_rate"] == [1.0, 1.0, 0.0]  # the factor
    # A second fit: late dropout restores the *configured* rates, not the current 0.
    probe.rates = []
    late = kd.callbacks.LateDropout(None, start_epoch=4)  # optimizer step 16 = epoch 4
    model.fit(x, y, batch_size=8, epochs=6, initial_epoch=3, verbose=0, callbacks=[late, probe])
    assert probe.rates == [[0.0, 0.0], [0.1, 0.3], [0.1, 0.3]]


def test_linear_early_with_own_rates_decays_each_layer():
    model = two_rate_model()
    layers = [model.get_layer("a"), model.get_layer("b")]
    x, y = np.ones((32, 16), "float32"), np.zeros((32,), "int32")
    probe = RateLog(layers)
    early = kd.callbacks.EarlyDropout(None, cutoff_step=8, mode="linear")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[early, probe])
    # Last steps of the epochs are 3 and 7: factors 1 - 3/8 and 1 - 7/8.
    np.testing.assert_allclose(probe.rates, [[0.1 * 5 / 8, 0.3 * 5 / 8], [0.1 / 8, 0.3 / 8]], atol=1e-7)


def test_relative_ramp_scales_each_configured_rate():
    model = two_rate_model()
    layers = [model.get_layer("a"), model.get_layer("b")]
    x, y = np.ones((32, 16), "float32"), np.zeros((32,), "int32")
    probe = RateLog(layers)
    cb = kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(1.0), relative=True)
    hist = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[cb, probe])
    np.testing.assert_allclose(probe.rates, [[0.1 * 3 / 8, 0.3 * 3 / 8], [0.1 * 7 / 8, 0.3 * 7 / 8]], atol=1e-7)
    np.testing.assert_allclose(hist.history["dropout_rate"], [3 / 8, 7 / 8], atol=1e-6)


def test_relative_rates_for_stock_layers_selected_explicitly():
    inp = keras.Input((16,))
    h = keras.layers.Dropout(0.25, name="stock")(keras.layers.Dense(16)(inp))
    model = compiled(keras.Model(inp, keras.layers.Dense(3)(h)))
    x, y = np.ones((16, 16), "float32"), np.zeros((16,), "int32")
    late = kd.callbacks.LateDropout(None, start_step=2, layers="stock")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[late])
    assert model.get_layer("stock").rate == 0.25
    early = kd.callbacks.EarlyDropout(None, cutoff_step=5, layers="stock")
    model.fit(x, y, batch_size=8, epochs=4, initial_epoch=2, verbose=0, callbacks=[early])
    assert model.get_layer("stock").rate == 0.0


def test_configured_rate_survives_save_and_load(tmp_path):
    model = two_rate_model()
    model.get_layer("a").rate = 0.0  # e.g. after early dropout
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    a = loaded.get_layer("a")
    assert a.rate == 0.0 and a.configured_rate == 0.1


def test_unknown_layer_name_lists_the_candidates():
    model = two_rate_model()
    with pytest.raises(ValueError, match=r"matches 'nope'.*\['a', 'b'\]"):
        kd.callbacks.select_layers(model, "nope")


def test_swap_dropout_lives_in_surgery_only():
    assert callable(kd.surgery.swap_dropout) and callable(kd.surgery.to_scheduled_dropout)
    for module in (kd.callbacks, kd.layers):
        assert not hasattr(module, "swap_dropout")
        assert not hasattr(module, "to_scheduled_dropout")
    with pytest.raises(ImportError):
        from keras_dropouts.callbacks import swap_dropout  # noqa: F401
    with pytest.raises(ImportError):
        from keras_dropouts.layers import swap_dropout  # noqa: F401, F811
