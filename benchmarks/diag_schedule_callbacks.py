"""Issue 27 diagnosis: is the JAX excess of an in-step schedule our step, or any callback?

Times whole `fit` calls (25 steps; the model and data of `bench_schedule_layers.py`) with no
callback (`none`, and `none2` again: the A/A noise), a do-nothing Keras callback
(`plain_cb`), one that defines `on_train_batch_begin` as `DropoutScheduler` does
(`batch_begin_cb`) and `DropoutScheduler(LinearRamp)` on every layer (`ramp`), interleaved,
and prints each configuration's median ratio to `none` per layer count. `--order` sets the
order inside a repeat (the position in it moves the ratios by about 0.02 here).

Usage:
    KERAS_BACKEND=jax python benchmarks/diag_schedule_callbacks.py --layers 1 50
"""

import argparse
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_schedule_layers as bench  # noqa: E402

import keras_dropouts as kd  # noqa: E402


class BatchBegin(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        pass


CONFIGS = {
    "none": list,
    "none2": list,
    "plain_cb": lambda: [keras.callbacks.Callback()],
    "batch_begin_cb": lambda: [BatchBegin()],
    "ramp": lambda: [kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.2, end_step=10**7))],
}


def run(n_layers, order, steps, repeats):
    model = bench.build(n_layers, 256, True)
    data = bench.batches(256, 256)
    for name in order:  # compile every configuration before timing
        bench.timed_fit(model, data, steps, CONFIGS[name]())
    times = {name: [] for name in order}
    for _ in range(repeats):
        for name in order:
            times[name].append(bench.timed_fit(model, data, steps, CONFIGS[name]()))
    base = np.asarray(times["none"])
    ratios = {k: round(float(np.median(np.asarray(v) / base)), 3) for k, v in times.items() if k != "none"}
    print(f"{n_layers} layers: none {np.median(base):.4f} s/fit, ratios {ratios}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--order", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    if "none" not in args.order:
        parser.error("--order must include none (the baseline)")
    for n in args.layers:
        run(n, args.order, args.steps, args.repeats)


if __name__ == "__main__":
    main()
