"""RDropModel rejects bad arguments with Keras-style messages that name the argument."""

import keras
import numpy as np
import pytest
from rdrop_helpers import data, mlp

from keras_dropouts.models import RDropModel


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"alpha": "1.0"}, "alpha"),
        ({"alpha": True}, "alpha"),
        ({"alpha": -0.1}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"alpha": float("inf")}, "alpha"),
        ({"alpha": None}, "alpha"),
        ({"alpha": [1.0, "x"]}, "alpha"),
        ({"alpha": []}, "alpha"),
        ({"alpha": {"out": True}}, "alpha"),
        ({"passes": 1}, "passes"),
        ({"passes": 2.5}, "passes"),
        ({"passes": "2"}, "passes"),
        ({"passes": True}, "passes"),
        ({"consistency_every": 0}, "consistency_every"),
        ({"consistency_every": "2"}, "consistency_every"),
        ({"consistency": "cosine"}, "consistency"),
        ({"consistency": True}, "consistency"),
        ({"consistency": ["kl", "l2"]}, "consistency"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=f"Invalid value received for argument `{name}`") as info:
        RDropModel(*mlp(), **kwargs)
    assert "Received:" in str(info.value)


def test_numpy_numbers_are_accepted():
    model = RDropModel(*mlp(), alpha=np.float32(0.5), passes=np.int64(3), consistency_every=np.int32(2))
    assert model.alpha == 0.5 and model.passes == 3 and model.consistency_every == 2
    assert isinstance(model.get_config()["alpha"], float)


def test_model_argument_type():
    with pytest.raises(TypeError, match="argument `model`"):
        RDropModel(model="not a model")


def test_compiled_without_a_loss_says_the_loss_is_missing():
    x, y = data(8)
    model = RDropModel(*mlp(), alpha=1.0)
    model.compile("sgd")
    with pytest.raises(ValueError, match="compiled without a loss"):
        model.train_on_batch(x, y)


def test_per_output_alpha_of_the_wrong_length_or_keys():
    x, y = data(8)
    inputs = keras.Input((8,))
    h = keras.layers.Dropout(0.3)(keras.layers.Dense(8)(inputs))
    outs = [keras.layers.Dense(3, name="a")(h), keras.layers.Dense(3, name="b")(h)]
    for alpha in ([1.0], {"a": 1.0, "zz": 2.0}):
        model = RDropModel(inputs, outs, alpha=alpha)
        model.compile("sgd", loss=["sparse_categorical_crossentropy"] * 2)
        with pytest.raises(ValueError, match="argument `alpha`"):
            model.train_on_batch(x, (y, y))


@pytest.mark.parametrize("shape", [(7,), (8, 5), (8, 3, 2), ()])
def test_sample_weight_of_the_wrong_shape(shape):
    x, y = data(8)
    model = RDropModel(*mlp(), alpha=1.0)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    sw = np.ones(shape, "float32")
    with pytest.raises(ValueError, match="sample_weight"):
        model.train_on_batch(x, y, sample_weight=sw)


@pytest.mark.parametrize("shape", [(8,), (8, 1)])
def test_sample_weight_per_sample_shapes_are_accepted(shape):
    x, y = data(8)
    model = RDropModel(*mlp(), alpha=1.0)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logs = model.train_on_batch(x, y, sample_weight=np.ones(shape, "float32"), return_dict=True)
    assert np.isfinite(logs["loss"])
