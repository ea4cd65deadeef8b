"""A keras-hub ViT: early dropout on its stock dropout, late stochastic depth (DropPath).

Liu et al. 2023 ("Dropout Reduces Underfitting"), scaled down:
- early dropout: the ViT's own dropout layers at rate 0.1, decayed linearly to 0 at the
  cutoff (ViT-T: cutoff at epoch 50 of 300, i.e. the first 1/6 of training);
- late stochastic depth: no DropPath until the cutoff, then rate 0.4 (ViT-B setting),
  spread over the blocks as `linspace(0, rate, depth)` (`depth_rule=True`).

- The backbone is `keras_hub.models.ViTBackbone` built from a tiny config (no preset,
  nothing downloaded), with `dropout_rate=0.1`. Its stock `keras.layers.Dropout`
  layers (held by its encoder blocks) read their rate at trace time, so
  `keras_dropouts.surgery.swap_dropout` returns a copy with `ScheduledDropout` in their
  place (same rate, seed, name): the linear decay then reaches the compiled step
  without retracing. (`--stock` instead keeps the stock layers and lets
  `EarlyDropout` switch them by retracing, mode "constant".)
- Stochastic depth is added around each of the backbone's own encoder blocks
  (shared weights): `x + DropPath(block(x) - x)`, i.e. the whole block is skipped
  for a sample, as in Huang et al. 2016.

Data:
- `--data-dir DIR`: the CIFAR-10 python folder you downloaded (`cifar-10-batches-py`).
- Without it: scikit-learn's digits, upsampled from 8x8 to 16x16 (bilinear).

    python examples/vit_early_late.py                        # digits, ~1 min
    python examples/vit_early_late.py --data-dir ~/data/cifar-10-batches-py --epochs 60
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_hub  # noqa: E402

import keras_dropouts as kd  # noqa: E402
from image_data import load_cifar10, load_digits_upsampled  # noqa: E402


def build(image_shape, patch_size, args):
    backbone = keras_hub.models.ViTBackbone(
        image_shape=image_shape,
        patch_size=patch_size,
        num_layers=args.depth,
        num_heads=2,
        hidden_dim=args.hidden,
        mlp_dim=2 * args.hidden,
        dropout_rate=args.early_rate,
    )
    if not args.stock:
        # A copy of the backbone with ScheduledDropout inside its blocks (returned
        # inside a SurgeryModel, which keeps the swaps in .keras files).
        backbone = kd.surgery.swap_dropout(backbone).get_layer(backbone.name)
    encoder = backbone.get_layer("vit_encoder")
    embedding_dropout = encoder.dropout

    # The backbone's graph, re-wired with block-level stochastic depth (shared weights).
    inputs = keras.Input(image_shape)
    x = backbone.get_layer("vit_patching_and_embedding")(inputs)
    x = embedding_dropout(x)
    for i, block in enumerate(encoder.encoder_layers):
        branch = keras.layers.Subtract()([block(x), x])
        # Rate 0 until LateDropout switches it on.
        x = keras.layers.Add()([x, kd.layers.DropPath(0.0, name=f"drop_path_{i}")(branch)])
    x = encoder.layer_norm(x)
    outputs = keras.layers.Dense(10)(x[:, 0])  # class token
    model = keras.Model(inputs, outputs, name="vit_early_late")
    model.compile(
        optimizer=keras.optimizers.AdamW(2e-3, weight_decay=0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", help="CIFAR-10 python folder (cifar-10-batches-py)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--steps", type=int, default=None, help="steps per epoch (default: all)")
    p.add_argument("--limit", type=int, default=None, help="use only this many training images")
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--early-rate", type=float, default=0.1)
    p.add_argument("--late-rate", type=float, default=0.4)
    p.add_argument("--cutoff-epoch", type=float, default=None,
                   help="early cutoff / late start (default: epochs / 6)")
    p.add_argument("--stock", action="store_true",
                   help="keep stock Dropout layers (EarlyDropout retraces, mode constant)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    keras.utils.set_random_seed(args.seed)

    if args.data_dir:
        x_train, y_train, x_test, y_test = load_cifar10(args.data_dir, args.limit)
        patch = 4
    else:
        x_train, y_train, x_test, y_test = load_digits_upsampled(2, args.limit)
        patch = 4
    model = build(x_train.shape[1:], patch, args)
    cutoff = args.cutoff_epoch if args.cutoff_epoch is not None else args.epochs / 6
    if args.stock:  # the backbone's stock Dropout layers (not MHA's rate-0 attention dropout)
        def early_layers(layer):
            return type(layer) is keras.layers.Dropout and layer.rate > 0
    else:  # the converted ones, not MultiHeadAttention's (rate 0, converted too)
        def early_layers(layer):
            return isinstance(layer, kd.layers.ScheduledDropout) and layer.rate > 0
    callbacks = [
        kd.callbacks.EarlyDropout(
            args.early_rate, cutoff_epoch=cutoff, mode="constant" if args.stock else "linear",
            layers=early_layers, log_name="early_rate",
        ),
        kd.callbacks.LateDropout(
            args.late_rate, start_epoch=cutoff, layers=kd.layers.DropPath, depth_rule=True,
            log_name="late_rate",
        ),
    ]
    model.fit(
        x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
        steps_per_epoch=args.steps, validation_data=(x_test, y_test), callbacks=callbacks,
        verbose=2,
    )
    _, acc = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    early, late = callbacks
    print("early dropout rates now:", [round(layer.rate, 4) for layer in early.targets])
    print("late DropPath rates now:", [round(layer.rate, 4) for layer in late.targets])
    print(f"backend={keras.backend.backend()} test accuracy={acc:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
