"""Model surgery recipes: regularise keras-hub models you did not write.

Three recipes, each on a keras-hub backbone built from a tiny config (no preset,
nothing downloaded) and trained for a few steps on random data, to show the calls:

1. ResNet: DropBlock after the blocks of the last two stages and on their skip
   connections (Ghiasi et al. 2018), its rate ramped from 0 over training, plus late
   stochastic depth (Liu et al. 2023): `DropPath` on every residual branch, off until
   the cutoff, then `rate * (i + 1) / n` for block i of n (the stochastic depth paper's
   linear rule).
2. ViT: early dropout (Liu et al. 2023) on the model's own dropout layers: each at its
   configured rate, decayed linearly to 0 at the cutoff.
3. BERT: R-Drop (Liang et al. 2021) with the model's own dropout layers, scheduled
   (a linear ramp to 0.1 over training) inside the compiled step.

Every surgery returns a new model and leaves the backbone unchanged; only public names
of `keras_dropouts` are used.

    python examples/surgery_recipes.py               # all three, under a minute on CPU
    python examples/surgery_recipes.py --recipe vit  # one of resnet, vit, bert
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402

import keras_dropouts as kd  # noqa: E402


def classifier(features, pool, num_classes=3):
    """`features` (a model) -> pooled -> logits, as a functional model."""
    inputs = keras.tree.map_structure(
        lambda t: keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name), features.input
    )
    x = pool(features(inputs))
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def compile_and_fit(model, x, y, callbacks, args):
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(
        x, y, batch_size=args.batch_size, epochs=args.epochs, steps_per_epoch=args.steps,
        callbacks=callbacks, verbose=0,
    )


def resnet(args, rng):
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 16, 16],
        stackwise_num_blocks=[1, 2, 2], stackwise_num_strides=[1, 2, 2], block_type="basic_block",
        image_shape=(32, 32, 3),
    )

    def last_two_stages(layer):
        return layer.name.startswith(("stack1_", "stack2_")) and layer.name.endswith("_out")

    features = kd.surgery.insert_drop_block(backbone, 0.0, 3, after=last_two_stages)
    features = kd.surgery.insert_drop_path(features, 0.2, depth_rule="linear")
    model = classifier(features, keras.layers.GlobalAveragePooling2D())
    callbacks = [
        kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.1), layers=kd.layers.DropBlock2D),
        kd.callbacks.LateDropout(0.2, start_epoch=args.epochs // 2, layers=kd.layers.DropPath, depth_rule="linear"),
    ]
    x = rng.rand(args.examples, 32, 32, 3).astype("float32")
    compile_and_fit(model, x, rng.randint(0, 3, args.examples), callbacks, args)
    print("resnet DropBlock2D rates:", [round(layer.rate, 4) for layer in callbacks[0].targets])
    print("resnet DropPath rates:", [round(layer.rate, 4) for layer in callbacks[1].targets])


def vit(args, rng):
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(16, 16, 3), patch_size=4, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
        dropout_rate=0.1,
    )
    features = kd.surgery.swap_dropout(backbone)
    model = classifier(features, keras.layers.Lambda(lambda t: t[:, 0]))  # the class token

    def own_dropout(layer):  # not MultiHeadAttention's attention dropout (rate 0 here)
        return isinstance(layer, kd.layers.ScheduledDropout) and layer.rate > 0

    early = kd.callbacks.EarlyDropout(None, cutoff_epoch=args.epochs // 2, mode="linear", layers=own_dropout)
    x = rng.rand(args.examples, 16, 16, 3).astype("float32")
    compile_and_fit(model, x, rng.randint(0, 3, args.examples), [early], args)
    print("vit early dropout rates:", [round(layer.rate, 4) for layer in early.targets])


def bert(args, rng):
    seq_len = 16
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
        max_sequence_length=seq_len, dropout=0.1,
    )
    features = kd.surgery.swap_dropout(backbone)
    model = kd.models.RDropModel.from_model(
        classifier(features, keras.layers.Lambda(lambda outputs: outputs["pooled_output"])), alpha=1.0
    )
    ramp = kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.1))
    ids = rng.randint(1, 100, (args.examples, seq_len)).astype("int32")
    x = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids)}
    compile_and_fit(model, x, rng.randint(0, 3, args.examples), [ramp], args)
    print("bert scheduled dropout rates:", [round(layer.rate, 4) for layer in ramp.targets])


RECIPES = {"resnet": resnet, "vit": vit, "bert": bert}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--recipe", choices=[*RECIPES, "all"], default="all")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps", type=int, default=2, help="steps per epoch")
    p.add_argument("--examples", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.RandomState(args.seed)
    for name, recipe in RECIPES.items():
        if args.recipe in (name, "all"):
            recipe(args, rng)
    print(f"backend={keras.backend.backend()} recipes done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
