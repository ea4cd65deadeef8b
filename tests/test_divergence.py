"""keras_dropouts.ops.divergence against NumPy references."""

import keras
import numpy as np
import pytest
from conftest import to_np

from keras_dropouts.ops import (
    binary_symmetric_kl,
    mean_squared_difference,
    reduce_consistency,
    symmetric_kl,
)


def _log_softmax(a):
    a = a - a.max(-1, keepdims=True)
    return a - np.log(np.exp(a).sum(-1, keepdims=True))


def np_sym_kl(lp, lq):
    """(KL(P||Q) + KL(Q||P)) / 2 from log-probabilities, direct definition."""
    p, q = np.exp(lp), np.exp(lq)
    kl_pq = (p * (lp - lq)).sum(-1)
    kl_qp = (q * (lq - lp)).sum(-1)
    return 0.5 * (kl_pq + kl_qp)


def test_symmetric_kl_from_logits_matches_numpy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(16, 5)).astype("float32") * 2
    b = rng.normal(size=(16, 5)).astype("float32") * 2
    ref = np_sym_kl(_log_softmax(a.astype("float64")), _log_softmax(b.astype("float64")))
    out = to_np(symmetric_kl(a, b, from_logits=True, reduction="none"))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_np(symmetric_kl(a, b, from_logits=True)), ref.mean(), rtol=1e-5)


def test_symmetric_kl_from_probs_matches_numpy_and_is_symmetric():
    rng = np.random.default_rng(1)
    a = rng.dirichlet(np.ones(4), size=32).astype("float32")
    b = rng.dirichlet(np.ones(4), size=32).astype("float32")
    ref = np_sym_kl(np.log(a.astype("float64")), np.log(b.astype("float64")))
    np.testing.assert_allclose(to_np(symmetric_kl(a, b)), ref.mean(), rtol=1e-4)
    np.testing.assert_allclose(to_np(symmetric_kl(a, b)), to_np(symmetric_kl(b, a)), rtol=1e-6)
    assert float(to_np(symmetric_kl(a, a))) == 0.0


def test_symmetric_kl_stable_at_exact_zero_and_one():
    one_hot = np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    other = np.eye(3, dtype="float32")[[0, 2, 2, 1]]
    vals = to_np(symmetric_kl(one_hot, other, reduction="none"))
    assert np.all(np.isfinite(vals))
    # Identical one-hot rows agree exactly; disagreeing rows are large but finite:
    # each differing class contributes 0.5 * 1 * (log 1 - log eps).
    eps = keras.config.epsilon()
    expected = np.array([0.0, -np.log(eps), 0.0, -np.log(eps)])
    np.testing.assert_allclose(vals, expected, rtol=1e-4)
    # Gradients are finite too.
    if keras.backend.backend() == "jax":
        import jax

        g = jax.grad(lambda p: symmetric_kl(p, other))(one_hot)
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        p = tf.Variable(one_hot)
        with tf.GradientTape() as tape:
            loss = symmetric_kl(p, other)
        g = tape.gradient(loss, p)
    else:
        import torch

        p = torch.tensor(one_hot, requires_grad=True)
        symmetric_kl(p, torch.tensor(other)).backward()
        g = p.grad
    assert np.all(np.isfinite(to_np(g)))


def test_mask_and_sample_weight_match_numpy():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 6, 4)).astype("float32")
    b = rng.normal(size=(3, 6, 4)).astype("float32")
    mask = np.array([[1] * 6, [1] * 3 + [0] * 3, [1] + [0] * 5], dtype=bool)
    w = np.array([1.0, 2.0, 0.5], dtype="float32")
    per = np_sym_kl(_log_softmax(a.astype("float64")), _log_softmax(b.astype("float64")))
    ref = (per * w[:, None] * mask).sum() / mask.sum()
    out = symmetric_kl(a, b, from_logits=True, mask=mask, sample_weight=w)
    np.testing.assert_allclose(to_np(out), ref, rtol=1e-5)
    # A (B, T) weight that zeroes padding equals the mask, up to the normaliser.
    out_w = symmetric_kl(a, b, from_logits=True, sample_weight=mask.astype("float32"))
    np.testing.assert_allclose(to_np(out_w), (per * mask).sum() / mask.size, rtol=1e-5)
    # Fully masked input gives 0, not NaN.
    zero = symmetric_kl(a, b, from_logits=True, mask=np.zeros((3, 6), bool))
    assert float(to_np(zero)) == 0.0


def test_binary_symmetric_kl_matches_numpy():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(10, 3)).astype("float32")
    b = rng.normal(size=(10, 3)).astype("float32")
    pa, pb = 1 / (1 + np.exp(-a.astype("float64"))), 1 / (1 + np.exp(-b.astype("float64")))

    def kl(p, q):
        return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))

    ref = (0.5 * (kl(pa, pb) + kl(pb, pa))).mean()
    np.testing.assert_allclose(to_np(binary_symmetric_kl(a, b, from_logits=True)), ref, rtol=1e-5)
    np.testing.assert_allclose(
        to_np(binary_symmetric_kl(pa.astype("float32"), pb.astype("float32"))), ref, rtol=1e-4
    )
    edge = binary_symmetric_kl(np.array([[0.0, 1.0]], "float32"), np.array([[1.0, 1.0]], "float32"))
    assert np.isfinite(float(to_np(edge)))


def test_mean_squared_difference_matches_numpy():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(8, 2)).astype("float32")
    b = rng.normal(size=(8, 2)).astype("float32")
    w = rng.uniform(size=(8, 1)).astype("float32")
    ref = (((a - b) ** 2).mean(-1) * w[:, 0]).mean()
    np.testing.assert_allclose(to_np(mean_squared_difference(a, b, sample_weight=w)), ref, rtol=1e-5)


def test_float16_inputs_compute_in_float32():
    a = np.array([[8.0, -8.0, 0.0]], "float16")
    b = np.array([[-8.0, 8.0, 0.0]], "float16")
    out = symmetric_kl(keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b), from_logits=True)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    ref = np_sym_kl(_log_softmax(a.astype("float64")), _log_softmax(b.astype("float64"))).mean()
    np.testing.assert_allclose(to_np(out), ref, rtol=1e-3)


def test_bad_reduction():
    with pytest.raises(ValueError, match="reduction"):
        reduce_consistency(np.ones((2,), "float32"), reduction="avg")
