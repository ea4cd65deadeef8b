import keras
import numpy as np
import pytest
from block_helpers import is_union_of_blocks
from conftest import to_np

import keras_dropouts as kd
from keras_dropouts.ops import drop_block, prob_drop_block


def test_constant_input_matches_drop_block_with_same_seed():
    # Uniform salience: p == gamma everywhere, so the same noise gives the same mask.
    x = np.full((16, 14, 14, 4), 2.0, "float32")
    a = to_np(drop_block(x, 0.2, 3, seed=11))
    b = to_np(prob_drop_block(x, 0.2, 3, seed=11))
    assert np.mean((a == 0) == (b == 0)) > 0.9999


def _seed_hits(x, inverse):
    y = to_np(prob_drop_block(x, 0.1, 1, seed=12, inverse_salience=inverse))
    return (y == 0).mean(axis=(0, 3))


@pytest.mark.parametrize("inverse", [False, True])
def test_salient_region_dropped_more_or_less(inverse):
    x = np.full((512, 8, 8, 4), 0.1, "float32")
    x[:, 2:4, 2:4, :] = -3.0  # salience is |x|: sign must not matter
    hits = _seed_hits(x, inverse)
    bright = hits[2:4, 2:4].mean()
    dim = np.delete(hits.ravel(), [18, 19, 26, 27]).mean()
    if inverse:
        assert bright < 0.01 and dim > 0.09
    else:
        assert bright > 5 * dim


def test_expected_seed_count_matches_drop_block():
    rng = np.random.default_rng(0)
    x = rng.exponential(size=(256, 16, 16, 8)).astype("float32")
    n = x.size
    frac = (to_np(prob_drop_block(x, 0.1, 1, seed=13)) == 0).mean()
    # block 1: the drop fraction equals the mean seed probability (no clipping here)
    assert abs(frac - 0.1) < 5 * np.sqrt(0.1 * 0.9 / n) + 0.002


def test_zero_salience_falls_back_to_uniform_gamma():
    x = np.zeros((64, 12, 12, 2), "float32")
    y = to_np(prob_drop_block(x, 0.3, 3, seed=14))
    assert np.isfinite(y).all()
    ones = np.ones_like(x)
    y1 = to_np(prob_drop_block(ones, 0.3, 3, seed=14))
    assert (y1 == 0).mean() > 0.2


def test_zeros_form_whole_blocks():
    x = np.abs(np.random.randn(4, 15, 13, 2)).astype("float32")
    y = to_np(prob_drop_block(x, 0.2, (3, 2), seed=15))
    assert (y == 0).any()
    for b in range(4):
        for c in range(2):
            dropped = y[b, :, :, c] == 0
            assert is_union_of_blocks(dropped, (3, 2))


def test_no_gradient_through_salience():
    x = keras.ops.convert_to_tensor(np.random.rand(2, 10, 6).astype("float32"))
    layer = kd.layers.ProbDropBlock1D(0.3, 2, seed=16)
    from test_drop_block import _value_and_grad

    y, grad = _value_and_grad(lambda t: layer(t, training=True), x)
    y, grad = to_np(y), to_np(grad)
    np.testing.assert_allclose(grad, np.where(y != 0, y / to_np(x), 0.0), rtol=1e-5)


def test_padding_never_counts_toward_salience_or_hosts_blocks():
    b, t, c = 64, 20, 8
    x = np.random.rand(b, t, c).astype("float32")
    mask = np.ones((b, t), bool)
    mask[:, 14:] = False
    loud = x.copy()
    loud[:, 14:] = 1e4
    a = to_np(prob_drop_block(x, 0.2, 4, seed=17, mask=mask))
    z = to_np(prob_drop_block(loud, 0.2, 4, seed=17, mask=mask))
    np.testing.assert_array_equal(a[:, :14] == 0, z[:, :14] == 0)
    # A block centred on the last real step reaches at most block // 2 steps beyond it.
    assert np.all(z[:, 14 + 2 :] != 0)


def test_keras_padding_mask_reaches_the_layer():
    inputs = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, mask_zero=True)(inputs)
    layer = kd.layers.ProbDropBlock1D(0.5, 2, seed=18)
    outputs = layer(h)
    model = keras.Model(inputs, outputs)
    tokens = np.zeros((32, 12), "int32")
    tokens[:, :6] = np.random.randint(1, 50, (32, 6))
    y = to_np(model(tokens, training=True))
    assert (y[:, :6] == 0).any()
    assert np.all(y[:, 6 + 1 :] != 0)


def test_transformer_tokens_shape_and_rate_variable():
    x = np.random.randn(4, 32, 16).astype("float32")
    layer = kd.layers.ProbDropBlock1D(0.1, 4, seed=19)
    assert to_np(layer(x, training=True)).shape == x.shape
    layer.rate = 0.0
    np.testing.assert_array_equal(to_np(layer(x, training=True)), x)


@pytest.mark.parametrize("mode", ["exact", "paper"])
@pytest.mark.parametrize("per_channel", [True, False])
def test_uniform_salience_drops_the_rate_or_the_papers_fraction(mode, per_channel):
    # With uniform salience every seed probability is DropBlock's gamma, so the
    # dropped fraction is the rate ("exact") or the paper formula's (0.249 at rate 0.3
    # on 16x16 maps with block 5: overlaps ignored).
    from test_drop_block import expected_fraction_and_tolerance

    x = np.full((256, 16, 16, 16), 3.0, "float32")
    y = to_np(prob_drop_block(x, 0.3, 5, seed=22, per_channel=per_channel, gamma=mode))
    maps = 256 * (16 if per_channel else 1)
    expected, tol = expected_fraction_and_tolerance(0.3, (16, 16), (5, 5), maps, mode)
    assert abs((y == 0).mean() - expected) < tol, ((y == 0).mean(), expected, tol)


def test_salient_maps_drop_about_the_rate_with_exact_gamma():
    # Salience moves seeds towards salient positions but keeps their expected count;
    # overlaps then differ from uniform seeds, so this is approximate (within 15%).
    rng = np.random.default_rng(1)
    x = rng.exponential(size=(128, 28, 28, 16)).astype("float32")
    for rate in (0.1, 0.3):
        frac = (to_np(prob_drop_block(x, rate, 7, seed=23)) == 0).mean()
        assert abs(frac - rate) < 0.15 * rate, (rate, frac)


@pytest.mark.parametrize("mode", ["exact", "paper"])
def test_prob_edges_in_both_modes(mode):
    x = np.random.rand(4, 9, 9, 3).astype("float32")
    np.testing.assert_array_equal(to_np(prob_drop_block(x, 0.0, 3, seed=1, gamma=mode)), x)
    assert np.all(to_np(prob_drop_block(x, 1.0, 3, seed=1, gamma=mode)) == 0)
    layer = kd.layers.ProbDropBlock2D(0.2, 3, gamma=mode, seed=1)
    assert layer.get_config()["gamma"] == mode
    layer.rate = 1.0
    assert np.all(to_np(layer(x, training=True)) == 0)
