"""Bad and edge-case inputs to every public layer and op (issue 14), on every backend.

Each case either expects an exception of a given type whose message names the
argument (in Keras' style, "Invalid value received for argument `x`..."), or an
exact output. The documented decisions for inputs that are accepted (tensor values
cannot be checked without a host sync) have their own tests at the end.
"""

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_np

import keras_dropouts as kd
from keras_dropouts.ops import (
    binary_symmetric_kl,
    drop_block,
    drop_path,
    dropout,
    mean_squared_difference,
    prob_drop_block,
    symmetric_kl,
)

L = kd.layers

# name -> (factory(rate, **kwargs), input shape with batch)
LAYERS = {
    "DropBlock1D": (lambda r, **k: L.DropBlock1D(r, 3, **k), (4, 12, 3)),
    "DropBlock2D": (lambda r, **k: L.DropBlock2D(r, 3, **k), (4, 9, 10, 3)),
    "DropBlock3D": (lambda r, **k: L.DropBlock3D(r, 2, **k), (2, 5, 6, 4, 2)),
    "ProbDropBlock1D": (lambda r, **k: L.ProbDropBlock1D(r, 3, **k), (4, 12, 3)),
    "ProbDropBlock2D": (lambda r, **k: L.ProbDropBlock2D(r, 3, **k), (4, 9, 10, 3)),
    "ProbDropBlock3D": (lambda r, **k: L.ProbDropBlock3D(r, 2, **k), (2, 5, 6, 4, 2)),
    "DropPath": (lambda r, **k: L.DropPath(r, **k), (8, 5, 3)),
    "ScheduledDropout": (lambda r, **k: L.ScheduledDropout(r, **k), (8, 12)),
}
BLOCK_LAYERS = [n for n in LAYERS if "Block" in n]
NAMES = sorted(LAYERS)

# name -> fn(x, rate), input shape
OPS = {
    "dropout": (lambda x, r, **k: dropout(x, r, **k), (8, 12)),
    "drop_path": (lambda x, r, **k: drop_path(x, r, **k), (8, 5, 3)),
    "drop_block": (lambda x, r, **k: drop_block(x, r, 3, **k), (4, 9, 10, 3)),
    "prob_drop_block": (lambda x, r, **k: prob_drop_block(x, r, 3, **k), (4, 9, 10, 3)),
}
OP_NAMES = sorted(OPS)


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Overrides conftest's fixture for this module: no test here changes global Keras
    state, so these hundreds of small cases skip the per-test `clear_session`."""
    np.random.seed(0)
    yield


def _x(shape, low=0.5, high=1.5):
    return np.random.uniform(low, high, size=shape).astype("float32")


def _raises(exc, argument, fn):
    """`fn()` raises `exc` and the message names `argument` (in backticks)."""
    with pytest.raises(exc) as info:
        fn()
    assert f"`{argument}`" in str(info.value), str(info.value)
    return str(info.value)


# --------------------------------------------------------------- layer constructors

BAD_RATES = ["0.5", True, 1.5, -0.1, float("nan"), None, np.array([0.1, 0.2])]


@pytest.mark.parametrize("bad", BAD_RATES, ids=repr)
@pytest.mark.parametrize("name", NAMES)
def test_layer_bad_rate(name, bad):
    make, _ = LAYERS[name]
    msg = _raises(ValueError, "rate", lambda: make(bad))
    assert "Expected a float value between 0 and 1" in msg


@pytest.mark.parametrize("bad", ["0.5", True, 2.0, float("nan")], ids=repr)
@pytest.mark.parametrize("name", NAMES)
def test_layer_rate_setter_rejects_bad_values(name, bad):
    layer = LAYERS[name][0](0.1)

    def assign():
        layer.rate = bad

    _raises(ValueError, "rate", assign)
    assert layer.rate == 0.1


@pytest.mark.parametrize("bad", [True, "1"], ids=repr)
@pytest.mark.parametrize("name", NAMES)
def test_layer_bad_seed(name, bad):
    _raises(ValueError, "seed", lambda: LAYERS[name][0](0.1, seed=bad))


def test_numpy_numbers_are_accepted():
    layer = L.DropBlock2D(np.float32(0.25), np.int64(3), seed=np.int32(2))
    assert layer.rate == 0.25 and layer.block_size == (3, 3) and layer.seed == 2
    layer = L.ScheduledDropout(np.float64(0.5), noise_shape=(None, np.int64(1)))
    assert layer.noise_shape == (None, 1)


@pytest.mark.parametrize(
    "bad", [(2.5, 3), "33", 0, -1, (3, 3, 3), (3,), True, (3, None), 2.5, None], ids=repr
)
@pytest.mark.parametrize("cls", [L.DropBlock2D, L.ProbDropBlock2D])
def test_block_layer_bad_block_size(cls, bad):
    _raises(ValueError, "block_size", lambda: cls(0.1, bad))


@pytest.mark.parametrize("bad", ["False", None, 0, 1, "no"], ids=repr)
@pytest.mark.parametrize("name", BLOCK_LAYERS)
def test_block_layer_bad_per_channel(name, bad):
    _raises(ValueError, "per_channel", lambda: LAYERS[name][0](0.1, per_channel=bad))


@pytest.mark.parametrize("bad", ["no", None, 1], ids=repr)
@pytest.mark.parametrize("cls", [L.ProbDropBlock1D, L.ProbDropBlock2D, L.ProbDropBlock3D])
def test_prob_layer_bad_inverse_salience(cls, bad):
    _raises(ValueError, "inverse_salience", lambda: cls(0.1, 2, inverse_salience=bad))


@pytest.mark.parametrize("bad", ["Exact", "overlap", None, 1, True], ids=repr)
@pytest.mark.parametrize("name", BLOCK_LAYERS)
def test_block_layer_bad_gamma(name, bad):
    msg = _raises(ValueError, "gamma", lambda: LAYERS[name][0](0.1, gamma=bad))
    assert "'exact', 'paper'" in msg


@pytest.mark.parametrize("bad", ["NHWC", "channels-last", 1], ids=repr)
def test_block_layer_bad_data_format(bad):
    _raises(ValueError, "data_format", lambda: L.DropBlock2D(0.1, 3, data_format=bad))


# Keras' own messages (keras.layers.Dropout._validate_noise_shape).
@pytest.mark.parametrize(
    "bad, text",
    [
        ("abc", "Expected a tuple or list of integers."),
        (5, "Expected an iterable of integers"),
        ((20, 1.5, 10), "Expected all elements to be integers or None."),
        ((20, True), "Expected all elements to be integers or None."),
        ((20, -1, 10), "Expected all dimensions to be positive integers or None."),
        ((20, 0, 10), "Expected all dimensions to be positive integers or None."),
    ],
    ids=repr,
)
def test_scheduled_dropout_bad_noise_shape(bad, text):
    msg = _raises(ValueError, "noise_shape", lambda: L.ScheduledDropout(0.5, noise_shape=bad))
    assert text in msg


# ------------------------------------------------------------------- layer inputs


@pytest.mark.parametrize("dtype", ["int32", "bool"])
@pytest.mark.parametrize("name", NAMES)
def test_layer_non_float_input(name, dtype):
    make, shape = LAYERS[name]
    layer = make(0.3, seed=1)
    x = keras.ops.cast(keras.ops.ones(shape), dtype)
    msg = _raises(TypeError, "inputs", lambda: layer(x, training=True))
    assert "floating" in msg and dtype in msg


@pytest.mark.parametrize("name", ["DropBlock2D", "ProbDropBlock2D"])
def test_built_block_layer_called_on_another_rank_blames_the_input(name):
    make, shape = LAYERS[name]
    layer = make(0.3, seed=1)
    layer(_x(shape), training=True)
    msg = _raises(ValueError, "inputs", lambda: layer(_x((2, 4, 5, 6, 3)), training=True))
    assert "rank 4" in msg and "(2, 4, 5, 6, 3)" in msg and "block_size" not in msg
    _raises(ValueError, "inputs", lambda: make(0.3)(_x((2, 8, 3)), training=True))


def test_drop_path_on_a_scalar_input():
    _raises(ValueError, "inputs", lambda: L.DropPath(0.3)(np.float32(2.0), training=True))


@pytest.mark.parametrize("noise_shape", [(8, 1, 1), (1,), (None, 5)], ids=repr)
def test_scheduled_dropout_noise_shape_against_input(noise_shape):
    layer = L.ScheduledDropout(0.5, noise_shape=noise_shape)
    msg = _raises(ValueError, "noise_shape", lambda: layer(_x((8, 12)), training=True))
    assert "(8, 12)" in msg


@pytest.mark.parametrize("mask_shape", [(4, 11), (4, 12, 3), (5, 12)])
@pytest.mark.parametrize("cls", [L.DropBlock1D, L.ProbDropBlock1D])
def test_1d_layer_padding_mask_of_the_wrong_shape(cls, mask_shape):
    layer = cls(0.3, 3, seed=1)
    mask = np.ones(mask_shape, bool)
    msg = _raises(ValueError, "mask", lambda: layer(_x((4, 12, 3)), training=True, mask=mask))
    assert str(mask_shape) in msg and "(4, 12)" in msg


# ------------------------------------------------------------------------ op arguments

OP_BAD_RATES = [None, "0.5", True, [0.1, 0.2], np.array([0.1, 0.2]), 1.5, -0.5, float("nan")]


@pytest.mark.parametrize("bad", OP_BAD_RATES, ids=repr)
@pytest.mark.parametrize("op", OP_NAMES)
def test_op_bad_python_rate(op, bad):
    fn, shape = OPS[op]
    _raises(ValueError, "rate", lambda: fn(_x(shape), bad))


@pytest.mark.parametrize("op", OP_NAMES)
def test_op_vector_tensor_rate(op):
    fn, shape = OPS[op]
    rate = keras.ops.convert_to_tensor([0.1, 0.2])
    msg = _raises(ValueError, "rate", lambda: fn(_x(shape), rate))
    assert "scalar" in msg


@pytest.mark.parametrize("dtype", ["int32", "bool"])
@pytest.mark.parametrize("op", OP_NAMES)
def test_op_non_float_input(op, dtype):
    fn, shape = OPS[op]
    x = keras.ops.cast(keras.ops.ones(shape), dtype)
    msg = _raises(TypeError, "x", lambda: fn(x, 0.3))
    assert "floating" in msg


@pytest.mark.parametrize("op", OP_NAMES)
def test_op_bad_seed(op):
    fn, shape = OPS[op]
    _raises(ValueError, "seed", lambda: fn(_x(shape), 0.3, seed=True))


@pytest.mark.parametrize(
    "noise_shape", ["abc", (8, 12, 1), (8,), (None, 5), (8, 0), (8, 1.0)], ids=repr
)
def test_dropout_bad_noise_shape(noise_shape):
    _raises(ValueError, "noise_shape", lambda: dropout(_x((8, 12)), 0.5, noise_shape=noise_shape))


@pytest.mark.parametrize("op", ["drop_block", "prob_drop_block"])
def test_block_op_input_rank(op):
    fn = {"drop_block": drop_block, "prob_drop_block": prob_drop_block}[op]
    msg = _raises(ValueError, "x", lambda: fn(_x((4, 9)), 0.1, 3))
    assert "rank 3, 4 or 5" in msg
    # A block_size tuple for another rank names the input's shape too.
    msg = _raises(ValueError, "block_size", lambda: fn(_x((2, 5, 6, 4, 2)), 0.1, (3, 3)))
    assert "(2, 5, 6, 4, 2)" in msg


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"block_size": (2.5, 3)}, "block_size"),
        ({"block_size": "33"}, "block_size"),
        ({"per_channel": "False"}, "per_channel"),
        ({"data_format": "NHWC"}, "data_format"),
        ({"mask": np.ones((4, 9), bool)}, "mask"),  # a padding mask is for 1D inputs only
        ({"gamma": "Paper"}, "gamma"),
        ({"gamma": None}, "gamma"),
    ],
    ids=str,
)
@pytest.mark.parametrize("op", ["drop_block", "prob_drop_block"])
def test_drop_block_bad_arguments(kwargs, argument, op):
    fn = {"drop_block": drop_block, "prob_drop_block": prob_drop_block}[op]
    args = {"block_size": 3, **kwargs}
    _raises(ValueError, argument, lambda: fn(_x((4, 9, 10, 3)), 0.1, **args))


def test_prob_drop_block_bad_inverse_salience():
    _raises(
        ValueError, "inverse_salience",
        lambda: prob_drop_block(_x((4, 9, 10, 3)), 0.1, 3, inverse_salience="no"),
    )


@pytest.mark.parametrize("op", ["drop_block", "prob_drop_block"])
def test_1d_op_padding_mask_of_the_wrong_shape(op):
    fn = {"drop_block": drop_block, "prob_drop_block": prob_drop_block}[op]
    msg = _raises(ValueError, "mask", lambda: fn(_x((4, 12, 3)), 0.1, 3, mask=np.ones((4, 10))))
    assert "(4, 10)" in msg and "(4, 12)" in msg


DIVERGENCES = {
    "symmetric_kl": (symmetric_kl, "p", "q"),
    "binary_symmetric_kl": (binary_symmetric_kl, "p", "q"),
    "mean_squared_difference": (mean_squared_difference, "a", "b"),
}


@pytest.mark.parametrize("name", sorted(DIVERGENCES))
def test_divergence_shape_mismatch_names_both_shapes(name):
    fn, first, second = DIVERGENCES[name]
    msg = _raises(ValueError, second, lambda: fn(_x((4, 3)), _x((1, 3))))
    assert f"`{first}`" in msg and "(4, 3)" in msg and "(1, 3)" in msg


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"axis": 2}, "axis"),
        ({"axis": "1"}, "axis"),
        ({"from_logits": "yes"}, "from_logits"),
        ({"reduction": "avg"}, "reduction"),
        ({"mask": np.ones((3,), bool)}, "mask"),
        ({"mask": np.ones((4, 3), bool)}, "mask"),
        ({"sample_weight": np.ones((4, 2))}, "sample_weight"),
    ],
    ids=str,
)
def test_symmetric_kl_bad_arguments(kwargs, argument):
    p = np.full((4, 3), 1 / 3, "float32")
    _raises(ValueError, argument, lambda: symmetric_kl(p, p, **kwargs))


# --------------------------------------------------------------------- exact outputs


@pytest.mark.parametrize("name", NAMES)
def test_rate_one_drops_everything_in_every_layer(name):
    make, shape = LAYERS[name]
    layer = make(1.0, seed=1)
    y = to_np(layer(_x(shape), training=True))
    assert np.all(y == 0), (y != 0).mean()
    layer.rate = 0.2
    layer.rate = 1.0  # also through the variable
    assert np.all(to_np(layer(_x(shape), training=True)) == 0)


OP_VARIANTS = ["dropout", "drop_path"] + [
    f"{op}-{pc}-{df}"
    for op in ("drop_block", "prob_drop_block")
    for pc in ("per_channel", "shared")
    for df in ("channels_last", "channels_first")
]


@pytest.mark.parametrize("variant", OP_VARIANTS)
def test_rate_one_drops_everything_in_every_op(variant):
    op, *rest = variant.split("-")
    fn, shape = OPS[op]
    modes = [{}]
    if rest:
        base = {"per_channel": rest[0] == "per_channel", "data_format": rest[1]}
        modes = [{**base, "gamma": "exact"}, {**base, "gamma": "paper"}]
    for kwargs in modes:
        for rate in (1.0, keras.ops.convert_to_tensor(1.0)):
            assert np.all(to_np(fn(_x(shape), rate, seed=2, **kwargs)) == 0)


@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan], ids=str)
@pytest.mark.parametrize("op", OP_NAMES)
def test_dropped_units_are_exactly_zero_whatever_they_held(op, value):
    fn, shape = OPS[op]
    x = np.full(shape, value, "float32")
    y = to_np(fn(x, 0.5, seed=3))
    dropped = y == 0
    assert dropped.any()
    kept = y[~dropped]
    assert np.all(np.isnan(kept)) if np.isnan(value) else np.all(kept == value)


@pytest.mark.parametrize("name", ["ScheduledDropout", "DropPath", "DropBlock2D"])
def test_layers_drop_inf_to_exactly_zero(name):
    make, shape = LAYERS[name]
    x = np.full(shape, np.inf, "float32")
    y = to_np(make(0.5, seed=4)(x, training=True))
    assert not np.isnan(y).any() and (y == 0).any() and np.all((y == 0) | (y == np.inf))


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("per_channel", [True, False])
def test_prob_drop_block_with_an_inf_still_drops_every_map(per_channel, inverse):
    rate, n = 0.3, 64
    x = _x((n, 9, 10, 2))
    x[:, 4, 5, :] = np.inf
    y = to_np(
        prob_drop_block(x, rate, 3, seed=5, per_channel=per_channel, inverse_salience=inverse)
    )
    assert not np.isnan(y).any()
    frac = (y == 0).mean()
    assert 0.5 * rate < frac < 1.5 * rate, frac
    # Every sample (and channel) is dropped somewhere: no map is exempt.
    dropped_maps = (y == 0).any(axis=(1, 2))
    assert dropped_maps.mean() > 0.9


def test_float16_scale_is_applied_in_float32():
    # 1 / (1 - 0.99999) does not fit in float16; x * scale (~100) does.
    x = keras.ops.full((1_000_000,), 1e-3, "float16")
    y = to_np(keras.ops.cast(dropout(x, 0.99999, seed=6), "float32"))
    kept = y[y != 0]
    assert kept.size > 0 and np.all(np.isfinite(kept))
    scale = 1.0 / (1.0 - np.float32(0.99999))  # the keep probability of noise >= rate
    expected = np.float16(np.float16(1e-3).astype("float32") * scale).astype("float32")
    np.testing.assert_array_equal(kept, expected)


def test_float16_output_is_inf_only_where_the_product_overflows():
    # Documented: x * scale itself above 65504 cannot be represented in float16.
    x = keras.ops.full((1_000_000,), 1.0, "float16")
    y = to_np(keras.ops.cast(dropout(x, 0.99999, seed=6), "float32"))
    assert np.all(np.isinf(y[y != 0])) and not np.isnan(y).any()


def test_op_inputs_python_list_and_numpy():
    y = dropout([1.0, 2.0, 3.0], 0.3, seed=7)
    assert tuple(y.shape) == (3,) and keras.backend.standardize_dtype(y.dtype) == "float32"
    assert np.all(np.isin(to_np(y), [0.0, *(np.array([1, 2, 3]) / 0.7).astype("float32")]))
    x = np.ones((4, 6, 6, 2), "float32")
    for fn in (lambda v: dropout(v, 0.3), lambda v: drop_path(v, 0.3),
               lambda v: drop_block(v, 0.3, 3), lambda v: prob_drop_block(v, 0.3, 3)):
        assert to_np(fn(x)).shape == x.shape


@pytest.mark.parametrize(
    "shape", [(2, 8, 8, 0), (2, 0, 8, 3), (2, 8, 0, 3), (0, 8, 8, 3)], ids=str
)
@pytest.mark.parametrize("cls", [L.DropBlock2D, L.ProbDropBlock2D])
def test_empty_inputs_give_empty_outputs(cls, shape):
    y = cls(0.3, 3, seed=8)(np.ones(shape, "float32"), training=True)
    assert tuple(y.shape) == shape
    stock = keras.layers.SpatialDropout2D(0.3)(np.ones(shape, "float32"), training=True)
    assert tuple(stock.shape) == shape


def test_empty_inputs_to_ops():
    assert tuple(drop_block(np.ones((2, 0, 3), "float32"), 0.3, 3).shape) == (2, 0, 3)
    assert tuple(prob_drop_block(np.ones((2, 5, 0), "float32"), 0.3, 3).shape) == (2, 5, 0)
    assert tuple(dropout(np.ones((0, 3), "float32"), 0.3).shape) == (0, 3)
    assert tuple(drop_path(np.ones((0, 3), "float32"), 0.3).shape) == (0, 3)


def test_symmetric_kl_with_inf_logits_is_finite():
    a = np.array([[np.inf, 0.0, 1.0], [1.0, 2.0, 3.0], [-np.inf, 0.0, 0.0]], "float32")
    b = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], "float32")
    vals = to_np(symmetric_kl(a, b, from_logits=True, reduction="none"))
    assert np.all(np.isfinite(vals)) and vals[0] > 1e20 and vals[1] == 0.0 and vals[2] > 1e20
    assert to_np(symmetric_kl(a, a, from_logits=True, reduction="none")).tolist() == [0, 0, 0]
    vals = to_np(binary_symmetric_kl(a, b, from_logits=True, reduction="none"))
    assert np.all(np.isfinite(vals)) and vals[1] == 0.0


# -------------------------------------------------- documented accepted inputs (3)


def test_decision_tensor_rates_are_clipped_to_zero_one():
    # 1. A tensor rate is only known inside the compiled step: it is clipped (one
    #    scalar op) instead of checked; a NaN tensor rate drops everything.
    x = _x((8, 12))
    t = keras.ops.convert_to_tensor
    for op in OP_NAMES:
        fn, shape = OPS[op]
        x = _x(shape)
        assert np.all(to_np(fn(x, t(1.5), seed=9)) == 0)
        np.testing.assert_array_equal(to_np(fn(x, t(-0.5), seed=9)), x)
        assert np.all(to_np(fn(x, t(float("nan")), seed=9)) == 0)


def test_decision_probabilities_outside_zero_one_are_clipped():
    # 2. Probabilities (from_logits=False) are tensors, clipped to [0, 1] like Keras'
    #    cross-entropies clip theirs.
    p = np.array([[2.0, -1.0], [0.3, 0.7]], "float32")
    q = np.array([[0.5, 0.5], [0.4, 0.6]], "float32")
    np.testing.assert_allclose(
        to_np(symmetric_kl(p, q, reduction="none")),
        to_np(symmetric_kl(np.clip(p, 0, 1), q, reduction="none")),
    )
    np.testing.assert_allclose(
        to_np(binary_symmetric_kl(p, q)), to_np(binary_symmetric_kl(np.clip(p, 0, 1), q))
    )


def test_decision_padding_at_rate_one():
    # 3. With a padding mask no block is centred on padding, so at rate 1 every real
    #    step is dropped, and padding only within block_size // 2 of a real step.
    x = _x((2, 12, 3))
    mask = np.ones((2, 12), bool)
    mask[:, 6:] = False
    y = to_np(drop_block(x, 1.0, 3, mask=mask, seed=10))
    assert np.all(y[:, :7] == 0) and np.all(y[:, 8:] != 0)


@pytest.mark.skipif(BACKEND != "torch", reason="torch places tensors on explicit devices")
def test_op_inputs_on_another_device_than_the_default():
    # Issue 11: CPU tensors on a CUDA machine crashed ("cuda:0 and cpu"). A "meta"
    # default device stands in for the GPU: inputs move to the default device, as
    # keras.ops does with its inputs, and constants are created there too.
    import torch

    p = torch.tensor(np.eye(3, dtype="float32")[[0, 1, 2, 0]])
    q = torch.tensor(np.eye(3, dtype="float32")[[0, 2, 2, 1]])
    w = torch.ones(4)
    mask = torch.ones(4, dtype=torch.bool)
    with keras.device("meta"):
        for fn in (symmetric_kl, binary_symmetric_kl, mean_squared_difference):
            out = fn(p, q, mask=mask, sample_weight=w)
            assert out.device.type == "meta"
        out = symmetric_kl(p, q, from_logits=True, reduction="none")
        assert out.device.type == "meta"
        x = torch.ones(4, 6, 6, 2)
        for op in OP_NAMES:
            for rate in (0.3, torch.tensor(0.3)):
                out = OPS[op][0](x, rate, seed=1)
                assert out.device.type == "meta" and tuple(out.shape) == (4, 6, 6, 2)
