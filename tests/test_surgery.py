"""keras_dropouts.surgery on keras.applications models and small hand-built graphs.

The expected counts come from the architectures, not from the surgery's own walker:
ResNet50 has 3 + 4 + 6 + 3 = 16 residual blocks (each ends in a `keras.layers.Add`
named `conv{s}_block{b}_add`, followed by the block's output activation
`conv{s}_block{b}_out`); ConvNeXt-Tiny has 3 + 3 + 9 + 3 = 18 blocks whose residual
additions are `x + y` graph operations. Keras gives ConvNeXt block i the drop-path rate
`linspace(0, drop_path_rate, 18)[i]` and a `StochasticDepth` only where that is
non-zero, so 17 of them (the first block's rate is 0: an identity `Activation`).
"""

import keras
import numpy as np
import pytest

import keras_dropouts as kd
from keras_dropouts.schedules import depth_factors

RESNET50_BLOCKS = [3, 4, 6, 3]
CONVNEXT_TINY_BLOCKS = [3, 3, 9, 3]


def to_np(x):
    return keras.ops.convert_to_numpy(x)


def of_type(model, cls):
    return [layer for layer in model.layers if isinstance(layer, cls)]


def drop_paths(model):
    return of_type(model, kd.layers.DropPath)


def resnet50_block_names(suffix, stages=(2, 3, 4, 5)):
    return [
        f"conv{s}_block{b + 1}_{suffix}"
        for s, n in zip((2, 3, 4, 5), RESNET50_BLOCKS)
        if s in stages
        for b in range(n)
    ]


def assert_same_predictions(new, model, x):
    np.testing.assert_array_equal(to_np(new(x, training=False)), to_np(model(x, training=False)))


def fit_one_step(model, x, y, callbacks, loss="sparse_categorical_crossentropy"):
    model.compile("sgd", loss)
    callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
    model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, callbacks=callbacks)


@pytest.fixture(scope="module")
def images():
    return np.random.RandomState(0).rand(2, 32, 32, 3).astype("float32")


@pytest.fixture(scope="module")
def resnet():
    model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)
    snapshot = ([layer.name for layer in model.layers], [w.copy() for w in model.get_weights()])
    return model, snapshot


def assert_unchanged(model, snapshot):
    names, weights = snapshot
    assert [layer.name for layer in model.layers] == names
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


def test_insert_drop_path_resnet50_one_per_residual_block(resnet, images, capsys):
    model, snapshot = resnet
    new = kd.surgery.insert_drop_path(model, 0.1)
    assert capsys.readouterr().out.strip() == (
        "insert_drop_path: 16 DropPath on 16 residual Add (linear, rates 0.00625 to 0.1)"
    )
    inserted = drop_paths(new)
    n = sum(RESNET50_BLOCKS)
    assert len(inserted) == n
    # Named after their add, in model order, with the paper's linear rule.
    assert [layer.name for layer in inserted] == [f"{a}_drop_path" for a in resnet50_block_names("add")]
    np.testing.assert_allclose([layer.rate for layer in inserted], [0.1 * (i + 1) / n for i in range(n)])
    # On the branch, never the shortcut: each DropPath feeds its add, and takes the
    # output of the branch's last batch norm (`*_3_bn`), not the shortcut.
    for layer in inserted:
        add = new.get_layer(layer.name[: -len("_drop_path")])
        assert layer.output is add.input[1]
        assert layer.input is new.get_layer(add.name.replace("_add", "_3_bn")).output
    # Exactly the original's function at inference, with a copy of its weights.
    assert_same_predictions(new, model, images)
    assert new.get_layer("conv1_conv") is not model.get_layer("conv1_conv")
    assert_unchanged(model, snapshot)


def test_resnet50_drop_block_and_drop_path_save_load(resnet, images, tmp_path):
    """The README recipe on ResNet50: DropBlock on groups 3 and 4 (and their skip
    connections) plus stochastic depth on all 16 blocks; one `.keras` round trip; then
    one compiled train step of the loaded model in which two schedules reach all 34
    inserted layers (the rates the step wrote are what `layer.rate` reads after `fit`)."""
    model, snapshot = resnet
    outs = resnet50_block_names("out", stages=(4, 5))
    new = kd.surgery.insert_drop_block(
        kd.surgery.insert_drop_path(model, 0.1, verbose=False), 0.1, 3, after=outs, verbose=False
    )
    path = str(tmp_path / "resnet.keras")
    new.save(path)
    loaded = keras.models.load_model(path)
    assert len(drop_paths(loaded)) == 16 and len(of_type(loaded, kd.layers.DropBlock2D)) == 18
    np.testing.assert_allclose(
        [layer.rate for layer in drop_paths(loaded)], [0.1 * (i + 1) / 16 for i in range(16)], rtol=1e-6
    )
    assert_same_predictions(loaded, model, images)
    assert_unchanged(model, snapshot)
    late = kd.callbacks.LateDropout(0.4, start_step=0, layers=kd.layers.DropPath, depth_rule="linear")
    ramp = kd.callbacks.DropoutScheduler(lambda step: 0.05, layers=kd.layers.DropBlock2D)
    fit_one_step(loaded, images, np.zeros((len(images),), "int32"), [late, ramp])
    assert late.evaluation == ramp.evaluation == "in_step"
    assert len(late.targets) == 16 and len(ramp.targets) == 18
    expected = [0.4 * (i + 1) / 16 for i in range(16)]
    np.testing.assert_allclose([layer.rate for layer in late.targets], expected, rtol=1e-6)
    np.testing.assert_allclose([layer.rate for layer in ramp.targets], [0.05] * 18, rtol=1e-6)


def test_insert_drop_path_stagewise_rates(resnet, capsys):
    model = resnet[0]
    new = kd.surgery.insert_drop_path(model, 0.2, depth_rule="stagewise")
    assert "16 DropPath on 16 residual Add (stagewise" in capsys.readouterr().out
    expected = [0.2 * (k + 1) / 4 for k, n in enumerate(RESNET50_BLOCKS) for _ in range(n)]
    np.testing.assert_allclose([layer.rate for layer in drop_paths(new)], expected)


def test_insert_drop_block_resnet50_groups_3_and_4(resnet, capsys):
    """Ghiasi et al.: DropBlock after the blocks of groups 3 and 4 (conv4_x, conv5_x)
    and on their skip connections: 6 + 3 = 9 blocks."""
    model, snapshot = resnet
    outs = resnet50_block_names("out", stages=(4, 5))
    by_name = kd.surgery.insert_drop_block(model, 0.1, 3, after=outs)
    assert capsys.readouterr().out.strip() == (
        "insert_drop_block: 9 DropBlock2D after, 9 DropBlock2D on skip connections"
    )

    def groups_3_4(layer):
        return layer.name.startswith(("conv4_", "conv5_")) and layer.name.endswith("_out")

    new = kd.surgery.insert_drop_block(model, 0.1, 3, after=groups_3_4, verbose=False)
    for built in (by_name, new):
        blocks = of_type(built, kd.layers.DropBlock2D)
        assert len(blocks) == 2 * len(outs) == 18
    assert [b.name for b in of_type(new, kd.layers.DropBlock2D) if b.name.endswith("_out_drop_block")] == [
        f"{n}_drop_block" for n in outs
    ]
    for name in outs:
        after = new.get_layer(f"{name}_drop_block")
        assert after.input is new.get_layer(name).output
        add = new.get_layer(name.replace("_out", "_add"))
        skip = new.get_layer(f"{add.name}_skip_drop_block")
        assert skip.output is add.input[0]  # ResNet50's shortcut comes first
        # The shortcut: the projection's batch norm (first block of a stage) or the
        # previous block's output, after its DropBlock when that block was chosen.
        shortcut = skip.input._keras_history[0].name
        assert shortcut.endswith(("_0_bn", "_out", "_out_drop_block"))
        assert all(b.rate == pytest.approx(0.1) and b.block_size == (3, 3) for b in (after, skip))
    assert_unchanged(model, snapshot)


@pytest.fixture(scope="module")
def convnext():
    return keras.applications.ConvNeXtTiny(weights=None, input_shape=(32, 32, 3), classes=10)


def test_insert_drop_path_convnext_tiny_plus_operations(convnext, images, capsys):
    n = sum(CONVNEXT_TINY_BLOCKS)
    new = kd.surgery.insert_drop_path(convnext, 0.1, depth_rule="linspace")
    assert capsys.readouterr().out.strip() == (
        f"insert_drop_path: {n} DropPath on {n} residual `+` (linspace, rates 0 to 0.1)"
    )
    inserted = drop_paths(new)
    assert len(inserted) == n
    np.testing.assert_allclose([layer.rate for layer in inserted], np.linspace(0, 0.1, n))
    # On the branch: after the block's layer scale (Keras names it `*_layer_scale`)
    # and its identity activation, never on the block input.
    for layer in inserted:
        producer = layer.input._keras_history[0]
        assert type(producer).__name__ == "Activation", producer.name
        assert producer.input._keras_history[0].name.endswith("_layer_scale")
    assert_same_predictions(new, convnext, images)


def convnext_tiny_with_drop_path():
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


def test_swap_dropout_convnext_stochastic_depth(images, capsys, tmp_path):
    model = convnext_tiny_with_drop_path()
    foreign = [layer for layer in model.layers if type(layer).__name__ == "StochasticDepth"]
    new = kd.surgery.swap_dropout(model)
    assert capsys.readouterr().out.strip() == "swap_dropout: 17 StochasticDepth -> DropPath"
    converted = drop_paths(new)
    assert len(converted) == sum(CONVNEXT_TINY_BLOCKS) - 1 == len(foreign)
    np.testing.assert_allclose([layer.rate for layer in converted], np.linspace(0, 0.1, 18)[1:])
    assert [layer.name for layer in converted] == [layer.name for layer in foreign]
    assert not any(type(layer).__name__ == "StochasticDepth" for layer in new.layers)
    assert_same_predictions(new, model, images)
    # `.keras` round trip, then one compiled step in which a late schedule (linspace
    # depth rule over its 17 targets) reaches every converted layer.
    path = str(tmp_path / "convnext.keras")
    new.save(path)
    loaded = keras.models.load_model(path)
    assert_same_predictions(loaded, model, images)
    late = kd.callbacks.LateDropout(0.2, start_step=0, layers=kd.layers.DropPath, depth_rule="linspace")
    fit_one_step(loaded, images, np.zeros((len(images),), "int32"), late)
    assert late.evaluation == "in_step" and len(late.targets) == 17
    np.testing.assert_allclose([layer.rate for layer in late.targets], np.linspace(0, 0.2, 17), rtol=1e-6, atol=1e-7)
    # Only the first block (rate 0: no StochasticDepth) gets a DropPath; the others
    # have a drop path on their branch already.
    inserted = kd.surgery.insert_drop_path(new, 0.1)
    assert capsys.readouterr().out.strip() == (
        "insert_drop_path: 1 DropPath on 1 residual `+` (linear, rates 0.1 to 0.1), "
        "17 with a drop path already"
    )
    assert len(drop_paths(inserted)) == 17 + 1


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
    swapped = of_type(new, kd.layers.ScheduledDropout)
    assert [layer.name for layer in swapped] == ["sd", "d1", "d2"]
    np.testing.assert_allclose([layer.rate for layer in swapped], [0.2, 0.3, 0.1])
    assert [layer.seed for layer in swapped[:2]] == [7, 3]
    assert swapped[0].noise_shape == (None, 1, 1, None)
    assert tuple(swapped[2].noise_shape) == (None, 1)
    assert new.get_layer("conv") is not model.get_layer("conv")  # a copy
    x = np.random.RandomState(1).rand(3, 6, 6, 3).astype("float32")
    assert_same_predictions(new, model, x)

    seq = keras.Sequential([keras.Input((5,)), keras.layers.Dropout(0.4), keras.layers.Dense(2)])
    new = kd.surgery.swap_dropout(seq, verbose=False)
    assert capsys.readouterr().out == ""
    assert isinstance(new.layers[0], kd.layers.ScheduledDropout) and new.layers[0].rate == pytest.approx(0.4)
    np.testing.assert_array_equal(to_np(new(np.ones((2, 5)))), to_np(seq(np.ones((2, 5)))))


def test_insert_drop_path_nested_models_and_depth_order():
    """Residual additions of a nested model count in model order with the outer ones."""
    inner_in = keras.Input((8,))
    inner_out = keras.layers.Add(name="inner_add")([inner_in, keras.layers.Dense(8, name="g")(inner_in)])
    inner = keras.Model(inner_in, inner_out, name="inner")
    inp = keras.Input((8,))
    x = inp + keras.layers.Dense(8, name="f")(inp)  # an `x + y` operation
    x = inner(x)
    x = keras.layers.Add(name="outer_add")([x, keras.layers.Dense(8, name="h")(x)])
    model = keras.Model(inp, x)
    new = kd.surgery.insert_drop_path(model, 0.3, verbose=False)
    nested = new.get_layer("inner")
    assert nested is not inner and [layer.name for layer in drop_paths(nested)] == ["inner_add_drop_path"]
    assert nested.get_layer("inner_add_drop_path").input is nested.get_layer("g").output
    outer = drop_paths(new)
    assert len(outer) == 2 and outer[1].name == "outer_add_drop_path"
    assert outer[0].input is new.get_layer("f").output
    np.testing.assert_allclose(
        [outer[0].rate, nested.get_layer("inner_add_drop_path").rate, outer[1].rate], [0.1, 0.2, 0.3]
    )
    assert drop_paths(inner) == []  # the input model's nested model is unchanged
    x = np.random.RandomState(3).rand(2, 8).astype("float32")
    assert_same_predictions(new, model, x)


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


def test_depth_factors():
    assert depth_factors(4) == [0.25, 0.5, 0.75, 1.0]
    assert depth_factors(3, "constant") == [1.0, 1.0, 1.0]
    assert depth_factors(5, "stagewise", stages=[1, 1, 2, 3, 3]) == [1 / 3, 1 / 3, 2 / 3, 1.0, 1.0]
    assert depth_factors(5, "linspace") == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert depth_factors(1, "linspace") == [0.0]
    assert depth_factors(0) == []
    with pytest.raises(ValueError, match="argument `depth_rule`"):
        depth_factors(3, "cosine")
    with pytest.raises(ValueError, match="argument `stages`"):
        depth_factors(3, "stagewise")


def test_scheduler_depth_rules_use_depth_factors():
    """`depth_rule` of the callbacks: True is linspace(0, 1, n) as before; the strings
    are `depth_factors`' rules; "stagewise" groups the targets by input shape."""
    inp = keras.Input((8,))
    x = inp
    for i, width in enumerate((8, 8, 4, 4, 4)):
        x = kd.layers.DropPath(0.0, name=f"dp{i}")(x)
        x = keras.layers.Dense(width, name=f"d{i}")(x)
    model = keras.Model(inp, x)
    xs, ys = np.ones((4, 8), "float32"), np.ones((4, 4), "float32")
    expected = {
        True: [0.0, 0.1, 0.2, 0.3, 0.4],  # linspace(0, 1, n), as before
        "linear": [0.08, 0.16, 0.24, 0.32, 0.4],
        # Inputs: dp0, dp1, dp2 see width 8 (the input, d0, d1), dp3, dp4 width 4.
        "stagewise": [0.2, 0.2, 0.2, 0.4, 0.4],
    }
    for rule, rates in expected.items():
        cb = kd.callbacks.DropoutScheduler(lambda step: 0.4, depth_rule=rule)
        fit_one_step(model, xs, ys, cb, loss="mse")
        np.testing.assert_allclose([model.get_layer(f"dp{i}").rate for i in range(5)], rates, rtol=1e-6)
    for bad in ("cosine", 1, None):
        with pytest.raises(ValueError, match=r"argument `depth_rule`.*True, False or one of"):
            kd.callbacks.DropoutScheduler(lambda step: 0.4, depth_rule=bad)
