"""A keras-hub ResNet with DropBlock on its last two stages (Ghiasi et al. 2018).

The paper's placement, scaled down: DropBlock after the residual blocks of the last
two stages ("groups 3 and 4"), with the earlier stage at a quarter of the rate (as in
the authors' reference implementation, keep_prob `1 - (1 - keep_prob) / 4` on group 3),
and the rate ramped linearly from 0 to its target over all of training.

- The backbone is `keras_hub.models.ResNetBackbone` built from a tiny config (no preset,
  nothing downloaded). `keras_dropouts.surgery.insert_drop_block` returns a copy with a
  `DropBlock2D` after every `stack{2,3}_block*_out` layer and on the skip connection of
  each of those blocks, as in the paper.
- Two `DropoutScheduler(schedules.LinearRamp(r))` callbacks ramp stage 3 to `rate/4`
  and stage 4 to `rate`.

Data:
- `--data-dir DIR`: the CIFAR-10 python folder you downloaded (`cifar-10-batches-py`,
  with `data_batch_1..5` and `test_batch`).
- Without it: scikit-learn's digits, upsampled from 8x8 to 32x32 (bilinear).

    python examples/resnet_dropblock.py                          # digits, ~1 min
    python examples/resnet_dropblock.py --data-dir ~/data/cifar-10-batches-py --epochs 30
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_hub  # noqa: E402

import keras_dropouts as kd  # noqa: E402
from image_data import load_cifar10, load_digits_upsampled  # noqa: E402


def build(image_shape, num_classes, block_size):
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 32, 64, 64],
        stackwise_num_blocks=[1, 1, 2, 1],
        stackwise_num_strides=[1, 1, 2, 1],
        block_type="basic_block",
        image_shape=image_shape,
    )
    last_two = ("stack2_", "stack3_")  # stages 3 and 4 of 4 ("groups 3 and 4")

    def block_outputs(layer):
        return layer.name.startswith(last_two) and layer.name.endswith("_out")

    # Rate 0 at build time; the ramps below set it inside every step.
    features = kd.surgery.insert_drop_block(backbone, 0.0, block_size, after=block_outputs)
    inputs = keras.Input(image_shape)
    x = keras.layers.GlobalAveragePooling2D()(features(inputs))
    outputs = keras.layers.Dense(num_classes)(x)
    model = keras.Model(inputs, outputs, name="resnet_dropblock")
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
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
    p.add_argument("--rate", type=float, default=0.1, help="DropBlock rate of the last stage")
    p.add_argument("--block-size", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    keras.utils.set_random_seed(args.seed)

    if args.data_dir:
        x_train, y_train, x_test, y_test = load_cifar10(args.data_dir, args.limit, standardize=True)
    else:
        x_train, y_train, x_test, y_test = load_digits_upsampled(4, args.limit)
    model = build(x_train.shape[1:], 10, args.block_size)

    def stage(prefix):
        return lambda layer: layer.name.startswith(prefix)

    ramps = [
        kd.callbacks.DropoutScheduler(
            kd.schedules.LinearRamp(args.rate / 4), layers=stage("stack2_"), log_name="rate_stage3"
        ),
        kd.callbacks.DropoutScheduler(
            kd.schedules.LinearRamp(args.rate), layers=stage("stack3_"), log_name="rate_stage4"
        ),
    ]
    model.fit(
        x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
        steps_per_epoch=args.steps, validation_data=(x_test, y_test), callbacks=ramps, verbose=2,
    )
    _, acc = model.evaluate(x_test, y_test, batch_size=256, verbose=0)
    for cb in ramps:
        rates = ", ".join(f"{layer.name}={layer.rate:.4f}" for layer in cb.targets)
        print(f"{cb.log_name}: {rates}")
    print(f"backend={keras.backend.backend()} test accuracy={acc:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
