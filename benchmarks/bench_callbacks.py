"""Per-step overhead of a dropout callback that updates 50 layers every step.

Runs for the current KERAS_BACKEND and prints the ratio

    time per train step with DropoutScheduler(ramp changing every step) on 50 layers
    ---------------------------------------------------------------------------------
    time per train step without any callback

measured in the same process, on the same compiled model, alternating the two
configurations; the minimum over repeats is used (noise from other processes
only adds time). It also prints the time spent inside the callback itself as a
fraction of the step time (robust to noise, but blind to indirect costs such as
the JAX loop re-reading its state after the sync). Target: ratio < 1.02.

Usage:
    KERAS_BACKEND=jax python benchmarks/bench_callbacks.py [--layers 50] [--width 256]
"""

import argparse
import statistics
import time

import keras
import numpy as np

import keras_dropouts as kd


def build(n_layers, width):
    inputs = keras.Input((width,))
    x = inputs
    for i in range(n_layers):
        x = keras.layers.Dense(width, activation="relu", name=f"dense_{i}")(x)
        x = kd.layers.ScheduledDropout(0.05, seed=i, name=f"drop_{i}")(x)
    outputs = keras.layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.SGD(1e-4), "mse", jit_compile=True)
    return model


def time_fit(model, x, y, batch_size, callbacks):
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False, callbacks=callbacks)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    n = args.batch * args.steps
    x = rng.standard_normal((n, args.width)).astype("float32")
    y = rng.standard_normal((n, 1)).astype("float32")
    model = build(args.layers, args.width)
    # A ramp that changes the rate of all layers at every single step.
    ramp = kd.schedules.LinearRamp(0.2, start_rate=0.05, end_step=10**7)
    callback = kd.callbacks.DropoutScheduler(ramp)
    inside = []
    hook = callback.on_train_batch_begin

    def timed_hook(batch, logs=None):
        start = time.perf_counter()
        hook(batch, logs)
        inside.append(time.perf_counter() - start)

    callback.on_train_batch_begin = timed_hook

    time_fit(model, x, y, args.batch, [])  # compile + warm up
    time_fit(model, x, y, args.batch, [callback])
    base, with_cb = [], []
    for _ in range(args.repeats):
        base.append(time_fit(model, x, y, args.batch, []) / args.steps)
        with_cb.append(time_fit(model, x, y, args.batch, [callback]) / args.steps)
    b, c = min(base), min(with_cb)
    in_cb = statistics.median(inside)
    changed = {layer.rate for layer in callback.targets}
    print(
        f"backend={keras.backend.backend()} layers={len(callback.targets)} width={args.width} "
        f"batch={args.batch} steps={args.steps} repeats={args.repeats}"
    )
    print(f"step time without callback: {b * 1e3:.2f} ms   with callback: {c * 1e3:.2f} ms")
    print(f"overhead ratio: {c / b:.4f}  (target < 1.02; extra {(c - b) * 1e6:.0f} us/step)")
    print(f"time inside the callback: {in_cb * 1e6:.0f} us/step = {in_cb / b:.2%} of a step")
    last_step = int(keras.ops.convert_to_numpy(model.optimizer.iterations.value)) - 1
    assert len(changed) == 1 and abs(changed.pop() - ramp(last_step)) < 1e-6


if __name__ == "__main__":
    main()
