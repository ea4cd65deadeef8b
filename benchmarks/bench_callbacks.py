"""Per-step cost of a dropout schedule that changes 50 layers' rates every step.

Runs for the current KERAS_BACKEND and prints, measured in the same process on
the same compiled model (configurations interleaved, minimum over repeats: noise
from other processes only adds time):

    ratio = time per train step with DropoutScheduler(ramp changing every step)
            -----------------------------------------------------------------
            time per train step without any callback

for the in-step path (built-in schedule, rates computed inside the compiled step)
and, on TF and JAX, for the host path (an untraceable callable: the rates are
written from the host before every batch, as every schedule was before 0.2).
It also prints the number of host writes of rate variables per step (on JAX the
host path's count includes the state sync each write needs). The batch
is a device tensor yielded again and again, so no host-to-device copy is timed.

A step's time is the steady state inside `fit`: from the end of batch `--skip` to the
end of the last batch, with the device synchronised at both ends (the loss read
back), so work queued asynchronously is counted. What a `fit` costs once (the
callback's set-up at `on_train_begin`, the first steps) is printed apart, as
"per fit": it is paid once per `fit`, not per step. Targets (issue 8): in-step
ratio <= 1.02 on CPU, <= 1.01 on a GPU (JAX).

`--width 8 --batch 8` makes the step dispatch-bound, as small steps are on a GPU:
the CPU proxy for per-step overhead on a GPU.

Usage:
    KERAS_BACKEND=jax python benchmarks/bench_callbacks.py [--layers 50] [--width 256]
    KERAS_BACKEND=jax python benchmarks/bench_callbacks.py --layers 1 10 50 100   # per-layer-count sweep
    KERAS_BACKEND=jax python benchmarks/bench_callbacks.py --width 8 --batch 8 --steps 300
"""

import argparse
import time
import warnings

import keras
import numpy as np

from bench_rdrop import SteadyTimer, jax_step_alone, jax_step_stats

import keras_dropouts as kd
from keras_dropouts.callbacks._assign import RateWriter

END = 10**7  # the ramp's end: the rate changes at every step of the benchmark


def build(n_layers, width):
    inputs = keras.Input((width,))
    x = inputs
    for i in range(n_layers):
        x = keras.layers.Dense(width, activation="relu", name=f"dense_{i}")(x)
        x = kd.layers.ScheduledDropout(0.05, seed=i, name=f"drop_{i}")(x)
    outputs = keras.layers.Dense(1, name="head")(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.SGD(1e-4), "mse", jit_compile="auto")
    return model


class WriteCounter(keras.callbacks.Callback):
    """Counts host `assign` calls on the rate variables while batches run (up to the start
    of the last batch: the host path writes in `on_train_batch_begin`, before this runs).

    A batch-begin hook leaves Keras free to hand the batch-end hooks to worker threads
    (bench_rdrop's `SteadyTimer`), so the step loop is not stalled on every step's logs.
    """

    def __init__(self, variables):
        super().__init__()
        self.variables = variables
        self.count = 0
        self.at_last_batch = 0

    def on_train_begin(self, logs=None):
        for v in self.variables:
            original = v.assign

            def spy(value, _original=original):
                if _eager():
                    self.count += 1
                return _original(value)

            v.assign = spy
        # The host path's TF writer assigns through one tf.function, not `assign`.
        writer = RateWriter.write

        def counted_write(this, indices, values):
            if keras.backend.backend() == "tensorflow" and len(indices) > 4:
                self.count += len(indices)
            return writer(this, indices, values)

        RateWriter.write = counted_write
        self._writer = writer

    def on_train_batch_begin(self, batch, logs=None):
        self.at_last_batch = self.count

    def on_train_end(self, logs=None):
        for v in self.variables:
            del v.assign
        RateWriter.write = self._writer


class LaunchCounter(keras.callbacks.Callback):
    """JAX: top-level ops of the compiled train step as this `fit` runs it (schedules
    installed), about one kernel launch each on a GPU (see bench_rdrop.jax_step_stats), and
    that step's time called back to back outside `fit` (bench_rdrop.jax_step_alone): device
    time where the device is the bottleneck, so a gap between the configurations here is in
    the compiled step, and a gap only in `fit` is on the host."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y, self.launches, self.alone = x, y, None, None

    def on_train_begin(self, logs=None):
        self.launches = jax_step_stats(self.model, self.x, self.y)[1]
        self.alone = min(jax_step_alone(self.model, self.x, self.y, calls=100) for _ in range(3))


def _eager():
    if keras.backend.backend() != "tensorflow":
        return True
    import tensorflow as tf

    return tf.executing_eagerly()


def host_ramp(step):
    # Python `min` on the step cannot be traced: this schedule runs on the host.
    return 0.05 + 0.15 * min(int(step), END) / END


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, nargs="+", default=[50],
                        help="layer counts to measure, e.g. --layers 1 10 50 100")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--skip", type=int, default=10, help="steps before timing starts")
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    for n_layers in args.layers:
        measure(n_layers, args)


def measure(n_layers, args):
    """Builds `n_layers` x (Dense + ScheduledDropout) and prints the configurations' ratios."""
    backend = keras.backend.backend()

    rng = np.random.default_rng(0)
    x = keras.ops.convert_to_tensor(rng.standard_normal((args.batch, args.width)), "float32")
    y = keras.ops.convert_to_tensor(rng.standard_normal((args.batch, 1)), "float32")

    def batches():
        while True:
            yield x, y

    model = build(n_layers, args.width)
    rate_vars = [layer.rate_variable for layer in kd.callbacks.select_layers(model)]
    configs = {
        "none": lambda: [],
        "in_step": lambda: [
            kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.2, start_rate=0.05, end_step=END))
        ],
    }
    if backend != "torch":  # torch evaluates every callable eagerly inside the step
        configs["host"] = lambda: [kd.callbacks.DropoutScheduler(host_ramp)]

    def run(name, steps=args.steps):
        counter = WriteCounter(rate_vars)
        steady = []
        timer = SteadyTimer(min(args.skip, steps - 2), steps, time.perf_counter, steady)
        callbacks = configs[name]() + [counter, timer]
        start = time.perf_counter()
        model.fit(batches(), steps_per_epoch=steps, epochs=1, verbose=0, callbacks=callbacks)
        total = time.perf_counter() - start
        step = steady[0]
        # What the fit cost beyond its steps at the steady-state rate.
        once = total - step * steps
        return step, once, counter.at_last_batch / steps, callbacks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the host path warns that it is slow, by design
        for name in configs:  # compile + warm up every configuration
            run(name, steps=3)
        times = {name: [] for name in configs}
        fixed = {name: [] for name in configs}
        writes = {}
        for _ in range(args.repeats):
            for name in configs:
                t, once, w, callbacks = run(name)
                times[name].append(t)
                fixed[name].append(once)
                writes[name] = w
                if name == "in_step":
                    assert callbacks[0].evaluation == "in_step"
        launches, alone = {}, {}
        if backend == "jax":
            for name in ("none", "in_step"):
                counter = LaunchCounter(x, y)
                model.fit(batches(), steps_per_epoch=1, epochs=1, verbose=0,
                          callbacks=configs[name]() + [counter])
                launches[name] = counter.launches
                alone[name] = counter.alone

    base = min(times["none"])
    print(
        f"backend={backend} layers={len(rate_vars)} width={args.width} batch={args.batch} "
        f"steps={args.steps} (timed after {args.skip}) repeats={args.repeats}"
    )
    print(f"step time without callback: {base * 1e3:.3f} ms  (per fit: "
          f"{np.median(fixed['none']) * 1e3:.1f} ms)")
    for name in configs:
        if name == "none":
            continue
        t = min(times[name])
        extra = (np.median(fixed[name]) - np.median(fixed["none"])) * 1e3
        print(
            f"{name:8s} step {t * 1e3:.3f} ms  ratio {t / base:.4f}  "
            f"host rate writes per step {writes[name]:.1f}  per fit: {extra:+.1f} ms"
        )
    if launches:
        print(f"launches per step (top-level ops of the compiled step): none {launches['none']}, "
              f"in_step {launches['in_step']}")
        print(f"compiled step alone (no fit loop, min of 3 x 100 calls): none {alone['none'] * 1e3:.3f} ms, "
              f"in_step {alone['in_step'] * 1e3:.3f} ms, ratio {alone['in_step'] / alone['none']:.4f}")
    print("target: in_step ratio <= 1.02 (CPU), <= 1.01 (GPU)")


if __name__ == "__main__":
    main()
