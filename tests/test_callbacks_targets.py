"""Target selection, stock Keras dropout layers (retrace counting) and swap_dropout."""

import warnings

import keras
import numpy as np
import pytest
from conftest import to_np
from callback_helpers import TRACES, assert_follows, fit_probe, probe_model

import keras_dropouts as kd

BACKEND = keras.backend.backend()
# torch "jit" is torch.compile: too slow for this suite; its eager path never traces.
JITS = [False] if BACKEND == "torch" else [True, False]


def is_traced(jit):
    """Trace counting needs a traced train function: tf.function (always on TF) or jax.jit."""
    return BACKEND == "tensorflow" or (BACKEND == "jax" and jit)


def nested_model():
    inner_in = keras.Input((6,))
    inner = keras.Model(
        inner_in,
        kd.layers.ScheduledDropout(0.1, name="inner_drop")(keras.layers.Dense(6)(inner_in)),
        name="inner",
    )
    inp = keras.Input((6,))
    x = inner(inp)
    x = keras.layers.Dropout(0.2, name="stock_drop")(x)
    x = kd.layers.DropPath(0.1, name="path")(x)
    return keras.Model(inp, keras.layers.Dense(1, name="head")(x))


def names(layers):
    return [layer.name for layer in layers]


def test_default_targets_are_package_layers_found_recursively():
    model = nested_model()
    assert names(kd.callbacks.select_layers(model)) == ["inner_drop", "path"]


def test_selection_by_instance_name_class_and_predicate():
    model = nested_model()
    sel = kd.callbacks.select_layers
    assert names(sel(model, "stock_drop")) == ["stock_drop"]
    assert names(sel(model, keras.layers.Dropout)) == ["stock_drop"]
    assert names(sel(model, [kd.layers.DropPath, "inner_drop"])) == ["inner_drop", "path"]
    assert names(sel(model, lambda layer: "drop" in layer.name)) == ["inner_drop", "stock_drop"]
    path = model.get_layer("path")
    assert sel(model, path) == [path]


def test_selection_errors():
    model = nested_model()
    with pytest.raises(ValueError, match="no dropout layer .* matches 'nope'"):
        kd.callbacks.select_layers(model, "nope")
    with pytest.raises(ValueError, match="'head' .*no schedulable"):
        kd.callbacks.select_layers(model, "head")
    with pytest.raises(ValueError, match="GaussianNoise"):
        kd.callbacks.select_layers(model, keras.layers.GaussianNoise)
    stock_only = keras.Sequential([keras.Input((3,)), keras.layers.Dropout(0.1, name="d")])
    with pytest.raises(ValueError, match="No keras_dropouts layer.*swap_dropout"):
        kd.callbacks.select_layers(stock_only)


def test_keras_hub_backbone_dropout_is_found():
    keras_hub = pytest.importorskip("keras_hub")
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=20,
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=8,
        dropout=0.1,
    )
    found = kd.callbacks.select_layers(backbone, keras.layers.Dropout)
    assert len(found) >= 2 * 2  # at least attention + feed-forward dropout per block
    assert all(layer.rate == 0.1 for layer in found)


@pytest.mark.parametrize("jit", JITS)
def test_stock_layer_retraces_once_per_distinct_rate(jit):
    model = probe_model(keras.layers.Dropout(0.5, seed=1), jit=jit)
    TRACES["n"] = 0
    fit_probe(model, 2, [])
    per_trace = TRACES["n"]  # traces of a fresh model (incl. symbolic build)

    model = probe_model(keras.layers.Dropout(0.5, seed=1), jit=jit)
    TRACES["n"] = 0
    rates = [0.5, 0.5, 0.2, 0.2, 0.5, 0.2, 0.5, 0.5]  # two distinct values
    cb = kd.callbacks.DropoutScheduler(lambda s: rates[s], layers=keras.layers.Dropout)
    fracs, _ = fit_probe(model, len(rates), [cb])
    assert_follows(fracs, rates)
    assert cb.retrace_count == 1  # one new train function (a trace where traced)
    if is_traced(jit):
        assert TRACES["n"] == per_trace + 1  # exactly one extra trace, the 0.2 version
    assert model.get_layer(index=1).rate == 0.5


def test_stock_layer_rate_zero_cannot_be_switched_on():
    model = probe_model(keras.layers.Dropout(0.0, name="off"))
    cb = kd.callbacks.LateDropout(0.3, start_step=2, layers="off")
    with pytest.raises(ValueError, match="'off'.*rate=0.*ScheduledDropout"):
        fit_probe(model, 3, [cb])


def test_linear_schedule_on_stock_layers_warns_once():
    model = probe_model(keras.layers.Dropout(0.5, seed=2))
    cb = kd.callbacks.DropoutScheduler(
        kd.schedules.LinearRamp(0.5, start_rate=0.1), layers=keras.layers.Dropout
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fracs, _ = fit_probe(model, 10, [cb])
    ours = [w for w in caught if "ScheduledDropout" in str(w.message)]
    assert len(ours) == 1 and "retrace" in str(ours[0].message)
    assert_follows(fracs, [0.1 + 0.4 * s / 10 for s in range(10)])


def test_swap_dropout_sequential_copies_weights_and_function():
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(6, name="d1"),
            keras.layers.Dropout(0.3, seed=4),
            keras.layers.Dense(2, name="d2"),
        ]
    )
    new = kd.surgery.swap_dropout(model, verbose=False)
    assert isinstance(new.layers[1], kd.layers.ScheduledDropout)
    assert new.layers[1].rate == pytest.approx(0.3) and new.layers[1].seed == 4
    # A copy with the same weights (the input model is not changed).
    assert new.get_layer("d1") is not model.get_layer("d1")
    np.testing.assert_array_equal(new.get_layer("d1").get_weights()[0], model.get_layer("d1").get_weights()[0])
    x = np.random.randn(4, 6).astype("float32")
    np.testing.assert_allclose(to_np(new(x)), to_np(model(x)), rtol=1e-6)


def test_swap_dropout_functional_nested_spatial_and_schedulable():
    inner_in = keras.Input((4, 5))
    inner = keras.Model(inner_in, keras.layers.SpatialDropout1D(0.2)(inner_in), name="inner")
    inp = keras.Input((4, 5))
    x = inner(inp)
    x = keras.layers.Dropout(0.0, name="late")(keras.layers.Flatten()(x))
    model = keras.Model(inp, keras.layers.Dense(1, name="head")(x))
    new = kd.surgery.swap_dropout(model, verbose=False)
    targets = kd.callbacks.select_layers(new)
    assert [type(t) for t in targets] == [kd.layers.ScheduledDropout] * 2
    assert targets[0].noise_shape == (None, 1, None)
    assert new.get_layer("head") is not model.get_layer("head")
    # Built with rate 0, now switchable: late dropout works without retracing.
    new.compile("sgd", "mse")
    cb = kd.callbacks.LateDropout(0.25, start_step=1, layers="late")
    new.fit(np.ones((8, 4, 5)), np.ones((8, 1)), batch_size=4, verbose=0, callbacks=[cb])
    assert new.get_layer("late").rate == 0.25


def test_swap_dropout_rejects_subclassed_models():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.drop = keras.layers.Dropout(0.1)

        def call(self, x):
            return self.drop(x)

    with pytest.raises(ValueError, match="subclassed"):
        kd.surgery.swap_dropout(Sub())
