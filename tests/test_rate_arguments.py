"""Rates given as concrete 0-d backend tensors are accepted (as `keras.layers.Dropout`
takes them); bools, non-scalars, out-of-range values and symbolic tensors are refused
with Keras-style errors. `block_size` of the block layers takes integers only."""

import json
import re

import keras
import numpy as np
import pytest

from keras_dropouts import layers as L
from keras_dropouts.callbacks import EarlyDropout

BACKEND = keras.backend.backend()

RATE_LAYERS = {
    "ScheduledDropout": lambda rate: L.ScheduledDropout(rate),
    "DropPath": lambda rate: L.DropPath(rate),
    "DropBlock1D": lambda rate: L.DropBlock1D(rate, 3),
    "DropBlock2D": lambda rate: L.DropBlock2D(rate, 3),
    "DropBlock3D": lambda rate: L.DropBlock3D(rate, 2),
    "ProbDropBlock1D": lambda rate: L.ProbDropBlock1D(rate, 3),
    "ProbDropBlock2D": lambda rate: L.ProbDropBlock2D(rate, 3),
    "ProbDropBlock3D": lambda rate: L.ProbDropBlock3D(rate, 2),
}
BLOCK_LAYERS = {
    L.DropBlock1D: 1, L.DropBlock2D: 2, L.DropBlock3D: 3,
    L.ProbDropBlock1D: 1, L.ProbDropBlock2D: 2, L.ProbDropBlock3D: 3,
}
RATE_MESSAGE = re.escape(
    "Invalid value received for argument `rate`. Expected a float value between 0 and 1. "
    "Received: rate="
)


def backend_scalar(value, dtype="float32"):
    """A 0-d tensor of the current backend's own type."""
    if BACKEND == "torch":
        torch = pytest.importorskip("torch")
        return torch.tensor(value, dtype=getattr(torch, dtype))
    if BACKEND == "jax":
        jnp = pytest.importorskip("jax.numpy")
        return jnp.asarray(value, dtype=dtype)
    tf = pytest.importorskip("tensorflow")
    return tf.constant(value, dtype=dtype)


def backend_vector(values):
    if BACKEND == "torch":
        return pytest.importorskip("torch").tensor(values)
    if BACKEND == "jax":
        return pytest.importorskip("jax.numpy").asarray(values, dtype="float32")
    return pytest.importorskip("tensorflow").constant(values, dtype="float32")


@pytest.mark.parametrize("name", sorted(RATE_LAYERS))
def test_backend_scalar_rate_in_constructor_and_setter(name):
    layer = RATE_LAYERS[name](backend_scalar(0.3))
    assert layer.rate == 0.3 and isinstance(layer.rate, float)
    config = layer.get_config()
    assert config["rate"] == pytest.approx(0.3) and type(config["rate"]) is float
    json.dumps(config)  # a Python float, serialisable
    assert type(layer).from_config(config).rate == 0.3
    layer.rate = backend_scalar(0.5)
    assert layer.rate == 0.5


@pytest.mark.parametrize(
    "make,expected",
    [
        (lambda: backend_scalar(0.25, "float16"), 0.25),
        (lambda: backend_scalar(1, "int32"), 1.0),
        (lambda: keras.ops.convert_to_tensor(0.25), 0.25),
        (lambda: keras.Variable(0.25, trainable=False), 0.25),
    ],
    ids=["float16", "int32", "convert_to_tensor", "keras.Variable"],
)
def test_other_concrete_scalars_are_accepted(make, expected):
    value = make()
    assert L.ScheduledDropout(value).rate == expected
    assert EarlyDropout(value, cutoff_epoch=1).rate == expected


@pytest.mark.parametrize(
    "make",
    [
        lambda: backend_scalar(1.5),
        lambda: backend_scalar(-0.1),
        lambda: backend_scalar(float("nan")),
        lambda: backend_scalar(True, "bool"),
        lambda: backend_vector([0.3]),
        lambda: backend_vector([0.1, 0.2]),
        lambda: keras.KerasTensor(shape=(), dtype="float32"),
        lambda: True,
        lambda: "0.3",
        lambda: 1.5,
    ],
    ids=["1.5", "-0.1", "nan", "bool", "shape(1,)", "shape(2,)", "KerasTensor", "True", "str",
         "float 1.5"],
)
@pytest.mark.parametrize("name", ["ScheduledDropout", "DropPath", "DropBlock2D"])
def test_bad_rates_are_refused(name, make):
    value = make()
    with pytest.raises(ValueError, match=RATE_MESSAGE):
        RATE_LAYERS[name](value)
    layer = RATE_LAYERS[name](0.1)
    with pytest.raises(ValueError, match=RATE_MESSAGE):
        layer.rate = value
    assert layer.rate == 0.1


def test_symbolic_backend_tensor_is_refused():
    # A traced rate has no value to check: refused (by the checks every rate argument
    # shares: a callback's `rate`, and on JAX a layer's `rate =`).
    layer = L.ScheduledDropout(0.1)
    errors = []

    def assign(rate):
        for target in (lambda: EarlyDropout(rate, cutoff_epoch=1),) + (
            (lambda: setattr(layer, "rate", rate),) if BACKEND == "jax" else ()
        ):
            try:
                target()
            except ValueError as e:
                errors.append(str(e))
        return rate

    if BACKEND == "jax":
        jax = pytest.importorskip("jax")
        jax.jit(assign)(np.float32(0.3))
    elif BACKEND == "tensorflow":
        tf = pytest.importorskip("tensorflow")
        tf.function(assign)(tf.constant(0.3))
    else:
        pytest.skip("torch has no symbolic tensors outside torch.compile")
    assert len(errors) == (2 if BACKEND == "jax" else 1)
    assert all(re.match(RATE_MESSAGE, e) for e in errors)
    assert layer.rate == 0.1


@pytest.mark.parametrize(
    "bad", [3.0, np.float32(3.0), np.array(3.0), "tuple"], ids=["3.0", "np.float32", "np.array", "tuple"]
)
@pytest.mark.parametrize("cls", list(BLOCK_LAYERS), ids=lambda c: c.__name__)
def test_float_block_size_is_refused(cls, bad):
    rank = BLOCK_LAYERS[cls]
    if isinstance(bad, str):
        bad = (3,) * (rank - 1) + (3.0,)
    with pytest.raises(ValueError) as info:
        cls(0.1, bad)
    msg = str(info.value)
    assert msg.startswith("Invalid value received for argument `block_size`. Expected a ")
    assert "integers only" in msg and f"Received: block_size={bad!r}" in msg


@pytest.mark.parametrize("cls", list(BLOCK_LAYERS), ids=lambda c: c.__name__)
def test_integer_block_sizes_are_still_accepted(cls):
    rank = BLOCK_LAYERS[cls]
    assert cls(0.1, 3).block_size == (3,) * rank
    assert cls(0.1, np.int64(2)).block_size == (2,) * rank
    assert cls(0.1, [2] * rank).block_size == (2,) * rank
