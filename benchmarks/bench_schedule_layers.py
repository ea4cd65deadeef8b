"""Does an in-step schedule cost more with more layers? (issue 27, part 1)

For each layer count in `--layers` (default 1, 10, 50, 100) it builds
n x (Dense(width) + ScheduledDropout) and times whole `fit` calls of `--steps`
steps, in one process, three configurations interleaved, `--repeats` times:

- `none`: no callback (the baseline);
- `none2`: no callback again (A/A: the ratio none2/none is the noise of the setup);
- `ramp`: `DropoutScheduler(LinearRamp(0.2, end_step=10**7))` on every layer (the rate
  changes at every step, computed inside the compiled step).

and prints the median over repeats of ratio = time(config) / time(none) of the same
repeat (paired), with the 25-75% range of those ratios. Targets (issue 27): at 50 and 100
layers, ramp / none <= 1.02 on JAX, TF and torch, and within 0.01 of the 1-layer ratio.
The data are device tensors (the same batch again and again; a `tf.data` dataset on
TensorFlow), so no host-to-device copy is timed. Each `fit` includes its set-up
(`on_train_begin`), as a user's does.

Usage:
    KERAS_BACKEND=jax python benchmarks/bench_schedule_layers.py [--layers 1 10 50 100]
"""

import argparse
import json
import time

import keras
import numpy as np

import keras_dropouts as kd
from repeated_batch import repeated_batch


def build(n_layers, width, jit_compile):
    inputs = keras.Input((width,))
    x = inputs
    for i in range(n_layers):
        x = keras.layers.Dense(width, activation="relu")(x)
        x = kd.layers.ScheduledDropout(0.05, seed=i)(x)
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    model.compile(keras.optimizers.SGD(1e-4), "mse", jit_compile=jit_compile)
    return model


def batches(width, batch):
    x = np.random.default_rng(0).normal(size=(batch, width)).astype("float32")
    return repeated_batch(x, np.zeros((batch, 1), "float32"))


def timed_fit(model, data, steps, callbacks):
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=callbacks)
    keras.ops.convert_to_numpy(model.trainable_weights[0][0, 0])  # wait for queued work
    return time.perf_counter() - start


def sweep(n_layers, args):
    model = build(n_layers, args.width, args.jit_compile)
    data = batches(args.width, args.batch)

    def ramp():
        return [kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.2, end_step=10**7))]

    configs = {"none": list, "none2": list, "ramp": ramp}
    for make in configs.values():  # compile every configuration before timing
        timed_fit(model, data, args.steps, make())
    times = {name: [] for name in configs}
    for _ in range(args.repeats):
        for name, make in configs.items():
            times[name].append(timed_fit(model, data, args.steps, make()))
    base = np.asarray(times["none"])
    out = {"layers": n_layers, "none_s_per_step": float(np.median(base)) / args.steps}
    for name in ("none2", "ramp"):
        r = np.asarray(times[name]) / base
        out[name] = [float(np.median(r)), float(np.percentile(r, 25)), float(np.percentile(r, 75))]
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 10, 50, 100])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--jit-compile", default="auto", help="compile()'s jit_compile: auto, true, false")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    args.jit_compile = {"true": True, "false": False}.get(str(args.jit_compile).lower(), "auto")
    print(f"backend={keras.backend.backend()} width={args.width} batch={args.batch} steps={args.steps} "
          f"repeats={args.repeats} jit_compile={args.jit_compile}")
    print("layers  s/step(none)  A/A none2/none [25-75%]   ramp/none [25-75%]")
    results = []
    for n in args.layers:
        r = sweep(n, args)
        results.append(r)
        aa, ramp = r["none2"], r["ramp"]
        print(f"{n:6d}  {r['none_s_per_step']:.5f}      {aa[0]:.3f} [{aa[1]:.3f}-{aa[2]:.3f}]"
              f"      {ramp[0]:.3f} [{ramp[1]:.3f}-{ramp[2]:.3f}]", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": keras.backend.backend(), "args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
