"""Stochastic depth that skips the dropped compute: `StochasticResidual` vs `DropPath`.

A ViT-style stack (pre-norm blocks: LayerNorm + multi-head self-attention, LayerNorm
+ MLP 4x; issue 25 asks for 12 blocks of width 192, batch 128, 65 tokens) trained
with `fit`, compiled (`jit_compile=True` on JAX and TF, eager on torch). Variants,
all built in one process and timed interleaved, `--repeats` rounds of `--steps`
steps each (one `fit` call per round and variant, set-up included; with `--steps-only`,
the default on TensorFlow, the steps of each `fit` alone, last loss read):

- `none`: no stochastic depth (`x + f(x)`);
- `none2`: the same again, a second model (A/A: `none2 / none` is the noise);
- `droppath`: `x + DropPath(rate)(f(x))` (the branch runs for every sample);
- `skip`: `StochasticResidual(f, rate)` (the branch runs on the kept subset);
- `skip@0`: `StochasticResidual(f, rate)` whose rate variables are set to 0 after
  building (not a model built at rate 0);
- `skip+ramp`: `skip` under `DropoutScheduler(LinearRamp(rate + 0.01, start_rate=
  rate - 0.01, end_step=10**6))`: the rate changes at every step inside the compiled
  step, around the same mean compute as `skip` at a constant rate.

Ratios are paired (same round): the median over rounds and the 25-75% range are
printed. Targets (issue 25): skip / droppath <= 0.80; skip@0 / none <= 1.02;
skip+ramp / skip <= 1.02 and no retrace (the branch's Python `call` is counted
after the first `fit` of each model). Data are device tensors (a generator yielding
the same batch): no host-to-device copy is timed.

    KERAS_BACKEND=jax python benchmarks/bench_stochastic_residual.py
    KERAS_BACKEND=jax python benchmarks/bench_stochastic_residual.py --batch 32 --repeats 5
"""

import argparse
import time

import keras
import numpy as np

import keras_dropouts as kd
from repeated_batch import repeated_batch

TRACES = {"n": 0}


class Attention(keras.layers.Layer):
    """Pre-norm multi-head self-attention branch: MHA(LN(x))."""

    def __init__(self, width, heads, **kwargs):
        super().__init__(**kwargs)
        self.norm = keras.layers.LayerNormalization(epsilon=1e-6)
        self.mha = keras.layers.MultiHeadAttention(heads, width // heads)

    def build(self, input_shape):
        self.norm.build(input_shape)
        self.mha.build(input_shape, input_shape)

    def call(self, x):
        TRACES["n"] += 1
        h = self.norm(x)
        return self.mha(h, h)


class MLP(keras.layers.Layer):
    """Pre-norm MLP branch: Dense(d)(gelu(Dense(4d)(LN(x))))."""

    def __init__(self, width, **kwargs):
        super().__init__(**kwargs)
        self.norm = keras.layers.LayerNormalization(epsilon=1e-6)
        self.up = keras.layers.Dense(4 * width, activation="gelu")
        self.down = keras.layers.Dense(width)

    def build(self, input_shape):
        self.norm.build(input_shape)
        self.up.build(input_shape)
        self.down.build(input_shape[:-1] + (4 * input_shape[-1],))

    def call(self, x):
        TRACES["n"] += 1
        return self.down(self.up(self.norm(x)))


def residual(kind, branch, rate, seed, buckets):
    """`x -> x + ...` for one branch, as `kind` builds it."""
    if kind == "none":
        return lambda x: keras.layers.Add()([x, branch(x)])
    if kind == "droppath":
        return lambda x: keras.layers.Add()([x, kd.layers.DropPath(rate, seed=seed)(branch(x))])
    return kd.layers.StochasticResidual(branch, rate, buckets=buckets, seed=seed)


def build(kind, args):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((args.tokens, args.width))
    x = inputs
    for i in range(args.blocks):
        x = residual(kind, Attention(args.width, args.heads), args.rate, 2 * i, args.buckets)(x)
        x = residual(kind, MLP(args.width), args.rate, 2 * i + 1, args.buckets)(x)
    model = keras.Model(inputs, keras.layers.LayerNormalization()(x))
    model.compile(keras.optimizers.SGD(1e-4), "mse", jit_compile=keras.backend.backend() != "torch")
    return model


def batches(args):
    rng = np.random.default_rng(0)
    shape = (args.batch, args.tokens, args.width)
    return repeated_batch(*(rng.normal(size=shape).astype("float32") for _ in range(2)))


class StepClock(keras.callbacks.Callback):
    """The time from the first step's start to the last step's end, synced by reading
    the last loss: the steps alone, without `fit`'s set-up and tear-down."""

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        float(keras.ops.convert_to_numpy(logs["loss"]))
        self.seconds = time.perf_counter() - self.start


def timed_fit(model, data, steps, callbacks, steps_only=False):
    """Seconds of one `fit` of `steps` steps (steps_only: of its steps, `StepClock`)."""
    clock = [StepClock()] if steps_only else []  # it syncs every step: only when asked
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[*callbacks, *clock])
    keras.ops.convert_to_numpy(model.trainable_weights[0][0])  # wait for queued work
    return clock[0].seconds if steps_only else time.perf_counter() - start


def ramp(args):
    return kd.callbacks.DropoutScheduler(
        kd.schedules.LinearRamp(args.rate + 0.01, start_rate=args.rate - 0.01, end_step=10**6)
    )


def variants(args):
    """name -> (model, callbacks factory)."""
    out = {
        "none": (build("none", args), list),
        "none2": (build("none", args), list),
        "droppath": (build("droppath", args), list),
        "skip": (build("skip", args), list),
        "skip@0": (build("skip", args), list),
        "skip+ramp": (build("skip", args), lambda: [ramp(args)]),
    }
    for layer in out["skip@0"][0].layers:
        if isinstance(layer, kd.layers.StochasticResidual):
            layer.rate = 0.0
    return out


def quartiles(values):
    return np.percentile(values, [25, 50, 75])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=12)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=65)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--buckets", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--steps-only", action=argparse.BooleanOptionalAction, default=keras.backend.backend() == "tensorflow",
        help="time the steps of each fit, not the whole fit (default on TensorFlow, whose fit set-up "
        "and tear-down take a quantised time, ~10.2 s per fit on the 2-core CPU)",
    )
    args = parser.parse_args()
    print(
        f"backend={keras.backend.backend()} keras={keras.__version__} blocks={args.blocks} width={args.width} "
        f"tokens={args.tokens} batch={args.batch} rate={args.rate} buckets={args.buckets} "
        f"steps/fit={args.steps} repeats={args.repeats} steps_only={args.steps_only}"
    )
    data = batches(args)
    models = variants(args)
    compile_s, warm_traces = {}, {}
    for name, (model, callbacks) in models.items():  # compile (and warm) each once
        compile_s[name] = timed_fit(model, data, 1, callbacks())
        timed_fit(model, data, 1, callbacks())
        warm_traces[name] = TRACES["n"]
    times = {name: [] for name in models}
    retraces = {name: 0 for name in models}
    for _ in range(args.repeats):
        for name, (model, callbacks) in models.items():
            before = TRACES["n"]
            times[name].append(timed_fit(model, data, args.steps, callbacks(), args.steps_only))
            retraces[name] += TRACES["n"] - before
    per_step = {name: np.median(t) / args.steps for name, t in times.items()}
    print("\nfirst fit (trace + compile + 1 step), s; median step time, ms; branch traces after warm-up")
    for name in models:
        print(f"  {name:10s} {compile_s[name]:8.1f} s  {per_step[name] * 1e3:9.1f} ms  traces {retraces[name]}")
    print("\npaired ratios (median [25%, 75%] over rounds)")
    for label, num, den, target in [
        ("A/A none2 / none", "none2", "none", None),
        ("skip / droppath", "skip", "droppath", 0.80),
        ("droppath / none", "droppath", "none", None),
        ("skip / none", "skip", "none", None),
        ("skip@0 / none", "skip@0", "none", 1.02),
        ("skip+ramp / skip", "skip+ramp", "skip", 1.02),
    ]:
        q = quartiles(np.array(times[num]) / np.array(times[den]))
        goal = "" if target is None else f"  target <= {target:.2f}: {'met' if q[1] <= target else 'MISSED'}"
        print(f"  {label:18s} {q[1]:.3f} [{q[0]:.3f}, {q[2]:.3f}]{goal}")


if __name__ == "__main__":
    main()
