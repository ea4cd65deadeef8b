"""swap_dropout on layers held by subclassed layers; what surgery refuses, and why.

Small subclassed layers stand in for keras-hub blocks (tests/test_surgery_hub.py runs
the real ones): `Block` holds a Dropout attribute, a list of two Dropouts and an inner
layer holding a SpatialDropout1D, so 4 layers to convert, 3 of them with a nonzero rate.
"""

import keras
import numpy as np
import pytest

import keras_dropouts as kd


def to_np(x):
    return keras.ops.convert_to_numpy(x)


@keras.saving.register_keras_serializable(package="test_surgery")
class Inner(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.spatial = keras.layers.SpatialDropout1D(0.2, seed=11, name="spatial")

    def build(self, input_shape):
        self.spatial.build(input_shape)

    def call(self, x, training=False):
        return self.spatial(x, training=training)


@keras.saving.register_keras_serializable(package="test_surgery")
class Block(keras.layers.Layer):
    """`x + f(x)` inside `call`: a residual no graph shows."""

    def __init__(self, width, rate, **kwargs):
        super().__init__(**kwargs)
        self.width, self.rate = width, rate
        self.dense = keras.layers.Dense(width, name="dense")
        self.drop = keras.layers.Dropout(rate, seed=3, name="drop")
        self.extra = [keras.layers.Dropout(rate, name="extra_a"), keras.layers.Dropout(0.0, name="extra_b")]
        self.inner = Inner(name="inner")

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.inner.build(input_shape)

    def call(self, x, training=False):
        y = self.drop(self.dense(x), training=training)
        for layer in self.extra:
            y = layer(y, training=training)
        return x + self.inner(y, training=training)

    def get_config(self):
        return {**super().get_config(), "width": self.width, "rate": self.rate}


def block_model():
    inp = keras.Input((5, 4))
    x = Block(4, 0.3, name="block_0")(inp)
    x = Block(4, 0.1, name="block_1")(x)
    return keras.Model(inp, keras.layers.Dense(2, name="head")(x))


def held(block):
    return [block.drop, *block.extra, block.inner.spatial]


def test_swap_dropout_converts_attributes_of_subclassed_layers(tmp_path, capsys):
    model = block_model()
    x = np.random.RandomState(0).rand(4, 5, 4).astype("float32")
    new = kd.surgery.swap_dropout(model)
    assert capsys.readouterr().out.strip() == (
        "swap_dropout: 6 Dropout -> ScheduledDropout, 2 SpatialDropout1D -> ScheduledDropout, "
        "8 of them inside subclassed layers"
    )
    assert isinstance(new, kd.surgery.SurgeryModel)
    for name, rate in (("block_0", 0.3), ("block_1", 0.1)):
        old, block = model.get_layer(name), new.get_layer(name)
        assert block is not old
        converted = held(block)
        assert all(type(layer) is kd.layers.ScheduledDropout for layer in converted)
        np.testing.assert_allclose([layer.rate for layer in converted], [rate, rate, 0.0, 0.2])
        assert [layer.name for layer in converted] == ["drop", "extra_a", "extra_b", "spatial"]
        assert converted[0].seed == 3 and converted[3].noise_shape == (None, 1, None)
        # The owner tracks the new layers (and no longer the stock ones).
        tracked = [type(layer) for layer in block._layers]
        assert keras.layers.Dropout not in tracked and keras.layers.SpatialDropout1D not in tracked
        # The input model's layers are not mutated.
        assert all(type(layer) in (keras.layers.Dropout, keras.layers.SpatialDropout1D) for layer in held(old))
    np.testing.assert_array_equal(to_np(new(x, training=False)), to_np(model(x, training=False)))

    # .keras round trip: the swapped layers come back inside the blocks.
    path = str(tmp_path / "blocks.keras")
    new.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, kd.surgery.SurgeryModel)
    assert all(type(layer) is kd.layers.ScheduledDropout for layer in held(loaded.get_layer("block_1")))
    np.testing.assert_array_equal(to_np(loaded(x, training=False)), to_np(model(x, training=False)))

    # A schedule reaches all 8 inside the compiled step (early dropout at 0.25 from
    # step 0 switches the rate-0 one on too).
    targets = kd.callbacks.select_layers(loaded)
    assert len(targets) == 8
    cb = kd.callbacks.EarlyDropout(0.25, cutoff_step=5)
    loaded.compile("sgd", "mse")
    loaded.fit(x, np.ones((4, 5, 2)), batch_size=4, epochs=1, verbose=0, callbacks=[cb])
    assert cb.evaluation == "in_step"
    np.testing.assert_allclose([layer.rate for layer in targets], [0.25] * 8, rtol=1e-6)


def test_insert_drop_path_names_subclassed_blocks():
    model = block_model()
    with pytest.raises(ValueError, match=r"no residual addition.*'block_0', 'block_1'.*DropPath on the branch"):
        kd.surgery.insert_drop_path(model, 0.1)


@keras.saving.register_keras_serializable(package="test_surgery")
class OwnDropPathBlock(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(4)
        self.drop_path = kd.layers.DropPath(0.1, name="own_drop_path")

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, x, training=False):
        return x + self.drop_path(self.dense(x), training=training)


def test_insert_drop_path_points_to_swap_dropout_for_own_drop_paths():
    inp = keras.Input((4,))
    model = keras.Model(inp, OwnDropPathBlock(name="own_block")(inp))
    with pytest.raises(ValueError, match=r"'own_block'.*own drop-path layers \('own_drop_path'\).*swap_dropout"):
        kd.surgery.insert_drop_path(model, 0.1)


def test_bad_arguments():
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Add()([inp, keras.layers.Dense(4)(inp)]))
    for rate in (-0.1, 1.5, "0.1"):
        with pytest.raises(ValueError, match=r"argument `rate`.*Received: rate="):
            kd.surgery.insert_drop_path(model, rate)
        with pytest.raises(ValueError, match=r"argument `rate`.*Received: rate="):
            kd.surgery.insert_drop_block(model, rate, 3, after=["dense"])
    with pytest.raises(ValueError, match=r"argument `depth_rule`.*'constant', 'linear', 'stagewise'"):
        kd.surgery.insert_drop_path(model, 0.1, depth_rule="exponential")
    with pytest.raises(ValueError, match="no residual addition"):
        kd.surgery.insert_drop_path(keras.Model(inp, keras.layers.Dense(2)(inp)), 0.1)
    with pytest.raises(ValueError, match="is Sequential"):
        kd.surgery.insert_drop_path(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), 0.1)
    with pytest.raises(TypeError, match="argument `model`"):
        kd.surgery.swap_dropout(keras.layers.Dense(2))
    with pytest.raises(ValueError, match=r"argument `after`.*not found: \['nope'\]"):
        kd.surgery.insert_drop_block(model, 0.1, 3, after=["nope"])
    with pytest.raises(ValueError, match=r"argument `after`.*at least one layer"):
        kd.surgery.insert_drop_block(model, 0.1, 3, after=lambda layer: False)
    with pytest.raises(ValueError, match=r"argument `after`"):
        kd.surgery.insert_drop_block(model, 0.1, 3, after=[])
    with pytest.raises(ValueError, match="argument `block_size`"):
        kd.surgery.insert_drop_block(model, 0.1, 0, after=["dense"])
    with pytest.raises(ValueError, match=r"output of layer 'dense' has rank 2.*rank 3, 4 or 5"):
        kd.surgery.insert_drop_block(model, 0.1, 3, after=["dense"], verbose=False)

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(4)

        def call(self, x):
            return x + self.dense(x)

    for fn in (
        kd.surgery.swap_dropout,
        lambda m: kd.surgery.insert_drop_path(m, 0.1),
        lambda m: kd.surgery.insert_drop_block(m, 0.1, 3, after=["dense"]),
    ):
        with pytest.raises(ValueError, match="subclassed"):
            fn(Sub())


def test_insert_drop_block_1d_sequential_and_nested(capsys):
    seq = keras.Sequential(
        [keras.Input((8, 3)), keras.layers.Conv1D(4, 3, padding="same", name="c1"), keras.layers.Dense(2, name="d")]
    )
    new = kd.surgery.insert_drop_block(seq, 0.2, 3, after=["c1"])
    assert capsys.readouterr().out.strip() == "insert_drop_block: 1 DropBlock1D after"
    assert isinstance(new, keras.Sequential)
    assert [type(layer).__name__ for layer in new.layers] == ["Conv1D", "DropBlock1D", "Dense"]
    x = np.random.RandomState(4).rand(2, 8, 3).astype("float32")
    np.testing.assert_array_equal(to_np(new(x, training=False)), to_np(seq(x, training=False)))
    inp = keras.Input((8, 3))
    outer = keras.Model(inp, seq(inp))
    new = kd.surgery.insert_drop_block(outer, 0.2, 3, after=["c1"], verbose=False)
    assert new.layers[1] is not seq and new.layers[1].layers[1].name == "c1_drop_block"
    np.testing.assert_array_equal(to_np(new(x, training=False)), to_np(outer(x, training=False)))


def test_surgery_keeps_dtype_policies():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        inp = keras.Input((8,))
        x = keras.layers.Dropout(0.2, name="drop")(inp)
        out = keras.layers.Add(name="res_add")([x, keras.layers.Dense(8, name="f")(x)])
        out = out + keras.layers.Dense(8, name="g")(out)
        model = keras.Model(inp, out)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    swapped = kd.surgery.swap_dropout(model, verbose=False)
    inserted = kd.surgery.insert_drop_path(model, 0.1, verbose=False)
    assert swapped.get_layer("drop").dtype_policy.name == "mixed_bfloat16"
    assert [layer.dtype_policy.name for layer in inserted.layers if isinstance(layer, kd.layers.DropPath)] == [
        "mixed_bfloat16"
    ] * 2
    x = np.random.RandomState(2).rand(2, 8).astype("float32")
    for new in (swapped, inserted):
        np.testing.assert_array_equal(to_np(new(x, training=False)), to_np(model(x, training=False)))
