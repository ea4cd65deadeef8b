"""Old package against new package, side by side in one process (a restructuring check).

The package at `--old` (a git commit, default 3f8bb36: the tree before the backend
restructuring) is extracted with `git archive` into a temporary directory, its
directory renamed to `keras_dropouts_old`, and every occurrence of `keras_dropouts` in
its files rewritten to `keras_dropouts_old`, so that its absolute imports resolve to
itself and its `register_keras_serializable(package=...)` names do not clash with the
new package's. That directory goes on `sys.path`; `keras_dropouts_old` is then imported
next to `keras_dropouts` (the working tree of this repository). Both run on the backend
chosen by KERAS_BACKEND; run each backend in its own process.

Cases (every one built three times: `old`, `new`, and `old2`, a second, independent
copy of the old configuration that serves as an A/A control):

  * call:<layer>  eager per-call cost: `layer(x, training=True)` N times
    (`--calls`) on a (8, 28, 28, 64) float32 input (channels_last on every backend),
    for DropBlock2D(0.1, 7) (per channel), ProbDropBlock2D(0.1, 7), ScheduledDropout(0.1)
    and DropPath(0.1); one element of the last output is converted to NumPy at the end
    (device sync). On torch, which runs eagerly in training too, these are the rows
    that matter most.
  * step:<layer>  compiled train step: Input(28, 28, 64) -> layer -> GlobalAveragePooling2D
    -> Dense(10), SGD, sparse categorical cross-entropy, `jit_compile=True` on JAX and
    TensorFlow (XLA), eager on torch; `train_on_batch` N times (`--steps`) on device
    tensors (batch 8), for DropBlock2D and ScheduledDropout.
  * rdrop  `RDropModel.from_model(mlp, alpha=1.0)`, MLP Input(64) -> Dense(256, relu)
    -> Dropout(0.1) -> Dense(256, relu) -> Dropout(0.1) -> Dense(10), batch 128,
    `train_on_batch` N times (`--steps`), `jit_compile="auto"` (Keras' default).
  * schedule  20 x (Dense(128, relu) + ScheduledDropout(0.05)) -> Dense(10), batch 128,
    one whole `fit` of 20 steps per repeat (a generator yielding the same device
    tensors, `steps_per_epoch=20`) with `DropoutScheduler(LinearRamp(0.2,
    end_step=10**7))`, the schedule evaluated inside the compiled step;
    `jit_compile="auto"`. One callback per model, reused by every `fit`.

Sizes: N (calls or steps per run) is calibrated per case unless `--calls` / `--steps`
fix it: one run of the old configuration times 3 units, and N is chosen so that a run
takes about `--target-s` (0.25 s), clamped to `--n-range` (10-50). The `schedule` case
is always one `fit` per run. The chosen N is printed and written to the JSON; with the
defaults a backend takes 2-4 minutes on a 2-core CPU.

Method: every configuration is run twice with N=1 before timing (compiles, warms
caches), then once more with the chosen N. Then `--repeats` paired repeats (use at
least 15; the default): in each, old, new and old2 are timed back to
back, in an order rotated from repeat to repeat (old-new-old2, new-old2-old,
old2-old-new) so that no configuration always runs first or last. Per repeat the
ratios new/old and old2/old are formed; the table gives the median and the 25-75%
range of each over the repeats. old2/old is the noise of this measurement: a new/old
median inside the A/A 25-75% range (column "new/old median in A/A range") cannot be told from noise. Times
are wall clock (`--clock cpu`: the process's CPU time) with `gc.collect()` before each
timed run; absolute times are printed for orientation only.

Usage:
    KERAS_BACKEND=torch python benchmarks/bench_old_new.py
    KERAS_BACKEND=jax python benchmarks/bench_old_new.py --json /tmp/old_new_jax.json
    KERAS_BACKEND=tensorflow python benchmarks/bench_old_new.py --old 3f8bb36 --repeats 15
    smoke test:  ... bench_old_new.py --repeats 3 --calls 3 --steps 3 --cases call:DropPath rdrop
`--json PATH` writes every ratio, the medians and the raw per-run times.
"""

import argparse
import gc
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "keras_dropouts"
OLD_PACKAGE = "keras_dropouts_old"
IMAGE_SHAPE = (8, 28, 28, 64)
MLP_BATCH = 128
SCHEDULE_LAYERS = 20
SCHEDULE_WIDTH = 128
SCHEDULE_STEPS = 20
ORDERS = (("old", "new", "old2"), ("new", "old2", "old"), ("old2", "old", "new"))


# --------------------------------------------------------------------------- old tree


def git(*args):
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True).stdout


def extract_old(commit, dest):
    """Writes the package at `commit` to dest/keras_dropouts_old, every name rewritten."""
    data = git("archive", "--format=tar", commit, PACKAGE)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(dest, **kwargs)
    root = Path(dest) / OLD_PACKAGE
    (Path(dest) / PACKAGE).rename(root)
    rewritten = 0
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if PACKAGE in text:
            path.write_text(text.replace(PACKAGE, OLD_PACKAGE), encoding="utf-8")
            rewritten += 1
    return root, rewritten


def import_both(commit, dest):
    import importlib

    root, rewritten = extract_old(commit, dest)
    sys.path.insert(0, str(REPO))
    sys.path.insert(1, str(dest))
    new = importlib.import_module(PACKAGE)
    old = importlib.import_module(OLD_PACKAGE)
    for mod, where in ((new, REPO / PACKAGE), (old, root)):
        if Path(mod.__file__).resolve().parent != where.resolve():
            raise RuntimeError(f"{mod.__name__} imported from {mod.__file__}, expected {where}")
    leaked = sorted(
        name for name, mod in sys.modules.items()
        if name.startswith(OLD_PACKAGE) and not str(getattr(mod, "__file__", "") or "").startswith(str(dest))
    )
    if leaked:
        raise RuntimeError(f"old modules loaded from outside {dest}: {leaked}")
    for sub in ("layers", "models", "callbacks", "schedules"):
        importlib.import_module(f"{PACKAGE}.{sub}")
        importlib.import_module(f"{OLD_PACKAGE}.{sub}")
    return old, new, rewritten


# --------------------------------------------------------------------------- cases


def sync(tensor):
    from keras import ops

    return ops.convert_to_numpy(ops.reshape(tensor, (-1,))[:1])


def image_layer(pkg, name):
    layers = pkg.layers
    if name == "DropBlock2D":
        return layers.DropBlock2D(0.1, 7)
    if name == "ProbDropBlock2D":
        return layers.ProbDropBlock2D(0.1, 7)
    if name == "ScheduledDropout":
        return layers.ScheduledDropout(0.1)
    if name == "DropPath":
        return layers.DropPath(0.1)
    raise ValueError(name)


def make_call_case(name, data):
    def make(pkg):
        layer = image_layer(pkg, name)
        x = data["image_x"]

        def run(n):
            y = None
            for _ in range(n):
                y = layer(x, training=True)
            sync(y)

        return run

    return make


def make_step_case(name, data, backend):
    import keras

    jit = backend in ("jax", "tensorflow")

    def make(pkg):
        inputs = keras.Input(IMAGE_SHAPE[1:])
        h = image_layer(pkg, name)(inputs)
        h = keras.layers.GlobalAveragePooling2D()(h)
        model = keras.Model(inputs, keras.layers.Dense(10)(h))
        model.compile(
            optimizer=keras.optimizers.SGD(0.01),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
        x, y = data["image_x"], data["image_y"]

        def run(n):
            for _ in range(n):
                model.train_on_batch(x, y)  # returns host floats: synced every step

        return run

    return make


def make_rdrop_case(data):
    import keras

    def make(pkg):
        inputs = keras.Input((64,))
        h = keras.layers.Dense(256, activation="relu")(inputs)
        h = keras.layers.Dropout(0.1)(h)
        h = keras.layers.Dense(256, activation="relu")(h)
        h = keras.layers.Dropout(0.1)(h)
        mlp = keras.Model(inputs, keras.layers.Dense(10)(h))
        model = pkg.models.RDropModel.from_model(mlp, alpha=1.0)
        model.compile(
            optimizer=keras.optimizers.SGD(0.01),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        x, y = data["mlp_x"], data["mlp_y"]

        def run(n):
            for _ in range(n):
                model.train_on_batch(x, y)

        return run

    return make


def make_schedule_case(data):
    import keras

    def make(pkg):
        inputs = keras.Input((SCHEDULE_WIDTH,))
        h = inputs
        for _ in range(SCHEDULE_LAYERS):
            h = keras.layers.Dense(SCHEDULE_WIDTH, activation="relu")(h)
            h = pkg.layers.ScheduledDropout(0.05)(h)
        model = keras.Model(inputs, keras.layers.Dense(10)(h))
        model.compile(
            optimizer=keras.optimizers.SGD(0.01),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        callback = pkg.callbacks.DropoutScheduler(pkg.schedules.LinearRamp(0.2, end_step=10**7))
        x, y = data["sched_x"], data["sched_y"]

        def batches():
            while True:
                yield x, y

        def run(n):
            for _ in range(n):
                model.fit(batches(), steps_per_epoch=SCHEDULE_STEPS, epochs=1, verbose=0, callbacks=[callback])

        return run

    return make


def make_data():
    import keras
    from keras import ops

    rng = __import__("numpy").random.default_rng(0)

    def t(a):
        return ops.convert_to_tensor(a)

    return {
        "image_x": t(rng.normal(size=IMAGE_SHAPE).astype("float32")),
        "image_y": t(rng.integers(0, 10, size=IMAGE_SHAPE[0]).astype("int32")),
        "mlp_x": t(rng.normal(size=(MLP_BATCH, 64)).astype("float32")),
        "mlp_y": t(rng.integers(0, 10, size=MLP_BATCH).astype("int32")),
        "sched_x": t(rng.normal(size=(MLP_BATCH, SCHEDULE_WIDTH)).astype("float32")),
        "sched_y": t(rng.integers(0, 10, size=MLP_BATCH).astype("int32")),
        "backend": keras.backend.backend(),
    }


def all_cases(data, calls, steps):
    """name -> (make(pkg) -> run(n), unit, n or None: None = calibrated)."""
    backend = data["backend"]
    cases = {}
    for name in ("DropBlock2D", "ProbDropBlock2D", "ScheduledDropout", "DropPath"):
        cases[f"call:{name}"] = (make_call_case(name, data), "calls", calls)
    for name in ("DropBlock2D", "ScheduledDropout"):
        cases[f"step:{name}"] = (make_step_case(name, data, backend), "train_on_batch", steps)
    cases["rdrop"] = (make_rdrop_case(data), "train_on_batch", steps)
    cases["schedule"] = (make_schedule_case(data), f"fit of {SCHEDULE_STEPS} steps", 1)
    return cases


# --------------------------------------------------------------------------- timing


def quartiles(values):
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": statistics.median(values), "q25": q1, "q75": q3}


def measure(make, old, new, repeats, clock, n, target_s, n_range):
    """Times old, new and old2 (a second old copy) `repeats` times, n units per run.

    n None: calibrated on the old configuration so that one run takes about
    `target_s`, clamped to `n_range`.
    """
    runs = {"old": make(old), "new": make(new), "old2": make(old)}
    for run in runs.values():  # warm-up: compile (first call), then once more
        run(1)
        run(1)
    if n is None:
        probe = 3
        start = time.perf_counter()
        runs["old"](probe)
        per_unit = (time.perf_counter() - start) / probe
        n = int(min(max(round(target_s / per_unit), n_range[0]), n_range[1]))
    for run in runs.values():
        run(n)
    times = {key: [] for key in runs}
    for r in range(repeats):
        for key in ORDERS[r % len(ORDERS)]:
            gc.collect()
            start = clock()
            runs[key](n)
            times[key].append(clock() - start)
    new_old = [t_new / t_old for t_new, t_old in zip(times["new"], times["old"])]
    aa = [t_old2 / t_old for t_old2, t_old in zip(times["old2"], times["old"])]
    result = {
        "n": n,
        "new_over_old": quartiles(new_old),
        "old2_over_old": quartiles(aa),
        "ratios": {"new_over_old": new_old, "old2_over_old": aa},
        "median_ms_per_unit": {key: 1e3 * statistics.median(v) / n for key, v in times.items()},
        "raw_s": times,
    }
    aa_q = result["old2_over_old"]
    result["within_aa"] = aa_q["q25"] <= result["new_over_old"]["median"] <= aa_q["q75"]
    return result


def fmt(q):
    return f"{q['median']:.3f} [{q['q25']:.3f}-{q['q75']:.3f}]"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default="3f8bb36", help="git commit of the old package (default 3f8bb36)")
    parser.add_argument("--repeats", type=int, default=15, help="paired repeats per case (default 15)")
    parser.add_argument("--calls", type=int, default=None,
                        help="eager layer calls per run (default: calibrated, see --target-s)")
    parser.add_argument("--steps", type=int, default=None,
                        help="train_on_batch steps per run (default: calibrated, see --target-s)")
    parser.add_argument("--target-s", type=float, default=0.25,
                        help="calibration: N such that one run of the old configuration takes about this long")
    parser.add_argument("--n-range", type=int, nargs=2, default=(10, 50), metavar=("MIN", "MAX"),
                        help="calibrated N is clamped to this range (default 10 50)")
    parser.add_argument("--cases", nargs="*", default=None, help="only these cases (names as in the table)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--json", default=None, help="write the results to this path")
    args = parser.parse_args()

    commit = git("rev-parse", "--short", args.old).decode().strip()
    # the new package is the working tree as imported now: record HEAD and local changes at start
    head = git("rev-parse", "--short", "HEAD").decode().strip()
    dirty = git("status", "--porcelain", "--", PACKAGE).decode().split("\n")
    dirty = [line for line in dirty if line.strip()]
    import keras

    backend = keras.backend.backend()
    calls = args.calls
    steps = args.steps
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    with tempfile.TemporaryDirectory(prefix="bench_old_new_") as tmp:
        old, new, rewritten = import_both(commit, tmp)
        data = make_data()
        cases = all_cases(data, calls, steps)
        names = args.cases or list(cases)
        unknown = sorted(set(names) - set(cases))
        if unknown:
            parser.error(f"unknown cases {unknown}; known: {list(cases)}")

        versions = {"python": platform.python_version(), "keras": keras.__version__}
        try:
            backend_module = __import__({"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend])
            versions[backend] = backend_module.__version__
        except (KeyError, ImportError):
            pass
        print(f"backend {backend}; old = {OLD_PACKAGE} from {commit} ({rewritten} files rewritten), "
              f"new = {PACKAGE} from {new.__file__} (HEAD {head}, {len(dirty)} changed files in {PACKAGE}/)")
        print(f"versions {versions}; cpus {os.cpu_count()}; clock {args.clock}; repeats {args.repeats}")
        sizing = "fixed" if calls and steps else f"calibrated to ~{args.target_s} s per run, N in {list(args.n_range)}"
        print(f"sizes: call input {IMAGE_SHAPE} float32, N calls per run ({calls or 'calibrated'}); "
              f"step input {IMAGE_SHAPE}, N train_on_batch per run ({steps or 'calibrated'}), "
              f"jit_compile={backend in ('jax', 'tensorflow')}; rdrop MLP 64-256-256-10, batch {MLP_BATCH}, "
              f"N train_on_batch per run ({steps or 'calibrated'}); schedule {SCHEDULE_LAYERS} x "
              f"(Dense({SCHEDULE_WIDTH}) + ScheduledDropout(0.05)), batch {MLP_BATCH}, one fit of "
              f"{SCHEDULE_STEPS} steps per run; N: {sizing}", flush=True)

        results = {}
        started = time.perf_counter()
        for name in names:
            make, unit, n = cases[name]
            t0 = time.perf_counter()
            r = measure(make, old, new, args.repeats, clock, n, args.target_s, args.n_range)
            r["unit"] = unit
            results[name] = r
            ms = r["median_ms_per_unit"]
            print(f"  {name:22s} N={r['n']:<3d} new/old {fmt(r['new_over_old'])}  A/A {fmt(r['old2_over_old'])}  "
                  f"old {ms['old']:.2f} / new {ms['new']:.2f} / old2 {ms['old2']:.2f} ms per {unit} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        total = time.perf_counter() - started

    print(f"\n{backend}: old ({commit}) vs new, median [25-75%] of per-repeat ratios over {args.repeats} "
          f"paired repeats, {args.clock} clock, {total:.0f} s in all")
    print("| case | N per run | new/old | A/A old2/old | new/old median in A/A range | old / new per unit |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        ms = r["median_ms_per_unit"]
        print(f"| {name} | {r['n']} x {r['unit']} | {fmt(r['new_over_old'])} | {fmt(r['old2_over_old'])} | "
              f"{'yes' if r['within_aa'] else '**no**'} | {ms['old']:.2f} / {ms['new']:.2f} ms |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({
                "backend": backend, "old_commit": commit, "head": head, "package_changes": dirty,
                "versions": versions, "cpus": os.cpu_count(), "clock": args.clock, "repeats": args.repeats,
                "target_s": args.target_s, "n_range": list(args.n_range), "seconds": total, "cases": results,
            }, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
