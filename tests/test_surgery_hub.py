"""keras_dropouts.surgery on keras-hub backbones built from tiny configs (no download).

The expected counts come from the architectures (keras-hub 0.32), not from the
surgery's walker:
- `ViTBackbone(num_layers=L)`: per encoder block a `Dropout` after attention, one in
  its MLP (called twice) and `MultiHeadAttention`'s attention dropout, plus the
  encoder's dropout on the embeddings: 3 L + 1, all inside subclassed layers.
- `BertBackbone(num_layers=L)`: the embeddings' `Dropout` (a graph layer), and per
  `TransformerEncoder` its attention-output and feed-forward dropouts and the
  attention dropout: 3 L + 1, 3 L of them inside subclassed layers.
- `MiTBackbone(layerwise_depths=d)`: per block one keras-hub `DropPath` (rates
  `linspace(0, max_drop_path_rate, sum(d))`) and two `Dropout(0.1)` in its attention.
- `ResNetBackbone(stackwise_num_blocks=b)`: one residual `Add` per block, sum(b).
"""

import warnings

import keras
import numpy as np
import pytest

import keras_dropouts as kd

pytestmark = pytest.mark.requires("keras_hub")


def to_np(x):
    return keras.ops.convert_to_numpy(x)


def scheduled(model):
    return [layer for layer in kd.callbacks.select_layers(model) if isinstance(layer, kd.layers.ScheduledDropout)]


def test_vit_backbone_swap_dropout(tmp_path, capsys):
    import keras_hub

    layers_n = 2
    vit = keras_hub.models.ViTBackbone(
        image_shape=(8, 8, 3), patch_size=4, num_layers=layers_n, num_heads=2, hidden_dim=8, mlp_dim=16,
        dropout_rate=0.1,
    )
    x = np.random.RandomState(0).rand(2, 8, 8, 3).astype("float32")
    new = kd.surgery.swap_dropout(vit)
    n = 3 * layers_n + 1
    assert capsys.readouterr().out.strip() == (
        f"swap_dropout: {n} Dropout -> ScheduledDropout, {n} of them inside subclassed layers"
    )
    converted = scheduled(new)
    assert len(converted) == n
    # Attention dropout (MultiHeadAttention's, rate 0 in this config) and the others 0.1.
    assert sorted(round(layer.rate, 6) for layer in converted) == [0.0] * layers_n + [0.1] * (n - layers_n)
    # The input backbone's blocks still hold stock Dropout layers.
    block = vit.get_layer("vit_encoder").encoder_layers[0]
    assert type(block.dropout) is keras.layers.Dropout and type(block.mlp.dropout) is keras.layers.Dropout
    np.testing.assert_array_equal(to_np(new(x, training=False)), to_np(vit(x, training=False)))
    with pytest.raises(ValueError, match=r"cannot be rewired: .*'vit_encoder'"):
        kd.surgery.insert_drop_path(vit, 0.1)

    path = str(tmp_path / "vit.keras")
    new.save(path)
    loaded = keras.models.load_model(path)
    assert len(scheduled(loaded)) == n
    np.testing.assert_array_equal(to_np(loaded(x, training=False)), to_np(vit(x, training=False)))
    # Early dropout at 0.2 on the model's own dropout, inside the compiled step.
    early = kd.callbacks.EarlyDropout(0.2, cutoff_step=10, layers=kd.layers.ScheduledDropout)
    loaded.compile("sgd", "mse")
    loaded.fit(x, np.zeros((2, 5, 8), "float32"), batch_size=2, epochs=1, verbose=0, callbacks=[early])
    assert early.evaluation == "in_step"
    np.testing.assert_allclose([layer.rate for layer in scheduled(loaded)], [0.2] * n, rtol=1e-6)


def test_bert_backbone_swap_dropout(tmp_path, capsys):
    import keras_hub

    layers_n = 2
    bert = keras_hub.models.BertBackbone(
        vocabulary_size=50, num_layers=layers_n, num_heads=2, hidden_dim=8, intermediate_dim=16,
        max_sequence_length=8, dropout=0.1,
    )
    new = kd.surgery.swap_dropout(bert)
    assert capsys.readouterr().out.strip() == (
        f"swap_dropout: {3 * layers_n + 1} Dropout -> ScheduledDropout, {3 * layers_n} of them inside "
        "subclassed layers"
    )
    assert isinstance(new.get_layer("embeddings_dropout"), kd.layers.ScheduledDropout)
    assert len(scheduled(new)) == 3 * layers_n + 1
    ids = np.random.RandomState(1).randint(0, 50, (2, 8)).astype("int32")
    x = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)}
    path = str(tmp_path / "bert.keras")
    new.save(path)
    loaded = keras.models.load_model(path)
    assert len(scheduled(loaded)) == 3 * layers_n + 1
    for model in (new, loaded):
        out, ref = model(x, training=False), bert(x, training=False)
        for key in ("sequence_output", "pooled_output"):
            np.testing.assert_array_equal(to_np(out[key]), to_np(ref[key]))
    with pytest.raises(ValueError, match=r"cannot be rewired: .*'transformer_layer_0'"):
        kd.surgery.insert_drop_path(bert, 0.1)
    # Late dropout at 0.3 on every converted layer, inside one compiled step.
    late = kd.callbacks.LateDropout(0.3, start_step=0, layers=kd.layers.ScheduledDropout)
    loaded.compile("sgd", {"sequence_output": "mse", "pooled_output": None})
    y = {"sequence_output": np.zeros((2, 8, 8), "float32"), "pooled_output": np.zeros((2, 8), "float32")}
    loaded.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[late])
    assert late.evaluation == "in_step" and len(late.targets) == 3 * layers_n + 1
    np.testing.assert_allclose([layer.rate for layer in scheduled(loaded)], [0.3] * (3 * layers_n + 1), rtol=1e-6)


def test_mit_backbone_own_drop_paths(tmp_path, capsys):
    import keras_hub

    depths = [1, 1]
    mit = keras_hub.models.MiTBackbone(
        layerwise_depths=depths, num_layers=2, layerwise_num_heads=[1, 2], layerwise_sr_ratios=[2, 1],
        max_drop_path_rate=0.1, layerwise_patch_sizes=[3, 3], layerwise_strides=[2, 2], image_shape=(16, 16, 3),
        hidden_dims=[4, 8],
    )
    new = kd.surgery.swap_dropout(mit)
    blocks = sum(depths)
    assert capsys.readouterr().out.strip() == (
        f"swap_dropout: {2 * blocks} Dropout -> ScheduledDropout, {blocks} keras_hub.DropPath -> DropPath, "
        f"{3 * blocks} of them inside subclassed layers"
    )
    paths = [layer for layer in kd.callbacks.select_layers(new) if isinstance(layer, kd.layers.DropPath)]
    np.testing.assert_allclose([layer.rate for layer in paths], np.linspace(0, 0.1, blocks), atol=1e-7)
    x = np.random.RandomState(2).rand(2, 16, 16, 3).astype("float32")
    np.testing.assert_array_equal(to_np(new(x, training=False)), to_np(mit(x, training=False)))
    with pytest.raises(ValueError, match=r"'hierarchical_encoder_0_0'.*own drop-path layers.*swap_dropout"):
        kd.surgery.insert_drop_path(mit, 0.1)

    path = str(tmp_path / "mit.keras")
    new.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(to_np(loaded(x, training=False)), to_np(mit(x, training=False)))
    # Late stochastic depth with the linspace rule on the converted drop paths, inside
    # one compiled step.
    late = kd.callbacks.LateDropout(0.2, start_step=0, layers=kd.layers.DropPath, depth_rule="linspace")
    loaded.compile("sgd", "mse")
    loaded.fit(x, np.zeros((2,) + tuple(loaded.output.shape[1:]), "float32"), batch_size=2, epochs=1, verbose=0,
               callbacks=[late])
    assert late.evaluation == "in_step" and len(late.targets) == blocks
    np.testing.assert_allclose([layer.rate for layer in late.targets], np.linspace(0, 0.2, blocks), atol=1e-7)


def test_resnet_backbone_drop_path_and_drop_block(tmp_path, capsys):
    import keras_hub

    blocks = [2, 2]
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[8], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 8],
        stackwise_num_blocks=blocks, stackwise_num_strides=[1, 2], block_type="bottleneck_block",
        image_shape=(16, 16, 3),
    )
    new = kd.surgery.insert_drop_path(backbone, 0.2, depth_rule="stagewise")
    last_stage = ["stack1_block0_out", "stack1_block1_out"]
    new = kd.surgery.insert_drop_block(new, 0.1, 3, after=last_stage)
    assert capsys.readouterr().out.splitlines() == [
        "insert_drop_path: 4 DropPath on 4 residual Add (stagewise, rates 0.1 to 0.2)",
        "insert_drop_block: 2 DropBlock2D after, 2 DropBlock2D on skip connections",
    ]
    paths = [layer for layer in new.layers if isinstance(layer, kd.layers.DropPath)]
    assert len(paths) == sum(blocks)
    np.testing.assert_allclose([layer.rate for layer in paths], [0.1, 0.1, 0.2, 0.2])
    x = np.random.RandomState(3).rand(2, 16, 16, 3).astype("float32")
    path = str(tmp_path / "resnet.keras")
    new.save(path)
    loaded = keras.models.load_model(path)
    assert len([layer for layer in loaded.layers if isinstance(layer, kd.layers.DropBlock2D)]) == 4
    for model in (new, loaded):
        np.testing.assert_array_equal(to_np(model(x, training=False)), to_np(backbone(x, training=False)))
    # Two schedules reach every inserted layer inside one compiled step: late stochastic
    # depth with the same stagewise rule, and DropBlock at 0.05.
    late = kd.callbacks.LateDropout(0.4, start_step=0, layers=kd.layers.DropPath, depth_rule="stagewise")
    ramp = kd.callbacks.DropoutScheduler(lambda step: 0.05, layers=kd.layers.DropBlock2D)
    loaded.compile("sgd", "mse")
    loaded.fit(x, np.zeros((2, 2, 2, 32), "float32"), batch_size=2, epochs=1, verbose=0, callbacks=[late, ramp])
    assert late.evaluation == ramp.evaluation == "in_step"
    np.testing.assert_allclose([layer.rate for layer in late.targets], [0.2, 0.2, 0.4, 0.4], rtol=1e-6)
    assert len(ramp.targets) == 4
    np.testing.assert_allclose([layer.rate for layer in ramp.targets], [0.05] * 4, rtol=1e-6)


def test_swap_dropout_keras_hub_drop_path_layers_in_a_graph():
    from keras_hub.src.models.dinov2.dinov2_layers import DINOV2DropPath
    from keras_hub.src.models.swin_transformer.swin_transformer_layers import DropPath as SwinDropPath

    inp = keras.Input((4, 8))
    x = SwinDropPath(0.2, seed=5, name="swin_dp")(inp)
    x = DINOV2DropPath(0.1, name="dino_dp")(x)
    model = keras.Model(inp, x)
    for m in (model, keras.Model(inp, DINOV2DropPath(0.1, name="dino_only")(inp))):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            new = kd.surgery.swap_dropout(m, verbose=False)
        dino = [layer.name for layer in m.layers if isinstance(layer, DINOV2DropPath)][0]
        assert isinstance(new.get_layer(dino), DINOV2DropPath)  # different semantics: kept
        assert any(dino in str(w.message) and "not a per-sample drop" in str(w.message) for w in caught)
    swin = kd.surgery.swap_dropout(model, verbose=False).get_layer("swin_dp")
    assert isinstance(swin, kd.layers.DropPath) and swin.rate == pytest.approx(0.2) and swin.seed == 5
