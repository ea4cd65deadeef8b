"""RDropModel cost against its floor and against the plain model, measured in one run.

On the backend chosen by KERAS_BACKEND, with the data already on the device
(backend tensors / a tf.data pipeline of tensors, never NumPy into the step):

  * train step, RDropModel on a batch of B against
      - hand-tiled: a hand-written model that tiles the batch inside its step and
        applies the compiled loss to both copies (same forward and backward, no
        consistency term): the floor. Target ratio <= 1.03 (CPU), <= 1.02 (GPU).
      - plain(2B): the plain model on the duplicated batch 2B.
    RDropModel with alpha=0 (no consistency term at all) against hand-tiled
    isolates the wrapper's own overhead from the cost of the term. "same logs"
    compares equal log entries: RDropModel(log_consistency=False) against
    hand-tiled, and RDropModel against hand-tiled + one logged scalar (Keras
    copies every logged value to the host each step: on a small GPU step that
    one copy costs more than the consistency term).
  * evaluate / predict: RDropModel against the plain model on B. Target <= 1.05.
  * peak memory of one train step where the backend exposes it: JAX reports
    XLA's buffer assignment of the compiled step (any device); TF and torch
    report the allocator's peak on a GPU; on a CPU they print n/a.

Timing: `fit` for `--steps` steps, `--repeats` times, the models interleaved (in
alternating order) so that each repeat's runs share the machine's load. A ratio
is the median over repeats of the per-repeat ratio; times are medians. The first
`fit` of each model compiles. `--clock
cpu` (the default when no GPU is visible) times the process's CPU time instead of
wall time: on a shared CPU machine other processes' load then inflates neither
model, and on a CPU backend all of a step's work is CPU time. With a GPU the
default is wall time.

Train steps are reported twice: "steady" is the time per step inside `fit` from the end
of batch `--skip` to the end of the last one (device synchronised at both ends), what
a long training run pays per step; "per fit" is the whole `fit` call divided by its
steps, which also carries `fit`'s fixed costs (callbacks, metric resets and reads: a
few ms per call on a GPU) and so overstates short runs.

`--model encoder` swaps the MLP for a 4-block token encoder (embedding 256, 4 heads,
feed-forward 1024, sequence 128, dropout 0.1: issue 10's GPU case, run with --batch 64).

Usage:  KERAS_BACKEND=jax python benchmarks/bench_rdrop.py [--batch 128] [--steps 20] [--repeats 25]
        KERAS_BACKEND=jax python benchmarks/bench_rdrop.py --model encoder --batch 64
        --probe adds, on JAX, the compiled step timed alone (no `fit` loop); on torch, the
        dispatched ops and host copies / syncs per step (torch profiler).
"""

import argparse
import re
import time

import keras
import numpy as np
from keras import ops

from keras_dropouts.models import RDropModel

BACKEND = keras.backend.backend()


def build(width, n_in, n_out, seed=0):
    inputs = keras.Input((n_in,))
    h = inputs
    for i in range(2):
        init = keras.initializers.GlorotUniform(seed + i)
        h = keras.layers.Dense(width, activation="relu", kernel_initializer=init)(h)
        h = keras.layers.Dropout(0.2)(h)
    return inputs, keras.layers.Dense(n_out, kernel_initializer=keras.initializers.GlorotUniform(seed + 2))(h)


class HandTiled(keras.Model):
    """The floor: a functional model that tiles its batch inside the train step.

    Construct as `HandTiled(inputs, outputs)`. In `fit`'s step the inputs are
    tiled twice along the batch axis (one forward/backward on 2B), in RDropModel's
    layout (each row repeated in place: x0, x0, x1, x1, ...), and the compiled loss
    is applied to both copies (tiled `y`); nothing else.
    """

    def train_step(self, *args, **kwargs):
        self._tiling = True
        try:
            return super().train_step(*args, **kwargs)
        finally:
            self._tiling = False

    def call(self, inputs, training=None, mask=None):
        if training and getattr(self, "_tiling", False):
            inputs = ops.repeat(inputs, 2, axis=0)
        return super().call(inputs, training=training, mask=mask)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if training and getattr(self, "_tiling", False):
            y = ops.repeat(y, 2, axis=0)
        return super().compute_loss(x, y, y_pred, sample_weight, training=training)


class HandTiledLogged(HandTiled):
    """The floor plus one more logged scalar (a `Mean` of the loss), as RDropModel logs
    `consistency_loss`: what one more entry in every step's logs costs (Keras copies each
    logged value to the host every step)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra_tracker = keras.metrics.Mean(name="extra")

    def compute_loss(self, *args, **kwargs):
        loss = super().compute_loss(*args, **kwargs)
        if getattr(self, "_tiling", False):
            self.extra_tracker.update_state(ops.stop_gradient(loss))
        return loss


def build_encoder(width, seq_len, n_out, vocab=1000, blocks=4, heads=4, seed=0):
    """A 4-block post-norm token encoder (the shape of a small BERT), logits of n_out classes."""
    init = lambda i: keras.initializers.GlorotUniform(seed + i)  # noqa: E731
    inputs = keras.Input((seq_len,), dtype="int32")
    h = keras.layers.Embedding(vocab, width, embeddings_initializer=init(0))(inputs)
    for i in range(blocks):
        a = keras.layers.MultiHeadAttention(heads, width // heads, dropout=0.1,
                                            kernel_initializer=init(10 * i + 1))(h, h)
        h = keras.layers.LayerNormalization()(h + keras.layers.Dropout(0.1)(a))
        f = keras.layers.Dense(4 * width, activation="gelu", kernel_initializer=init(10 * i + 2))(h)
        f = keras.layers.Dense(width, kernel_initializer=init(10 * i + 3))(f)
        h = keras.layers.LayerNormalization()(h + keras.layers.Dropout(0.1)(f))
    h = keras.layers.GlobalAveragePooling1D()(h)
    return inputs, keras.layers.Dense(n_out, kernel_initializer=init(99))(h)


def gpu_visible():
    if BACKEND == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if BACKEND == "torch":
        import torch

        return torch.cuda.is_available()
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def timed(fns, repeats, clock):
    """Per-repeat times of each function, interleaved (alternating order) to share load."""
    times = [[] for _ in fns]
    for r in range(repeats):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            t = clock()
            fns[i]()
            times[i].append(clock() - t)
    return times


class SteadyTimer(keras.callbacks.Callback):
    """Time per step from the end of batch `skip` to the end of the last batch.

    With `sync_logs=False` the timer is `async_safe`: Keras (JAX and torch backends) converts
    each step's logs to Python numbers in worker threads, as in a `fit` without per-batch
    callbacks, instead of blocking the step loop on every step's logs (one device-to-host
    copy per log entry, per step). `sync_logs=True` keeps that per-step stall, which is
    what a progress bar (`verbose=1`) costs.
    """

    def __init__(self, skip, steps, clock, out, sync_logs=False):
        super().__init__()
        self.async_safe = not sync_logs
        self.skip, self.last, self.clock, self.out = skip, steps - 1, clock, out
        self.times = {}

    def on_train_begin(self, logs=None):
        self.times = {}  # one timer serves every `fit` of a model

    def on_train_batch_end(self, batch, logs=None):
        if batch in (self.skip, self.last):
            ops.convert_to_numpy(logs["loss"])  # waits for the steps queued on the device
            # Async hooks may run in any order (a thread pool): each end keeps its own time.
            self.times[batch] = self.clock()
            if len(self.times) == 2:
                t = (self.times[self.last] - self.times[self.skip]) / (self.last - self.skip)
                self.out.append(t)


def median(values):
    return float(np.median(values))


def ratio(a, b):
    """Median over repeats of the per-repeat ratio a / b."""
    return median([x / y for x, y in zip(a, b)])


def device_data(x, y, batch, steps):
    """A fresh iterable of `steps` batches of backend tensors on the default device."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        xs, ys = tf.constant(x[:batch]), tf.constant(y[:batch])
        return lambda: tf.data.Dataset.from_tensors((xs, ys)).repeat(steps)
    xs, ys = ops.convert_to_tensor(x[:batch]), ops.convert_to_tensor(y[:batch])
    return lambda: ((xs, ys) for _ in range(steps))


_NOT_LAUNCHED = ("parameter", "tuple", "get-tuple-element", "constant", "bitcast")


def jax_step_inputs(model, x, y):
    """`(state, data)` for calling JAX's stateless `model.train_step` directly."""
    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )
    return state, (ops.convert_to_tensor(x), ops.convert_to_tensor(y))


def jax_step_stats(model, x, y):
    """(bytes, ops) of one compiled train step: the bytes XLA assigns to it (temporaries +
    outputs + arguments), and the number of top-level operations of its entry computation
    (fusions, copies, dots...: about one kernel launch each on a GPU, where a step this small
    costs per launch; a CPU-side proxy for the GPU's launch count)."""
    import jax

    state, data = jax_step_inputs(model, x, y)
    compiled = jax.jit(model.train_step).lower(state, data).compile()
    stats = compiled.memory_analysis()
    size = None if stats is None else (
        stats.temp_size_in_bytes + stats.output_size_in_bytes + stats.argument_size_in_bytes)
    text = compiled.as_text()
    entry = text[text.index("\nENTRY"):]
    entry = entry[: entry.index("\n}")]
    kinds = [re.search(r"= \S+ ([\w-]+)\(", line) for line in entry.splitlines()[1:]]
    launches = sum(1 for k in kinds if k and k.group(1) not in _NOT_LAUNCHED)
    return size, launches


def jax_step_alone(model, x, y, calls=200):
    """Seconds per call of the compiled train step alone, called back to back with its own
    state threaded through (no `fit` loop, no logs read): the device's time per step where
    the device is the bottleneck, the dispatch's otherwise."""
    import jax

    state, data = jax_step_inputs(model, x, y)
    step = jax.jit(model.train_step)
    logs, state = step(state, data)
    jax.block_until_ready(state)
    t = time.perf_counter()
    for _ in range(calls):
        logs, state = step(state, data)
    jax.block_until_ready((logs, state))
    return (time.perf_counter() - t) / calls


def torch_step_calls(model, data, steps):
    """Per train step, in `fit`: (aten op calls, CUDA runtime calls that copy or synchronise)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.fit(data(), epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    counts = {e.key: e.count for e in prof.key_averages()}
    aten = sum(v for k, v in counts.items() if k.startswith("aten::"))
    sync = sum(v for k, v in counts.items() if "Memcpy" in k or "Synchronize" in k)
    return aten / steps, sync / steps


def gpu_peak_bytes(run):
    """Peak allocator bytes while `run()` executes, on a GPU; None elsewhere."""
    if BACKEND == "torch":
        import torch

        if not torch.cuda.is_available():
            return None
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        run()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    if BACKEND == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_logical_devices("GPU"):
            return None
        tf.config.experimental.reset_memory_stats("GPU:0")
        run()
        return tf.config.experimental.get_memory_info("GPU:0")["peak"]
    return None


def fmt_bytes(n):
    return "n/a" if n is None else f"{n / 2**20:8.2f} MiB"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--clock", choices=("auto", "wall", "cpu"), default="auto")
    parser.add_argument("--skip", type=int, default=4, help="train steps before steady timing")
    parser.add_argument("--model", choices=("mlp", "encoder"), default="mlp")
    parser.add_argument("--seq-len", type=int, default=128, help="encoder only")
    parser.add_argument("--raw", action="store_true", help="also print every repeat's steady times")
    parser.add_argument("--jit-compile", default="auto", type=lambda v: {"true": True, "false": False}.get(v, v),
                        help="compile(jit_compile=...): auto (Keras' default), true, false")
    parser.add_argument("--probe", action="store_true",
                        help="JAX: also time the compiled step alone; torch: count ops and copies per step")
    parser.add_argument("--sync-logs", action="store_true",
                        help="convert every step's logs in the step loop (as verbose=1 does)")
    args = parser.parse_args()
    use_cpu_clock = args.clock == "cpu" or (args.clock == "auto" and not gpu_visible())
    clock = time.process_time if use_cpu_clock else time.perf_counter
    b, steps, n_in, n_out = args.batch, args.steps, 64, 10
    rng = np.random.default_rng(0)
    if args.model == "encoder":
        x = rng.integers(0, 1000, (2 * b, args.seq_len)).astype("int32")
        net = lambda: build_encoder(args.width, args.seq_len, n_out)  # noqa: E731
    else:
        x = rng.normal(size=(2 * b, n_in)).astype("float32")
        net = lambda: build(args.width, n_in, n_out)  # noqa: E731
    y = rng.integers(0, n_out, 2 * b).astype("int32")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    rdrop = RDropModel(*net(), alpha=1.0)
    rdrop0 = RDropModel(*net(), alpha=0.0)
    hand = HandTiled(*net())
    plain = keras.Model(*net())
    quiet = RDropModel(*net(), alpha=1.0, log_consistency=False)
    hand_logged = HandTiledLogged(*net())
    for m in (rdrop, rdrop0, hand, plain, quiet, hand_logged):
        m.compile(keras.optimizers.SGD(1e-3), loss, jit_compile=args.jit_compile)
    data_b = device_data(x, y, b, steps)
    data_2b = device_data(x, y, 2 * b, steps)
    x_b, y_b = ops.convert_to_tensor(x[:b]), ops.convert_to_tensor(y[:b])

    steady = {}

    def fit(model, data):
        out = steady.setdefault(id(model), [])
        timer = SteadyTimer(min(args.skip, steps - 2), steps, clock, out, args.sync_logs)
        return lambda: model.fit(data(), epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False,
                                 callbacks=[timer])

    def evaluate(model):
        return lambda: model.evaluate(data_b(), steps=steps, verbose=0)

    def predict(model):
        return lambda: model.predict(((xs,) for xs, _ in data_b()) if BACKEND != "tensorflow"
                                     else data_b().map(lambda a, _: a), steps=steps, verbose=0)

    train_fns = [fit(rdrop, data_b), fit(hand, data_b), fit(plain, data_2b), fit(rdrop0, data_b)]
    train_fns += [fit(quiet, data_b), fit(hand_logged, data_b)]
    eval_fns = [evaluate(rdrop), evaluate(plain)]
    pred_fns = [predict(rdrop), predict(plain)]
    for fn in train_fns + eval_fns + pred_fns:  # compile everything
        fn()

    reps = args.repeats
    for out in steady.values():
        out.clear()  # compile runs
    t_rdrop, t_hand, t_plain2, t_rdrop0, t_quiet, t_logged = timed(train_fns, reps, clock)
    s_rdrop, s_hand, s_plain2, s_rdrop0, s_quiet, s_logged = (
        steady[id(m)] for m in (rdrop, hand, plain, rdrop0, quiet, hand_logged))
    e_rdrop, e_plain = timed(eval_fns, reps, clock)
    p_rdrop, p_plain = timed(pred_fns, reps, clock)

    if BACKEND == "jax":
        stats = [jax_step_stats(m, xs, ys) for m, xs, ys in
                 ((rdrop, x_b, y_b), (hand, x_b, y_b), (plain, x, y), (rdrop0, x_b, y_b))]
        mem = [s[0] for s in stats]
        mem_note = "XLA buffer assignment of the compiled step"
    else:
        one = lambda m, d: m.fit(d(), epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)  # noqa: E731
        mem = [gpu_peak_bytes(lambda: one(rdrop, data_b)), gpu_peak_bytes(lambda: one(hand, data_b)),
               gpu_peak_bytes(lambda: one(plain, data_2b))]
        mem_note = "allocator peak of one step (GPU only)"

    ms = lambda t: 1e3 * median(t) / steps  # noqa: E731
    print(f"backend={BACKEND} model={args.model} batch={b} steps={steps} width={args.width} repeats={reps} "
          f"clock={'process CPU time' if use_cpu_clock else 'wall'} jit_compile={args.jit_compile} "
          f"logs={'synchronised every step' if args.sync_logs else 'async where Keras allows'}")
    for label, (a, h, p2, a0, q, hl) in (("steady", (s_rdrop, s_hand, s_plain2, s_rdrop0, s_quiet, s_logged)),
                                         ("per fit", (t_rdrop, t_hand, t_plain2, t_rdrop0, t_quiet, t_logged))):
        div = 1 if label == "steady" else steps
        ms = lambda t: 1e3 * median(t) / div  # noqa: E731
        print(f"train step ({label:7s}) RDrop(B) {ms(a):7.3f} ms  hand-tiled(B) {ms(h):7.3f} ms  "
              f"plain(2B) {ms(p2):7.3f} ms  RDrop(alpha=0) {ms(a0):7.3f} ms")
        print(f"    RDrop / hand-tiled {ratio(a, h):.3f} (target <= 1.03 CPU, 1.02 GPU)   "
              f"RDrop / plain(2B) {ratio(a, p2):.3f}   RDrop(alpha=0) / hand-tiled {ratio(a0, h):.3f}")
        print(f"    same logs: RDrop(log_consistency=False) {ms(q):.3f} ms / hand-tiled {ratio(q, h):.3f}   "
              f"RDrop / hand-tiled + one logged scalar ({ms(hl):.3f} ms) {ratio(a, hl):.3f}   "
              f"one logged scalar: {ratio(hl, h):.3f}")
    if args.probe and BACKEND == "jax":
        alone = [[jax_step_alone(m, x_b, y_b) for m in (rdrop, hand, rdrop0)] for _ in range(5)]
        a, h, a0 = zip(*alone)
        print(f"probe (compiled step alone, wall) RDrop {1e3 * median(a):.3f} ms  hand-tiled {1e3 * median(h):.3f} ms"
              f"  RDrop(alpha=0) {1e3 * median(a0):.3f} ms   RDrop / hand-tiled {ratio(a, h):.3f}")
    if args.probe and BACKEND == "torch":
        calls = [torch_step_calls(m, data_b, steps) for m in (rdrop, hand, rdrop0, hand_logged, quiet)]
        print("probe (aten ops / copies+syncs per step) RDrop {} hand-tiled {} RDrop(alpha=0) {} "
              "hand-tiled+logged {} RDrop(log_consistency=False) {}".format(*[f"{a:.1f}/{c:.1f}" for a, c in calls]))
    if args.raw:
        runs = (("RDrop", s_rdrop), ("hand-tiled", s_hand), ("plain(2B)", s_plain2), ("RDrop(alpha=0)", s_rdrop0),
                ("RDrop(quiet)", s_quiet), ("hand-tiled+log", s_logged))
        for name, t in runs:
            print(f"    steady {name:15s} " + " ".join(f"{1e3 * v:.3f}" for v in t))
    ms = lambda t: 1e3 * median(t) / steps  # noqa: E731
    print(f"evaluate    RDrop(B) {ms(e_rdrop):7.3f} ms  plain(B) {ms(e_plain):7.3f} ms  "
          f"ratio {ratio(e_rdrop, e_plain):.3f} (target <= 1.05)")
    print(f"predict     RDrop(B) {ms(p_rdrop):7.3f} ms  plain(B) {ms(p_plain):7.3f} ms  "
          f"ratio {ratio(p_rdrop, p_plain):.3f} (target <= 1.05)")
    print(f"memory      RDrop(B) {fmt_bytes(mem[0])}  hand-tiled(B) {fmt_bytes(mem[1])}  "
          f"plain(2B) {fmt_bytes(mem[2])}  ({mem_note})")
    if BACKEND == "jax":
        n = [s[1] for s in stats]
        print(f"launches    RDrop(B) {n[0]}  hand-tiled(B) {n[1]}  plain(2B) {n[2]}  RDrop(alpha=0) {n[3]}  "
              "(top-level ops of the compiled step on this device)")


if __name__ == "__main__":
    main()
