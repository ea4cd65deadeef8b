import types

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


@pytest.mark.parametrize("bad", [-0.1, 1.5, "x", True, None])
def test_bad_rate_raises_keras_message(bad):
    with pytest.raises(
        ValueError,
        match="Invalid value received for argument `rate`. Expected a float value between 0 and 1.",
    ):
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


# Keras' own tests of keras.layers.Dropout, run against ScheduledDropout (issue 11): a
# drop-in replacement must pass them, except for the weight count (our rate lives in
# non-trainable variables by design).
_keras_dropout_test = pytest.importorskip("keras.src.layers.regularization.dropout_test")


class TestKerasDropoutSuiteOnScheduledDropout(_keras_dropout_test.DropoutTest):
    def setUp(self):
        super().setUp()
        self._keras_layers = _keras_dropout_test.layers
        _keras_dropout_test.layers = types.SimpleNamespace(Dropout=kd.layers.ScheduledDropout)

    def tearDown(self):
        _keras_dropout_test.layers = self._keras_layers
        super().tearDown()

    def test_dropout_basics(self):
        n_rate_variables = len(kd.layers.ScheduledDropout(0.2).non_trainable_weights)
        assert n_rate_variables >= 1
        self.run_layer_test(
            kd.layers.ScheduledDropout,
            init_kwargs={"rate": 0.2},
            input_shape=(2, 3),
            call_kwargs={"training": True},
            expected_output_shape=(2, 3),
            expected_num_trainable_weights=0,
            expected_num_non_trainable_weights=n_rate_variables,  # Keras' Dropout: 0
            expected_num_seed_generators=1,
            expected_num_losses=0,
            supports_masking=True,
            assert_built_after_instantiation=True,
        )

    def test_the_suite_sees_scheduled_dropout(self):
        assert _keras_dropout_test.layers.Dropout is kd.layers.ScheduledDropout
