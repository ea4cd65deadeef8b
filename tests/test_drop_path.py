import numpy as np
import pytest
from conftest import to_np

import keras_dropouts as kd


def test_drops_whole_samples_with_probability_rate():
    n, rate = 20_000, 0.3
    x = np.ones((n, 4, 3), "float32")
    y = to_np(kd.layers.DropPath(rate, seed=1)(x, training=True))
    per_sample = y.reshape(n, -1)
    dropped = (per_sample == 0).all(axis=1)
    assert np.all(dropped | (per_sample != 0).all(axis=1))
    assert abs(dropped.mean() - rate) < 5 * np.sqrt(rate * (1 - rate) / n)
    np.testing.assert_allclose(per_sample[~dropped], 1 / (1 - rate), rtol=1e-6)


def test_identity_cases_and_bad_rate():
    x = np.random.rand(8, 5).astype("float32")
    np.testing.assert_array_equal(to_np(kd.layers.DropPath(0.0)(x, training=True)), x)
    np.testing.assert_array_equal(to_np(kd.layers.DropPath(0.9)(x)), x)
    with pytest.raises(ValueError, match="rate"):
        kd.layers.DropPath(-0.1)
