import keras
import numpy as np
import pytest
from conftest import to_np

import keras_dropouts as kd


def test_rate_zero_is_exact_identity():
    x = np.random.randn(8, 32).astype("float32")
    layer = kd.layers.ScheduledDropout(0.0, seed=1)
    np.testing.assert_array_equal(to_np(layer(x, training=True)), x)


def test_inference_is_identity():
    x = np.random.randn(8, 32).astype("float32")
    layer = kd.layers.ScheduledDropout(0.7, seed=1)
    np.testing.assert_array_equal(to_np(layer(x)), x)
    np.testing.assert_array_equal(to_np(layer(x, training=False)), x)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_drop_fraction_and_scale(rate):
    n = 200_000
    x = np.ones((n,), "float32")
    y = to_np(kd.layers.ScheduledDropout(rate, seed=3)(x, training=True))
    frac = (y == 0).mean()
    se = np.sqrt(rate * (1 - rate) / n)
    assert abs(frac - rate) < 5 * se
    np.testing.assert_allclose(y[y != 0], 1.0 / (1.0 - rate), rtol=1e-6)


def test_rate_one_drops_everything_without_nan():
    y = to_np(kd.layers.ScheduledDropout(1.0, seed=3)(np.ones((64, 8), "float32"), training=True))
    assert np.all(y == 0)


def test_noise_shape_broadcasts():
    x = np.ones((16, 10, 6), "float32")
    layer = kd.layers.ScheduledDropout(0.5, noise_shape=(None, 1, None), seed=2)
    y = to_np(layer(x, training=True))
    assert np.all(y == y[:, :1, :])


@pytest.mark.parametrize("bad", [-0.1, 1.5, "x"])
def test_bad_rate_raises(bad):
    with pytest.raises(ValueError, match="rate"):
        kd.layers.ScheduledDropout(bad)


def test_rate_property_round_trips():
    layer = kd.layers.ScheduledDropout(0.3)
    assert layer.rate == 0.3
    layer.rate = 0.1
    assert layer.rate == 0.1
    with pytest.raises(ValueError, match="rate"):
        layer.rate = 2.0


def test_save_load_round_trip(tmp_path):
    model = keras.Sequential([keras.Input((4,)), kd.layers.ScheduledDropout(0.2, seed=5)])
    model.layers[0].rate = 0.35
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.layers[0], kd.layers.ScheduledDropout)
    assert loaded.layers[0].rate == 0.35
    assert loaded.layers[0].seed == 5
