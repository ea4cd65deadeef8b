import keras
import numpy as np
import pytest
from block_helpers import is_union_of_blocks
from conftest import to_np

import keras_dropouts as kd
from keras_dropouts.backend import gamma as G
from keras_dropouts.backend.common import gamma as common_gamma
from keras_dropouts.ops import drop_block

LAYERS = {1: kd.layers.DropBlock1D, 2: kd.layers.DropBlock2D, 3: kd.layers.DropBlock3D}


def test_rate_zero_and_inference_are_exact_identity():
    x = np.random.randn(4, 12, 10, 3).astype("float32")
    layer = kd.layers.DropBlock2D(0.0, 3, seed=1)
    np.testing.assert_array_equal(to_np(layer(x, training=True)), x)
    layer.rate = 0.5
    np.testing.assert_array_equal(to_np(layer(x)), x)
    np.testing.assert_array_equal(to_np(layer(x, training=False)), x)


def paper_gamma(rate, sizes, blocks):
    gamma = rate
    for s, b in zip(sizes, blocks):
        b = min(b, s)
        gamma *= s / (b * (s - b + 1))
    return gamma


def expected_fraction_and_tolerance(rate, sizes, blocks, maps, mode):
    """Expected dropped fraction and a tolerance of 4 standard errors, from the number
    of blocks drawn: about `gamma * n_centres` per map, each covering at most
    `prod(b)` of the map's units (overlaps only lower the variance)."""
    blocks = tuple(min(b, s) for b, s in zip(blocks, sizes))
    if mode == "exact":
        gamma = float(to_np(G.exact_gamma(rate, sizes, blocks)))
        expected = rate
    else:
        gamma = paper_gamma(rate, sizes, blocks)
        expected = float(common_gamma.dropped_fraction(gamma, sizes, blocks))
    centres = np.prod([s - b + 1 for s, b in zip(sizes, blocks)])
    n_blocks = gamma * centres * maps
    se = np.sqrt(n_blocks) * np.prod(blocks) / (maps * np.prod(sizes))
    return expected, 4 * se


# (spatial sizes, block, rate, batch, channels): every map larger than the block.
FRACTION_CASES = [
    ((56, 56), 7, 0.2, 32, 32),  # issue 9: 0.179 with the paper's gamma
    ((28, 28), 7, 0.2, 64, 32),  # 0.177
    ((14, 14), 3, 0.2, 128, 32),  # 0.180
    ((16, 16), 5, 0.3, 128, 32),  # 0.249
    ((16, 24), (5, 3), 0.5, 128, 16),
    ((14, 14), 7, 0.05, 256, 32),
    ((64,), 7, 0.3, 256, 64),
    ((10, 12, 12), 3, 0.1, 32, 16),
]


@pytest.mark.parametrize("mode", ["exact", "paper"])
@pytest.mark.parametrize("sizes, block, rate, batch, channels", FRACTION_CASES, ids=str)
def test_drop_fraction_matches_the_rate_or_the_papers_formula(
    sizes, block, rate, batch, channels, mode
):
    # "exact" (the default) drops `rate` in expectation; "paper" keeps Ghiasi et al.'s
    # gamma, whose overlapping blocks drop less (the expectation computed exactly).
    blocks = (block,) * len(sizes) if isinstance(block, int) else block
    x = np.ones((batch,) + sizes + (channels,), "float32")
    kwargs = {} if mode == "exact" else {"gamma": "paper"}
    y = to_np(drop_block(x, rate, block, seed=3, **kwargs))
    frac = (y == 0).mean()
    expected, tol = expected_fraction_and_tolerance(rate, sizes, blocks, batch * channels, mode)
    assert abs(frac - expected) < tol, (frac, expected, tol)
    if mode == "exact":
        assert abs(frac - rate) < max(tol, 0.03 * rate)


def test_paper_mode_keeps_the_papers_seed_rate_and_fraction():
    # Today's values (issue 9): 0.179 at rate 0.2 on 56x56 maps with block 7.
    x = np.ones((64, 56, 56, 16), "float32")
    y = to_np(drop_block(x, 0.2, 7, seed=21, gamma="paper"))
    assert abs((y == 0).mean() - 0.179) < 0.004
    layer = kd.layers.DropBlock2D(0.2, 7, gamma="paper", seed=2)
    assert layer.get_config()["gamma"] == "paper"
    assert kd.layers.DropBlock2D(0.2, 7).get_config()["gamma"] == "exact"


@pytest.mark.parametrize("mode", ["exact", "paper"])
def test_exact_edges_in_both_modes(mode):
    x = np.random.rand(4, 9, 9, 3).astype("float32")
    np.testing.assert_array_equal(to_np(drop_block(x, 0.0, 3, seed=1, gamma=mode)), x)
    assert np.all(to_np(drop_block(x, 1.0, 3, seed=1, gamma=mode)) == 0)
    rate_one = keras.ops.convert_to_tensor(np.float32(1.0))
    assert np.all(to_np(drop_block(x, rate_one, 3, seed=1, gamma=mode)) == 0)
    # A block not smaller than the map: whole maps dropped with probability `rate`
    # whatever the mode (gamma == rate, one valid centre).
    y = to_np(drop_block(np.ones((3000, 5, 5, 1), "float32"), 0.3, 7, seed=2, gamma=mode))
    dropped = (y == 0).reshape(3000, -1)
    assert np.all(dropped.all(axis=1) | ~dropped.any(axis=1))
    assert abs(dropped.all(axis=1).mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / 3000)


def test_kept_units_rescaled_by_count_over_count_ones():
    x = np.ones((32, 16, 16, 4), "float32")
    y = to_np(drop_block(x, 0.3, 5, seed=4))
    kept = y[y != 0]
    np.testing.assert_allclose(kept, y.size / kept.size, rtol=1e-5)
    np.testing.assert_allclose(y.mean(), 1.0, rtol=1e-5)


@pytest.mark.parametrize("block", [(3, 3), (4, 2), (5, 6)])
def test_zeros_form_whole_blocks_inside_the_map(block):
    x = np.ones((8, 17, 15, 2), "float32")
    y = to_np(drop_block(x, 0.15, block, seed=5))
    assert (y == 0).any()
    for b in range(y.shape[0]):
        for c in range(y.shape[-1]):
            assert is_union_of_blocks(y[b, :, :, c] == 0, block)


def test_per_channel_false_shares_mask_across_channels():
    x = np.ones((8, 16, 16, 5), "float32")
    y = to_np(drop_block(x, 0.2, 3, seed=6, per_channel=False))
    assert np.all((y == 0) == (y[..., :1] == 0))
    y = to_np(drop_block(x, 0.2, 3, seed=6, per_channel=True))
    assert not np.all((y == 0) == (y[..., :1] == 0))


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("per_channel", [True, False])
def test_channels_first_equals_transposed_channels_last(rank, per_channel):
    shape = (4,) + (9, 11, 7)[:rank] + (3,)
    x = np.random.rand(*shape).astype("float32")
    last = to_np(drop_block(x, 0.3, 3, seed=7, per_channel=per_channel))
    first = to_np(
        drop_block(
            np.moveaxis(x, -1, 1), 0.3, 3, seed=7, data_format="channels_first",
            per_channel=per_channel,
        )
    )
    np.testing.assert_array_equal(last, np.moveaxis(first, 1, -1))


@pytest.mark.parametrize("size, block", [((5, 5), 5), ((4, 6), 9), ((3, 3), (3, 8))])
def test_block_not_smaller_than_map_drops_whole_maps(size, block):
    rate = 0.3
    n = 4000
    x = np.ones((n,) + size + (1,), "float32")
    y = to_np(drop_block(x, rate, block, seed=8))
    assert np.isfinite(y).all()
    dropped = (y == 0).reshape(n, -1)
    assert np.all(dropped.all(axis=1) | ~dropped.any(axis=1))
    frac = dropped.all(axis=1).mean()
    assert abs(frac - rate) < 5 * np.sqrt(rate * (1 - rate) / n)


def test_mean_preserved_in_expectation_for_random_input():
    x = np.random.rand(128, 20, 20, 8).astype("float32")
    y = to_np(drop_block(x, 0.2, 5, seed=9))
    np.testing.assert_allclose(y.mean(), x.mean(), rtol=0.01)


def test_gradient_is_the_mask():
    x = keras.ops.convert_to_tensor(np.random.rand(2, 10, 10, 3).astype("float32"))
    layer = kd.layers.DropBlock2D(0.3, 3, seed=10)
    y, grad = _value_and_grad(lambda t: layer(t, training=True), x)
    y, grad = to_np(y), to_np(grad)
    ratio = np.where(y != 0, y / to_np(x), 0.0)
    np.testing.assert_allclose(grad, ratio, rtol=1e-5)


def _value_and_grad(fn, x):
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        y, vjp = jax.vjp(fn, x)
        return y, vjp(keras.ops.ones_like(y))[0]
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return y, tape.gradient(y, x, output_gradients=tf.ones_like(y))
    import torch

    x = x.detach().requires_grad_(True)
    y = fn(x)
    y.backward(torch.ones_like(y))
    return y.detach(), x.grad


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_layers_in_functional_model_with_unknown_sizes(rank):
    layer = LAYERS[rank](0.2, 2, seed=1)
    inputs = keras.Input((None,) * rank + (3,))
    model = keras.Model(inputs, layer(inputs))
    x = np.ones((2,) + (6, 5, 4)[:rank] + (3,), "float32")
    assert to_np(model(x, training=True)).shape == x.shape
    assert layer.compute_output_shape((None,) * (rank + 1) + (3,)) == (None,) * (rank + 1) + (3,)


def test_bad_arguments_raise_value_errors_naming_them():
    with pytest.raises(ValueError, match="rate"):
        kd.layers.DropBlock2D(1.2, 3)
    with pytest.raises(ValueError, match="block_size"):
        kd.layers.DropBlock2D(0.1, 0)
    with pytest.raises(ValueError, match="block_size"):
        kd.layers.DropBlock2D(0.1, (3, 3, 3))
    with pytest.raises(ValueError, match="data_format"):
        kd.layers.DropBlock2D(0.1, 3, data_format="NHWC")
    with pytest.raises(ValueError, match="rank 4"):
        kd.layers.DropBlock2D(0.1, 3)(np.ones((2, 8, 3), "float32"))
