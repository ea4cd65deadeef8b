"""Step time of the package's block-dropout layers against `keras.layers.Dropout`.

Every candidate runs on the same input tensor in the same process: a compiled
(`jit_compile=True`) forward + backward step of `Scale -> drop layer -> mse`, where
`Scale` is one trainable scalar so the gradient flows through the drop layer.
Ratios are against `keras.layers.Dropout` at the same rate. keras-cv's
`DropBlock2D` (TensorFlow backend) and timm's `DropBlock2d` (torch backend) are
timed too when installed.

    KERAS_BACKEND=jax python benchmarks/bench_layers.py              # 16x56x56x64
    KERAS_BACKEND=tensorflow python benchmarks/bench_layers.py --shape 64 56 56 256
"""

import argparse
import os
import platform
import time

import keras
import numpy as np

import keras_dropouts as kd


class Scale(keras.layers.Layer):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(), initializer="ones")

    def call(self, x):
        return x * keras.ops.cast(self.w, x.dtype)


def seconds_per_call(step, steps, warmup):
    """Mean wall time of `step()` over `steps` calls, after `warmup` calls."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def keras_step_time(layer, x, steps, warmup=2):
    inputs = keras.Input(x.shape[1:], batch_size=x.shape[0])
    model = keras.Model(inputs, layer(Scale()(inputs)))
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse", jit_compile="auto")
    y = np.zeros_like(x)
    return seconds_per_call(lambda: model.train_on_batch(x, y), steps, warmup)


def keras_cv_candidate(rate, block):
    if keras.backend.backend() != "tensorflow":
        return None
    try:
        import keras_cv
    except Exception:  # not installed, or incompatible with this Keras
        return None
    return lambda: keras_cv.layers.DropBlock2D(rate=rate, block_size=block, seed=1)


def tf_eager_time(layer, x, steps, warmup=2):
    """Eager forward + backward (keras-cv's DropBlock2D cannot be traced by tf.function
    under Keras 3.15: it calls int() on a symbolic shape)."""
    import tensorflow as tf

    t = tf.constant(x)

    def step():
        with tf.GradientTape() as tape:
            tape.watch(t)
            loss = tf.reduce_mean(tf.square(layer(t, training=True)))
        tape.gradient(loss, t)

    return seconds_per_call(step, steps, warmup)


def timm_time(x, rate, block, steps, warmup=2):
    try:
        import torch
        from timm.layers import DropBlock2d
    except Exception:
        return None
    layer = DropBlock2d(drop_prob=rate, block_size=block).train()
    t = torch.tensor(np.moveaxis(x, -1, 1).copy(), requires_grad=True)

    def step():
        out = layer(t)
        out.square().mean().backward()

    return seconds_per_call(step, steps, warmup)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=[16, 56, 56, 64])
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--block", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    x = np.random.default_rng(0).random(args.shape, dtype=np.float32)
    r, b = args.rate, args.block
    candidates = {
        "keras.layers.Dropout": lambda: keras.layers.Dropout(r, seed=1),
        "ScheduledDropout": lambda: kd.layers.ScheduledDropout(r, seed=1),
        "DropBlock2D (per channel)": lambda: kd.layers.DropBlock2D(r, b, seed=1),
        "DropBlock2D (shared mask)": lambda: kd.layers.DropBlock2D(r, b, seed=1, per_channel=False),
        "ProbDropBlock2D (per channel)": lambda: kd.layers.ProbDropBlock2D(r, b, seed=1),
        "ProbDropBlock2D (shared mask)": lambda: kd.layers.ProbDropBlock2D(
            r, b, seed=1, per_channel=False
        ),
    }
    kcv = keras_cv_candidate(r, b)

    times = {}
    for name, make in candidates.items():
        try:
            times[name] = keras_step_time(make(), x, args.steps)
        except Exception as e:  # report, keep measuring the others
            print(f"{name}: failed ({type(e).__name__}: {str(e)[:120]})")
    if kcv is not None:
        for name, make in (
            ("eager: DropBlock2D (per channel)", lambda: kd.layers.DropBlock2D(r, b, seed=1)),
            ("eager: keras_cv DropBlock2D", kcv),
        ):
            try:
                times[name] = tf_eager_time(make(), x, args.steps)
            except Exception as e:
                print(f"{name}: failed ({type(e).__name__}: {str(e)[:120]})")
    if keras.backend.backend() == "torch":
        t = timm_time(x, r, b, args.steps)
        if t is not None:
            times["timm DropBlock2d (eager, NCHW)"] = t

    base = times["keras.layers.Dropout"]
    print(
        f"\nbackend={keras.backend.backend()} shape={tuple(args.shape)} rate={r} block={b} "
        f"steps={args.steps} machine={platform.machine()} cpus={os.cpu_count()}"
    )
    print(f"{'layer':34s} {'ms/step':>9s} {'x Dropout':>10s}")
    for name, t in times.items():
        print(f"{name:34s} {t * 1e3:9.2f} {t / base:10.2f}")


if __name__ == "__main__":
    main()
