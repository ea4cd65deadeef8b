import keras
import numpy as np
import pytest
from block_helpers import is_union_of_blocks
from conftest import to_np

import keras_dropouts as kd
from keras_dropouts.ops import drop_block

LAYERS = {1: kd.layers.DropBlock1D, 2: kd.layers.DropBlock2D, 3: kd.layers.DropBlock3D}


def test_rate_zero_and_inference_are_exact_identity():
    x = np.random.randn(4, 12, 10, 3).astype("float32")
    layer = kd.layers.DropBlock2D(0.0, 3, seed=1)
    np.testing.assert_array_equal(to_np(layer(x, training=True)), x)
    layer.rate = 0.5
    np.testing.assert_array_equal(to_np(layer(x)), x)
    np.testing.assert_array_equal(to_np(layer(x, training=False)), x)


@pytest.mark.parametrize(
    "size, block", [((28, 28), 7), ((14, 14), 7), ((16, 24), (5, 3)), ((20, 20), 4), ((12, 12), 3)]
)
def test_drop_fraction_close_to_rate(size, block):
    # Block overlap makes Ghiasi et al.'s gamma drop slightly less than `rate`
    # (measured table in the README): at rate 0.1 within 10% when the map is at
    # least twice the block. Samples are 4096 maps, standard error < 0.001.
    rate = 0.1
    x = np.ones((256,) + size + (16,), "float32")
    y = to_np(drop_block(x, rate, block, seed=3))
    frac = (y == 0).mean()
    assert abs(frac - rate) < 0.1 * rate, frac


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
