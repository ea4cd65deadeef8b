"""Each backend's own path against `keras_dropouts.backend.common` (issue 21).

torch's eager masks are compared bit for bit in `test_torch_branch.py`; JAX's flat
noise draw is a different stream from `common`'s, so it is compared statistically:
the same distribution (uniform on [0, 1)), with tolerances from the sample size.
"""

import math

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_np

from keras_dropouts import backend
from keras_dropouts.backend.common import consistency as common_consistency
from keras_dropouts.backend.common import tracker as common_tracker

MODULES = ("blocks", "consistency", "dropout", "gamma", "noise", "tracker", "variables")

# Five standard errors: a correct draw fails a check with probability ~6e-7.
Z = 5.0


def _aligned(values, align=64):
    """`values` as a float32 NumPy array whose data starts on an `align`-byte boundary
    (JAX on CPU then assigns such an array without copying it)."""
    values = np.asarray(values, "float32")
    raw = np.zeros(values.size + align // 4, "float32")
    start = (-raw.ctypes.data % align) // 4
    out = raw[start : start + values.size].reshape(values.shape)
    out[...] = values
    return out


@pytest.mark.parametrize("value", [0.3, [0.0, 10.0, 0.1, 0.7]], ids=["rate", "knots"])
def test_a_host_write_keeps_its_own_copy(value):
    # `variables.write` (rates, schedule knots, loaded rates) must not leave the variable
    # viewing the writer's NumPy memory: a later change or free of that array would
    # change the variable (plain `assign` on JAX keeps such a view).
    expected = np.asarray(value, "float32")
    variable = keras.Variable(np.zeros(expected.shape, "float32"), trainable=False)
    for _ in range(20):
        host = _aligned(value)
        backend.variables.write(variable, host)
        host[...] = -1.0
        np.testing.assert_array_equal(to_np(variable.value), expected)


def test_every_backend_module_is_chosen_once():
    for name in MODULES:
        module = getattr(backend, name)
        assert module.__name__.split(".")[2] in (BACKEND, "common"), module.__name__


@pytest.mark.skipif(BACKEND != "jax", reason="JAX's flat noise draw")
@pytest.mark.parametrize("shape", [(16, 32, 32, 8), (8, 9, 11, 7, 5)])
def test_jax_flat_draw_is_uniform(shape):
    from keras_dropouts.backend.common import noise as common_noise
    from keras_dropouts.backend.jax import noise

    u = to_np(noise.uniform(shape, keras.random.SeedGenerator(3))).astype(np.float64)
    ref = to_np(common_noise.uniform(shape, keras.random.SeedGenerator(3))).astype(np.float64)
    assert u.shape == ref.shape == shape and u.dtype == ref.dtype
    n = u.size
    assert 0.0 <= u.min() and u.max() < 1.0
    # Mean 1/2 (sd sqrt(1/12 / n)); variance 1/12 (sd sqrt((1/80 - 1/144) / n)).
    assert abs(u.mean() - 0.5) < Z * math.sqrt(1 / 12 / n)
    assert abs(u.var() - 1 / 12) < Z * math.sqrt((1 / 80 - 1 / 144) / n)
    # Uniform: Kolmogorov-Smirnov distance (sqrt(n) * D exceeds 1.95 with probability 0.1%).
    s = np.sort(u.ravel())
    grid = np.arange(1, n + 1) / n
    d = max(np.max(grid - s), np.max(s - (grid - 1 / n)))
    assert d * math.sqrt(n) < 1.95
    # The reshape adds no structure: neighbours along every axis are uncorrelated, and
    # every index along an axis has the same mean (as in common's draw).
    for axis in range(len(shape)):
        a, b = np.take(u, range(shape[axis] - 1), axis), np.take(u, range(1, shape[axis]), axis)
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < Z / math.sqrt(a.size)
        means = u.mean(axis=tuple(i for i in range(len(shape)) if i != axis))
        assert np.all(np.abs(means - 0.5) < Z * math.sqrt(1 / 12 / (n / shape[axis])))
    # The two draws agree in distribution with each other (two-sample KS at 0.1%).
    r = np.sort(ref.ravel())
    both = np.sort(np.concatenate([s, r]))
    gap = np.abs(np.searchsorted(s, both, "right") - np.searchsorted(r, both, "right")) / n
    assert gap.max() < 1.95 * math.sqrt(2 / n)


@pytest.mark.skipif(BACKEND != "torch", reason="torch's consistency term")
@pytest.mark.parametrize("kind,from_logits", [("kl", True), ("kl", False), ("binary_kl", True),
                                              ("binary_kl", False), ("mse", False)])
def test_torch_consistency_term_equals_common(kind, from_logits):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(4, 3, 5)).astype("float32")  # grouped: (B, passes, C)
    if not from_logits:
        z = 1.0 / (1.0 + np.exp(-z)) if kind == "binary_kl" else np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    z = keras.ops.convert_to_tensor(z)
    fast = to_np(backend.consistency.tiled(kind, z, from_logits, 0.7))
    reference = to_np(common_consistency.tiled(kind, z, from_logits, 0.7))
    np.testing.assert_allclose(fast, reference, rtol=1e-6)


@pytest.mark.skipif(BACKEND != "torch", reason="torch's tracker update")
def test_torch_tracker_equals_common():
    fast, reference = (keras.Variable(np.zeros(2, "float32"), trainable=False) for _ in range(2))
    for value in (0.5, 2.0, 1.25):
        backend.tracker.update(fast, keras.ops.convert_to_tensor(value))
        common_tracker.update(reference, keras.ops.convert_to_tensor(value))
    np.testing.assert_array_equal(to_np(fast), to_np(reference))
    assert float(to_np(backend.tracker.result(fast))) == float(to_np(common_tracker.result(reference)))
