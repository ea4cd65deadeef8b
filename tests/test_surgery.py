"""keras_dropouts.surgery: swap_dropout and insert_drop_path on models we did not write.

The expected counts come from the architectures, not from the surgery's own walker:
ResNet50 has 3 + 4 + 6 + 3 = 16 residual blocks (each ends in a `keras.layers.Add`);
ConvNeXt-Tiny has 3 + 3 + 9 + 3 = 18 blocks; Keras gives block i the drop-path rate
`linspace(0, drop_path_rate, 18)[i]` and a `StochasticDepth` only where that is non-zero,
so 17 of them (the first block's rate is 0: an identity `Activation`). Its residual
additions are `x + y` graph operations, not layers.
"""

import warnings

import keras
import numpy as np
import pytest

import keras_dropouts as kd
from keras_dropouts.schedules import depth_factors

RESNET50_BLOCKS = [3, 4, 6, 3]
CONVNEXT_TINY_BLOCKS = [3, 3, 9, 3]


def to_np(x):
    return keras.ops.convert_to_numpy(x)


def drop_paths(model):
    return [layer for layer in model.layers if isinstance(layer, kd.layers.DropPath)]


@pytest.fixture(scope="module")
def images():
    return np.random.RandomState(0).rand(2, 32, 32, 3).astype("float32")


@pytest.fixture(scope="module")
def resnet():
    model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)
    snapshot = ([layer.name for layer in model.layers], [w.copy() for w in model.get_weights()])
    new = kd.surgery.insert_drop_path(model, 0.1, verbose=False)
    return model, snapshot, new


def test_insert_drop_path_resnet50_one_per_residual_block(resnet, images):
    model, (names, weights), new = resnet
    inserted = drop_paths(new)
    n = sum(RESNET50_BLOCKS)
    assert len(inserted) == n
    # Named after their add, in model order, with the paper's linear rule.
    adds = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert [layer.name for layer in inserted] == [f"{a}_drop_path" for a in adds]
    np.testing.assert_allclose([layer.rate for layer in inserted], [0.1 * (i + 1) / n for i in range(n)])
    # On the branch, never the shortcut: each DropPath feeds its add, and takes the
    # output of the branch's last batch norm (`*_3_bn`), not the shortcut.
    for layer in inserted:
        add = new.get_layer(layer.name[: -len("_drop_path")])
        assert layer.output is add.input[1]
        assert layer.input is new.get_layer(add.name.replace("_add", "_3_bn")).output
    # Exactly the original's function at inference, with a copy of its weights.
    np.testing.assert_array_equal(to_np(new(images, training=False)), to_np(model(images, training=False)))
    np.testing.assert_array_equal(to_np(new.predict(images, verbose=0)), to_np(model.predict(images, verbose=0)))
    assert new.get_layer("conv1_conv") is not model.get_layer("conv1_conv")
    # The original is unchanged.
    assert drop_paths(model) == [] and [layer.name for layer in model.layers] == names
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


def test_insert_drop_path_resnet50_save_load_and_late_dropout(resnet, images, tmp_path):
    model, _, new = resnet
    path = str(tmp_path / "resnet_dp.keras")
    new.save(path)
    loaded = keras.models.load_model(path)
    assert len(drop_paths(loaded)) == sum(RESNET50_BLOCKS)
    np.testing.assert_array_equal(to_np(loaded(images, training=False)), to_np(model(images, training=False)))
    # The callbacks reach every inserted layer: LateDropout(0.3) from step 0, no depth
    # rule, sets all 16 (built with 0.00625 ... 0.1) to 0.3.
    loaded.compile("sgd", "sparse_categorical_crossentropy")
    cb = kd.callbacks.LateDropout(0.3, start_step=0, layers=kd.layers.DropPath)
    loaded.fit(images, np.array([1, 2]), batch_size=2, epochs=1, verbose=0, callbacks=[cb])
    np.testing.assert_allclose([layer.rate for layer in drop_paths(loaded)], [0.3] * 16, rtol=1e-6)


def test_insert_drop_path_stagewise_and_constant_rates(resnet, capsys):
    model = resnet[0]
    new = kd.surgery.insert_drop_path(model, 0.2, depth_rule="stagewise")
    assert "16 DropPath on 16 residual Add (stagewise" in capsys.readouterr().out
    expected = [0.2 * (k + 1) / 4 for k, n in enumerate(RESNET50_BLOCKS) for _ in range(n)]
    np.testing.assert_allclose([layer.rate for layer in drop_paths(new)], expected)
    new = kd.surgery.insert_drop_path(model, 0.2, depth_rule="constant", verbose=False)
    np.testing.assert_allclose([layer.rate for layer in drop_paths(new)], [0.2] * 16)


def test_depth_factors():
    assert depth_factors(4) == [0.25, 0.5, 0.75, 1.0]
    assert depth_factors(3, "constant") == [1.0, 1.0, 1.0]
    assert depth_factors(5, "stagewise", stages=[1, 1, 2, 3, 3]) == [1 / 3, 1 / 3, 2 / 3, 1.0, 1.0]
    assert depth_factors(0) == []
    with pytest.raises(ValueError, match="argument `depth_rule`"):
        depth_factors(3, "cosine")
    with pytest.raises(ValueError, match="argument `stages`"):
        depth_factors(3, "stagewise")


def test_insert_drop_path_skips_adds_that_are_not_residual():
    inp = keras.Input((8,))
    a = keras.layers.Dense(8, name="a")(inp)
    b = keras.layers.Dense(8, name="b")(inp)
    x = keras.layers.Add(name="parallel")([a, b])  # two branches of equal length
    y = keras.layers.Add(name="residual")([x, keras.layers.Dense(8, name="f")(x)])
    other = keras.Input((8,))
    z = keras.layers.Add(name="two_inputs")([y, other])  # no common ancestor
    model = keras.Model([inp, other], z)
    new = kd.surgery.insert_drop_path(model, 0.5, verbose=False)
    assert [layer.name for layer in drop_paths(new)] == ["residual_drop_path"]
    assert new.get_layer("residual_drop_path").input is new.get_layer("f").output
    assert new.get_layer("residual_drop_path").rate == 0.5  # the last (only) block
    xs = [np.ones((2, 8), "float32"), np.ones((2, 8), "float32")]
    np.testing.assert_array_equal(to_np(new(xs)), to_np(model(xs)))


def test_insert_drop_path_projection_shortcut_left_or_right():
    inp = keras.Input((8,))
    branch = keras.layers.Dense(8, name="f2")(keras.layers.Dense(8, name="f1")(inp))
    shortcut = keras.layers.Dense(8, name="proj")(inp)
    model = keras.Model(inp, keras.layers.Add(name="add")([branch, shortcut]))
    new = kd.surgery.insert_drop_path(model, 0.1, verbose=False)
    assert new.get_layer("add_drop_path").input is new.get_layer("f2").output
    assert new.get_layer("add").input[0] is new.get_layer("add_drop_path").output


def convnext_tiny():
    convnext = pytest.importorskip("keras.src.applications.convnext")
    # ConvNeXtTiny() fixes drop_path_rate=0 (no StochasticDepth layers); the base
    # function with Tiny's configuration takes one.
    return convnext.ConvNeXt(
        depths=CONVNEXT_TINY_BLOCKS,
        projection_dims=[96, 192, 384, 768],
        drop_path_rate=0.1,
        weights=None,
        input_shape=(32, 32, 3),
        classes=10,
        name="convnext_tiny",
    )


def test_swap_dropout_convnext_stochastic_depth(images, capsys):
    model = convnext_tiny()
    foreign = [layer for layer in model.layers if type(layer).__name__ == "StochasticDepth"]
    new = kd.surgery.swap_dropout(model)
    assert capsys.readouterr().out.strip() == "swap_dropout: 17 StochasticDepth -> DropPath"
    converted = drop_paths(new)
    assert len(converted) == sum(CONVNEXT_TINY_BLOCKS) - 1 == len(foreign)
    np.testing.assert_allclose([layer.rate for layer in converted], np.linspace(0, 0.1, 18)[1:])
    assert [layer.name for layer in converted] == [layer.name for layer in foreign]
    np.testing.assert_allclose(
        [layer.rate for layer in converted], [layer.drop_path_rate for layer in foreign]
    )
    assert not any(type(layer).__name__ == "StochasticDepth" for layer in new.layers)
    np.testing.assert_array_equal(to_np(new(images, training=False)), to_np(model(images, training=False)))
    # Its residual additions are `x + y` operations: insert_drop_path says so.
    with pytest.raises(ValueError, match=r"no residual keras.layers.Add.*18 additions written as `\+`"):
        kd.surgery.insert_drop_path(model, 0.1, verbose=False)


def test_swap_dropout_small_models(capsys):
    inp = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inp)
    x = keras.layers.SpatialDropout2D(0.2, seed=7, name="sd")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.3, seed=3, name="d1")(x)
    x = keras.layers.Dropout(0.1, noise_shape=(None, 1), name="d2")(x)
    model = keras.Model(inp, keras.layers.Dense(2, name="head")(x))
    new = kd.surgery.swap_dropout(model)
    assert (
        capsys.readouterr().out.strip()
        == "swap_dropout: 1 SpatialDropout2D -> ScheduledDropout, 2 Dropout -> ScheduledDropout"
    )
    swapped = [layer for layer in new.layers if isinstance(layer, kd.layers.ScheduledDropout)]
    assert [layer.name for layer in swapped] == ["sd", "d1", "d2"]
    np.testing.assert_allclose([layer.rate for layer in swapped], [0.2, 0.3, 0.1])
    assert [layer.seed for layer in swapped[:2]] == [7, 3]
    assert swapped[0].noise_shape == (None, 1, 1, None)
    assert tuple(swapped[2].noise_shape) == (None, 1)
    x = np.random.RandomState(1).rand(3, 6, 6, 3).astype("float32")
    np.testing.assert_array_equal(to_np(new(x, training=False)), to_np(model(x, training=False)))

    seq = keras.Sequential([keras.Input((5,)), keras.layers.Dropout(0.4), keras.layers.Dense(2)])
    new = kd.surgery.swap_dropout(seq, verbose=False)
    assert capsys.readouterr().out == ""
    assert isinstance(new.layers[0], kd.layers.ScheduledDropout) and new.layers[0].rate == pytest.approx(0.4)
    np.testing.assert_array_equal(to_np(new(np.ones((2, 5)))), to_np(seq(np.ones((2, 5)))))


@pytest.mark.requires("keras_hub")
def test_swap_dropout_keras_hub_drop_paths():
    from keras_hub.src.models.dinov2.dinov2_layers import DINOV2DropPath
    from keras_hub.src.models.swin_transformer.swin_transformer_layers import DropPath as SwinDropPath

    inp = keras.Input((4, 8))
    x = SwinDropPath(0.2, seed=5, name="swin_dp")(inp)
    x = DINOV2DropPath(0.1, name="dino_dp")(x)
    model = keras.Model(inp, x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        new = kd.surgery.swap_dropout(model, verbose=False)
    swin = new.get_layer("swin_dp")
    assert isinstance(swin, kd.layers.DropPath) and swin.rate == pytest.approx(0.2) and swin.seed == 5
    assert isinstance(new.get_layer("dino_dp"), DINOV2DropPath)  # different semantics: kept
    assert any("dino_dp" in str(w.message) and "not a per-sample drop" in str(w.message) for w in caught)


def test_bad_arguments():
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Add()([inp, keras.layers.Dense(4)(inp)]))
    for rate in (-0.1, 1.5, "0.1"):
        with pytest.raises(ValueError, match=r"argument `rate`.*Received: rate="):
            kd.surgery.insert_drop_path(model, rate)
    with pytest.raises(ValueError, match=r"argument `depth_rule`.*'constant', 'linear', 'stagewise'"):
        kd.surgery.insert_drop_path(model, 0.1, depth_rule="exponential")
    with pytest.raises(ValueError, match="no residual keras.layers.Add"):
        kd.surgery.insert_drop_path(keras.Model(inp, keras.layers.Dense(2)(inp)), 0.1)
    with pytest.raises(ValueError, match="is Sequential"):
        kd.surgery.insert_drop_path(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), 0.1)
    with pytest.raises(TypeError, match="argument `model`"):
        kd.surgery.swap_dropout(keras.layers.Dense(2))

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(4)

        def call(self, x):
            return x + self.dense(x)

    for fn in (kd.surgery.swap_dropout, lambda m: kd.surgery.insert_drop_path(m, 0.1)):
        with pytest.raises(ValueError, match="subclassed"):
            fn(Sub())


def test_surgery_keeps_dtype_policies():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        inp = keras.Input((8,))
        x = keras.layers.Dropout(0.2, name="drop")(inp)
        out = keras.layers.Add(name="add")([x, keras.layers.Dense(8, name="f")(x)])
        model = keras.Model(inp, out)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    swapped = kd.surgery.swap_dropout(model, verbose=False)
    inserted = kd.surgery.insert_drop_path(model, 0.1, verbose=False)
    assert swapped.get_layer("drop").dtype_policy.name == "mixed_bfloat16"
    assert inserted.get_layer("add_drop_path").dtype_policy.name == "mixed_bfloat16"
    x = np.random.RandomState(2).rand(2, 8).astype("float32")
    for new in (swapped, inserted):
        np.testing.assert_array_equal(to_np(new(x, training=False)), to_np(model(x, training=False)))
