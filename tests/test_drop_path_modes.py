"""DropPath's variants: `mode="batch"` (one draw for the batch) and `scale_by_keep=False`."""

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_np

import keras_dropouts as kd


def _five_sigma(rate, n):
    return 5 * np.sqrt(rate * (1 - rate) / n)


def test_batch_mode_drops_the_whole_batch_with_probability_rate():
    draws, rate = 800, 0.3
    layer = kd.layers.DropPath(rate, seed=3, mode="batch")
    x = np.ones((6, 4), "float32")
    dropped = []
    for _ in range(draws):
        y = to_np(layer(x, training=True))
        all_zero, all_kept = (y == 0).all(), np.allclose(y, 1 / (1 - rate), rtol=1e-6)
        assert all_zero or all_kept  # never a mix: one draw for the whole batch
        dropped.append(all_zero)
    assert abs(np.mean(dropped) - rate) < _five_sigma(rate, draws)


def test_batch_mode_op_and_identity_at_inference():
    x = np.random.rand(5, 3, 2).astype("float32")
    y = to_np(kd.ops.drop_path(x, 0.5, seed=1, mode="batch"))
    assert (y == 0).all() or np.allclose(y, 2 * x, rtol=1e-6)
    np.testing.assert_array_equal(to_np(kd.layers.DropPath(0.7, mode="batch")(x)), x)
    np.testing.assert_array_equal(to_np(kd.ops.drop_path(x, 0.0, mode="batch")), x)
    np.testing.assert_array_equal(to_np(kd.ops.drop_path(x, 1.0, mode="batch")), 0 * x)


@pytest.mark.parametrize("mode", ["row", "batch"])
def test_no_rescaling_keeps_kept_samples_exactly(mode):
    n, rate = 20_000, 0.25
    x = np.random.rand(n, 3).astype("float32") + 0.5
    layer = kd.layers.DropPath(rate, seed=5, mode=mode, scale_by_keep=False)
    y = to_np(layer(x, training=True))
    kept = (y != 0).all(axis=1)
    assert np.all(kept | (y == 0).all(axis=1))
    np.testing.assert_array_equal(y[kept], x[kept])  # no 1 / (1 - rate)
    if mode == "row":
        assert abs((1 - kept.mean()) - rate) < _five_sigma(rate, n)
    np.testing.assert_array_equal(to_np(layer(x, training=False)), x)
    op = to_np(kd.ops.drop_path(x, rate, seed=5, mode=mode, scale_by_keep=False))
    assert set(np.unique(op / x).round(6)) <= {0.0, 1.0}


def test_defaults_are_unchanged():
    layer = kd.layers.DropPath(0.2)
    assert layer.mode == "row" and layer.scale_by_keep is True
    config = layer.get_config()
    assert config["mode"] == "row" and config["scale_by_keep"] is True


@pytest.mark.parametrize(
    "kwargs, name",
    [({"mode": "sample"}, "mode"), ({"mode": None}, "mode"), ({"scale_by_keep": "yes"}, "scale_by_keep")],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"argument `{name}`"):
        kd.layers.DropPath(0.1, **kwargs)
    with pytest.raises(ValueError, match=f"argument `{name}`"):
        kd.ops.drop_path(np.ones((2, 3), "float32"), 0.1, **kwargs)


def test_save_load_keeps_mode_and_scaling(tmp_path):
    layer = kd.layers.DropPath(0.3, seed=2, mode="batch", scale_by_keep=False)
    model = keras.Sequential([keras.Input((4,)), layer])
    layer.rate = 0.6
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path).layers[0]
    assert (loaded.mode, loaded.scale_by_keep, loaded.rate) == ("batch", False, 0.6)
    config, loaded_config = layer.get_config(), loaded.get_config()
    config.pop("name"), loaded_config.pop("name")
    assert config == loaded_config


@pytest.mark.parametrize("scale_by_keep", [True, False])
def test_batch_mode_rate_variable_reaches_the_compiled_step(scale_by_keep):
    # Loss = mean |DropPath(x)| with x = 1: 0 when the batch is dropped, else the scale.
    layer = kd.layers.DropPath(0.0, seed=1, mode="batch", scale_by_keep=scale_by_keep)
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer="sgd", loss="mae", jit_compile=BACKEND != "torch")
    x, y = np.ones((32, 3), "float32"), np.zeros((32, 3), "float32")
    losses = {}
    for rate in (0.0, 1.0, 0.5):
        layer.rate = rate
        losses[rate] = model.fit(x, y, batch_size=32, epochs=4, verbose=0).history["loss"]
    assert losses[0.0] == [1.0] * 4 and losses[1.0] == [0.0] * 4
    kept = 2.0 if scale_by_keep else 1.0
    assert set(np.round(losses[0.5], 5)) <= {0.0, kept}
