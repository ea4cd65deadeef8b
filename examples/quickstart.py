"""Quickstart: the three feature groups of keras-dropouts in one Sequential model.

1. layers     DropBlock2D on conv feature maps, ScheduledDropout before the head
2. models     RDropModel.from_model: two dropout passes per sample must agree (R-Drop)
3. callbacks  DropoutScheduler + schedules.LinearRamp: DropBlock's 0 -> rate ramp;
              EarlyDropout: dropout only at the start of training (Liu et al. 2023)

Runs offline on scikit-learn's digits (8x8 images upsampled to 16x16).

    python examples/quickstart.py                # 5 epochs, a few seconds
    KERAS_BACKEND=jax python examples/quickstart.py --epochs 1
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from scipy.ndimage import zoom  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import keras_dropouts as kd  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    keras.utils.set_random_seed(args.seed)

    digits = load_digits()
    x = zoom(digits.images.astype("float32") / 16.0, (1, 2, 2), order=1)[..., None]
    y = digits.target
    x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]

    # 1. Layers: the package layers are drop-in Keras layers.
    base = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            kd.layers.DropBlock2D(rate=0.0, block_size=3, name="dropblock"),  # ramped below
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            kd.layers.ScheduledDropout(0.2, name="head_dropout"),  # scheduled below
            keras.layers.Dense(10),
        ]
    )

    # 2. Models: R-Drop around any built model.
    model = kd.models.RDropModel.from_model(base, alpha=1.0)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )

    # 3. Callbacks: rates are computed inside the compiled train step, at every step.
    callbacks = [
        kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.1), layers="dropblock"),
        kd.callbacks.EarlyDropout(0.2, cutoff_epoch=max(1, args.epochs // 2), mode="linear",
                                  layers="head_dropout"),
    ]
    history = model.fit(x_train, y_train, batch_size=64, epochs=args.epochs, verbose=2,
                        validation_data=(x_test, y_test), callbacks=callbacks)

    _, acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"backend={keras.backend.backend()} test accuracy={acc:.4f}")
    print(f"DropBlock rate after the ramp: {base.get_layer('dropblock').rate:.3f} (target 0.1)")
    print(f"head dropout after early dropout: {base.get_layer('head_dropout').rate:.3f}")
    print("logged consistency loss:", np.round(history.history["consistency_loss"], 4).tolist())
    print("logged DropBlock rate:", np.round(history.history["dropblock_rate"], 4).tolist())
    print("logged head dropout rate:", np.round(history.history["head_dropout_rate"], 4).tolist())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
