"""Issue 27 diagnosis: does the JAX in-step schedule make the compiled step itself slower?

JAX only. Builds the model of `bench_schedule_layers.py` (n x (Dense(256) +
ScheduledDropout)) and times the jitted train step alone, outside `fit`, each compiled
once and called `--steps` times in a row on donated state (as Keras' own JAX trainer
calls it):

- `keras`: the model's own `train_step` (no schedule); `keras2`: the same again (A/A);
- `linked`: the model's own step, traced while every layer reads the first layer's
  rate variable, as the layers of one schedule group do during a scheduled `fit`;
- `wrapped`: the step our schedule callback installs (`DropoutScheduler(LinearRamp)` on
  every layer), taken from the model during a `fit`;
- `own` (with `--own`, a prototype, issue 27): no rate variable is read or written; every
  layer computes its rate from its own `rate_schedule` knots and the traced step counter
  (50 distinct scalar computations, as Keras' own step reads 50 distinct variables);
- `after` (with `--after`, a prototype, issue 27): every layer reads its own rate
  variable, a step input as in Keras' own step; the step writes each layer's rate for
  the next step (from its own knots and the updated counter) after the original step.

The order of the configurations is shuffled in every repeat; it prints each one's
median ratio to `keras` of the same repeat, with the 25-75% range. Run it under
`taskset -c 0` to see the same comparison on one core. `--rate-barrier` (a prototype
not kept, benchmarks/RESULTS.md) puts `jax.lax.optimization_barrier` on the rate inside
every layer's dropout, in every configuration. `--hlo-stats` prints, per configuration,
what the compiled step holds: fusions, scalar (`f32[]`) fusions, copies and temp bytes.
Set `XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false` to compare the
configurations under XLA:CPU's other (memory-minimising) scheduler.

Usage:
    KERAS_BACKEND=jax python benchmarks/diag_schedule_step.py --layers 50
"""

import argparse
import os
import re
import sys
import time

import jax
import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_schedule_layers as bench  # noqa: E402

import keras_dropouts as kd  # noqa: E402
from keras_dropouts import _internals  # noqa: E402
from keras_dropouts.backend.jax.rate_step import step_reader  # noqa: E402
from keras_dropouts.callbacks._in_step import knot_rate  # noqa: E402
from keras_dropouts.layers.base import link_rate, unlink_rates  # noqa: E402


def put_rate_barrier():
    """Patches the JAX dropout so that each layer reads its rate through its own
    optimisation barrier (XLA cannot merge the layers' scalar fusions then)."""
    from keras_dropouts.backend.common import dropout as common
    from keras_dropouts.backend.jax import dropout, noise

    def barrier_dropout(x, rate, noise_shape, seed, scale_by_keep=True):
        if not isinstance(rate, (int, float)):
            rate = jax.lax.optimization_barrier(jax.numpy.asarray(rate))
        return common.dropout(x, rate, noise_shape, seed, noise.uniform, scale_by_keep)

    dropout.dropout = barrier_dropout


class _Own:
    step = None  # the traced step counter while the `own` step traces


def put_own_rates():
    """Patches `ScheduledDropout.call`: while `_Own.step` is set, the layer's rate is
    `two_knots(step, its own knots)` (the `own` prototype)."""
    from keras_dropouts.ops.dropout import _dropout

    original = kd.layers.ScheduledDropout.call

    def call(self, inputs, training=False):
        if not training or _Own.step is None:
            return original(self, inputs, training=training)
        rate = knot_rate(_Own.step, self.rate_schedule_variable.value)
        return _dropout(inputs, rate, self.noise_shape, self.seed_generator)

    kd.layers.ScheduledDropout.call = call


def own_step(model):
    """The model's own step, with every layer's rate computed from the traced counter."""
    own = type(model).train_step.__get__(model)
    read_step = step_reader(model)

    def step(state, data):
        _Own.step = read_step(state)
        try:
            return own(state, data)
        finally:
            _Own.step = None

    return step


def after_step(model):
    """The model's own step, then each layer's rate variable set to its rate at the next step."""
    own = type(model).train_step.__get__(model)
    read_step = step_reader(model)
    drops = scheduled_layers(model)
    slots = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
    rate_slots = [slots[id(layer.rate_variable)] for layer in drops]
    knot_slots = [slots[id(layer.rate_schedule_variable)] for layer in drops]

    def step(state, data):
        logs, state = own(state, data)
        values, _ = _internals.jax_state_parts(state)
        values = list(values)
        following = read_step(state)
        for rate_slot, knot_slot in zip(rate_slots, knot_slots):
            values[rate_slot] = knot_rate(following, values[knot_slot])
        return logs, _internals.jax_state_with_non_trainable(state, values)

    return step


def scheduled_layers(model):
    return [layer for layer in model.layers if isinstance(layer, kd.layers.ScheduledDropout)]


def state_of(model):
    return (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )


def compiled(step, model, data):
    def call(state, batch):  # a new callable: jax.jit caches traces by function
        return step(state, batch)

    return jax.jit(call, donate_argnums=0).lower(state_of(model), data).compile()


def build_functions(model, data, x, y, with_own=False, with_after=False):
    own = type(model).train_step.__get__(model)
    functions = {"keras": compiled(own, model, data), "keras2": compiled(own, model, data)}
    drops = scheduled_layers(model)
    for layer in drops[1:]:
        link_rate(layer, drops[0].rate_variable)
    functions["linked"] = compiled(own, model, data)
    unlink_rates(drops[1:])

    class Capture(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if "wrapped" not in functions:
                wrapper = _internals.get_instance_attribute(model, "train_step")
                functions["wrapped"] = compiled(wrapper, model, data)

    ramp = kd.schedules.LinearRamp(0.2, end_step=10**7)
    model.fit(x, y, batch_size=len(x), epochs=1, verbose=0,
              callbacks=[kd.callbacks.DropoutScheduler(ramp), Capture()])
    # The prototypes read every layer's own knots (the scheduled fit wrote only the leader's).
    for layer in drops:
        layer.rate_schedule_variable.assign(np.asarray(ramp.knots(), "float32"))
    if with_own:
        functions["own"] = compiled(own_step(model), model, data)
    if with_after:
        functions["after"] = compiled(after_step(model), model, data)
    return functions


def hlo_stats(function):
    """Counts in the compiled step's entry computation (in XLA's schedule order)."""
    text = function.as_text()
    entry = text[text.index("ENTRY"):]
    ops = re.findall(r"= (\S+) ([\w-]+)\(", entry)
    fusions = [shape for shape, op in ops if op == "fusion"]
    return (
        f"fusions {len(fusions)}, scalar fusions {sum(s == 'f32[]' for s in fusions)}, "
        f"copies {sum(op == 'copy' for _, op in ops)}, "
        f"temp {function.memory_analysis().temp_size_in_bytes / 2**20:.1f} MiB"
    )


def timed(function, model, data, steps):
    state = jax.tree_util.tree_map(lambda a: a.copy(), state_of(model))
    _, state = function(state, data)
    jax.block_until_ready(state)
    start = time.perf_counter()
    for _ in range(steps):
        _, state = function(state, data)
    jax.block_until_ready(state)
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, nargs="+", default=[50])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--rate-barrier", action="store_true", help="optimisation barrier on each layer's rate")
    parser.add_argument("--own", action="store_true", help="add the `own` prototype (issue 27)")
    parser.add_argument("--after", action="store_true", help="add the `after` prototype (issue 27)")
    parser.add_argument("--hlo-stats", action="store_true", help="print each compiled step's fusion counts")
    args = parser.parse_args()
    if keras.backend.backend() != "jax":
        raise SystemExit("diag_schedule_step.py times jitted JAX steps: run it with KERAS_BACKEND=jax")
    if args.rate_barrier:
        put_rate_barrier()
    if args.own:
        put_own_rates()
    print(f"cores={len(os.sched_getaffinity(0))} width={args.width} batch={args.batch} "
          f"steps={args.steps} repeats={args.repeats}")
    rng = np.random.default_rng(0)
    for n in args.layers:
        model = bench.build(n, args.width, True)
        x = rng.normal(size=(args.batch, args.width)).astype("float32")
        y = np.zeros((args.batch, 1), "float32")
        model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)
        data = (jax.numpy.asarray(x), jax.numpy.asarray(y))
        functions = build_functions(model, data, x, y, with_own=args.own, with_after=args.after)
        if args.hlo_stats:
            for name, f in functions.items():
                print(f"{name}: {hlo_stats(f)}")
        for f in functions.values():
            timed(f, model, data, args.steps)
        times = {name: [] for name in functions}
        for _ in range(args.repeats):
            names = list(functions)
            rng.shuffle(names)
            for name in names:
                times[name].append(timed(functions[name], model, data, args.steps))
        base = np.asarray(times["keras"])
        cells = [f"{n} layers, {np.median(base) * 1e3:.1f} ms/step:"]
        for name in [n for n in ("keras2", "linked", "wrapped", "own", "after") if n in functions]:
            r = np.asarray(times[name]) / base
            cells.append(f"{name} {np.median(r):.3f} [{np.percentile(r, 25):.3f}-{np.percentile(r, 75):.3f}]")
        print("  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
