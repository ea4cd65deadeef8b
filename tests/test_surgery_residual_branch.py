"""`insert_drop_path(..., skip_compute=True)`: residual blocks as `StochasticResidual`.

The small model below is built so that each kind of block appears once, and the
expected outcome comes from its structure: `b1` (identity shortcut) and `b2`
(projection shortcut `b2_proj`, which stays outside the branch) and the `+` block
`b4` can be cut out; `b3`'s branch output also feeds a side head (a side output), and
the head's `merge` add reads the side head (a tensor from outside that block), so
those two keep a `DropPath`. ResNet50 has 16 residual blocks (4 with a projection
shortcut `conv{s}_block1_0_conv`), every branch a plain chain `*_1_conv` ... `*_3_bn`.
"""

import keras
import numpy as np
import pytest
from conftest import to_np

import keras_dropouts as kd

SR = kd.layers.StochasticResidual
RESNET50_BLOCKS = [3, 4, 6, 3]


def _block(x, width, name, project=False):
    h = keras.layers.Conv2D(width, 3, padding="same", name=f"{name}_conv1")(x)
    h = keras.layers.BatchNormalization(name=f"{name}_bn")(h)
    h = keras.layers.Activation("relu", name=f"{name}_relu")(h)
    h = keras.layers.Conv2D(width, 3, padding="same", name=f"{name}_conv2")(h)
    shortcut = keras.layers.Conv2D(width, 1, name=f"{name}_proj")(x) if project else x
    return keras.layers.Add(name=f"{name}_add")([shortcut, h]), h


def small_resnet():
    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem")(inp)
    x, _ = _block(x, 4, "b1")
    x, _ = _block(x, 8, "b2", project=True)
    x, h = _block(x, 8, "b3")
    x = x + keras.layers.Conv2D(8, 1, name="b4_conv")(x)  # a `+` block
    side = keras.layers.Dense(3, name="side_head")(keras.layers.GlobalAveragePooling2D(name="side_pool")(h))
    out = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D(name="pool")(x))
    return keras.Model(inp, keras.layers.Add(name="merge")([out, side]))


@pytest.fixture(scope="module")
def images():
    return np.random.RandomState(0).rand(4, 8, 8, 3).astype("float32")


def _stochastic(model):
    return [layer for layer in model.layers if isinstance(layer, SR)]


def test_small_resnet_blocks_become_stochastic_residuals(images, capsys):
    model = small_resnet()
    names = [layer.name for layer in model.layers]
    new = kd.surgery.insert_drop_path(model, 0.5, skip_compute=True, buckets=2)
    assert capsys.readouterr().out.strip() == (
        "insert_drop_path: 2 DropPath on 2 residual Add (branch not isolated: 1 with side outputs, "
        "1 with inputs from outside the block), 2 StochasticResidual on 2 residual Add, "
        "1 StochasticResidual on 1 residual `+` (linear, rates 0.1 to 0.5)"
    )
    wrapped = _stochastic(new)
    plus = [layer for layer in wrapped if not layer.name.startswith("b")]
    assert [layer.name for layer in wrapped[:2]] == ["b1_add", "b2_add"] and len(plus) == 1
    # Depth order b1, b2, b3 (DropPath), b4 (+), merge (DropPath): linear factors.
    np.testing.assert_allclose([layer.rate for layer in wrapped], [0.1, 0.2, 0.4])
    assert new.get_layer("b3_add_drop_path").rate == pytest.approx(0.3)
    assert new.get_layer("merge_drop_path").rate == pytest.approx(0.5)
    assert all(layer.buckets == 2 and layer.skip_compute for layer in wrapped)
    # The branch: a functional copy with the original names and weights; the
    # projection shortcut stays outside and comes first in the pair.
    b2 = new.get_layer("b2_add")
    assert b2.branch.name == "b2_add_branch"
    assert [layer.name for layer in b2.branch.layers] == ["b2_add_branch_input", "b2_conv1", "b2_bn", "b2_relu",
                                                         "b2_conv2"]
    assert [t.name for t in b2.input] == [new.get_layer("b2_proj").output.name, new.get_layer("b1_add").output.name]
    assert new.get_layer("b1_add").input is new.get_layer("stem").output
    for name in ("b1_conv1", "b2_bn", "b2_conv2"):
        copy = new.get_layer(f"{name[:2]}_add").branch.get_layer(name)
        assert copy is not model.get_layer(name)
        for a, b in zip(copy.get_weights(), model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    outer = {layer.name for layer in new.layers}
    assert not outer & {"b1_conv1", "b1_bn", "b2_conv2", "b4_conv"} and "b2_proj" in outer
    assert [layer.name for layer in model.layers] == names  # the input model is unchanged
    # Inference: exactly the original; training at rate 0: the whole branch (batch norm
    # on batch statistics), the original's training output up to float rounding.
    np.testing.assert_array_equal(to_np(new(images, training=False)), to_np(model(images, training=False)))
    for layer in new.layers:
        if isinstance(layer, (SR, kd.layers.DropPath)):
            layer.rate = 0.0
    np.testing.assert_allclose(
        to_np(new(images, training=True)), to_np(model(images, training=True)), rtol=1e-5, atol=1e-5
    )


def test_small_resnet_save_load_and_schedules_in_step(images, tmp_path):
    model = small_resnet()
    new = kd.surgery.insert_drop_path(model, 0.5, skip_compute=True, buckets=2, verbose=False)
    path = str(tmp_path / "small.keras")
    new.save(path)
    loaded = keras.models.load_model(path)
    assert [layer.name for layer in _stochastic(loaded)] == [layer.name for layer in _stochastic(new)]
    assert loaded.get_layer("b2_add").branch.get_layer("b2_conv2") is not None
    np.testing.assert_array_equal(to_np(loaded(images, training=False)), to_np(model(images, training=False)))
    # Late stochastic depth with the linear rule reaches the StochasticResidual and
    # DropPath layers in model order inside the compiled step.
    both = (kd.layers.DropPath, SR)
    late = kd.callbacks.LateDropout(0.4, start_step=0, layers=both, depth_rule="linear")
    loaded.compile("sgd", "mse")
    y = np.zeros((4, 3), "float32")
    loaded.fit(images, y, batch_size=4, epochs=1, verbose=0, callbacks=[late])
    assert late.evaluation == "in_step"
    assert [layer.name for layer in late.targets] == [
        "b1_add", "b2_add", "b3_add_drop_path", _stochastic(loaded)[2].name, "merge_drop_path"
    ]
    np.testing.assert_allclose([layer.rate for layer in late.targets], [0.08, 0.16, 0.24, 0.32, 0.4], rtol=1e-6)
    ramp = kd.callbacks.DropoutScheduler(lambda step: 0.25, layers=SR)
    loaded.fit(images, y, batch_size=4, epochs=1, verbose=0, callbacks=[ramp])
    assert ramp.evaluation == "in_step"
    np.testing.assert_allclose([layer.rate for layer in _stochastic(loaded)], [0.25] * 3, rtol=1e-6)
    assert np.isfinite(to_np(loaded(images, training=False))).all()


def test_resnet50_sixteen_blocks(capsys):
    model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)
    new = kd.surgery.insert_drop_path(model, 0.1, skip_compute=True)
    assert capsys.readouterr().out.strip() == (
        "insert_drop_path: 16 StochasticResidual on 16 residual Add (linear, rates 0.00625 to 0.1)"
    )
    wrapped = _stochastic(new)
    adds = [f"conv{s}_block{b + 1}_add" for s, n in zip((2, 3, 4, 5), RESNET50_BLOCKS) for b in range(n)]
    assert [layer.name for layer in wrapped] == adds
    np.testing.assert_allclose([layer.rate for layer in wrapped], [0.1 * (i + 1) / 16 for i in range(16)], rtol=1e-6)
    for layer in wrapped:
        block = layer.name[: -len("_add")]
        inner = [f"{block}_{i}_{kind}" for i in (1, 2, 3) for kind in ("conv", "bn", "relu")][:-1]
        assert [sub.name for sub in layer.branch.layers[1:]] == inner
        projected = block.endswith("block1")  # the first block of a stage: a 2-input call
        assert isinstance(layer.input, list) == projected
        if projected:
            assert layer.input[0] is new.get_layer(f"{block}_0_bn").output
    x = np.random.RandomState(0).rand(2, 32, 32, 3).astype("float32")
    np.testing.assert_array_equal(to_np(new(x, training=False)), to_np(model(x, training=False)))


@pytest.mark.parametrize(
    "kwargs, name", [({"skip_compute": "yes"}, "skip_compute"), ({"skip_compute": True, "buckets": 0}, "buckets")]
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"argument `{name}`"):
        kd.surgery.insert_drop_path(small_resnet(), 0.1, **kwargs)


def test_nested_functional_models_count_every_block(capsys):
    """A nested functional model's blocks are wrapped too, and counted with the outer ones."""
    inner_in = keras.Input((6,))
    inner_out = keras.layers.Add(name="inner_add")([inner_in, keras.layers.Dense(6, name="g")(inner_in)])
    inner = keras.Model(inner_in, inner_out, name="inner")
    inp = keras.Input((6,))
    x = inner(inp)
    x = keras.layers.Add(name="outer_add")([x, keras.layers.Dense(6, name="h")(x)])
    model = keras.Model(inp, x)
    new = kd.surgery.insert_drop_path(model, 0.2, skip_compute=True)
    assert capsys.readouterr().out.strip() == (
        "insert_drop_path: 2 StochasticResidual on 2 residual Add (linear, rates 0.1 to 0.2)"
    )
    assert [layer.name for layer in _stochastic(new.get_layer("inner"))] == ["inner_add"]
    assert [layer.name for layer in _stochastic(new)] == ["outer_add"]
    x = np.random.RandomState(2).rand(3, 6).astype("float32")
    np.testing.assert_allclose(to_np(new(x)), to_np(model(x)), rtol=1e-6, atol=1e-6)
