"""Cost of the package's dropout layers against `keras.layers.Dropout`, same run.

Two tables, for the current KERAS_BACKEND:

1. Per call (eager) on a tiny tensor, (2, 8, 8, 4) by default: `layer(x, training=True)`
   outside any compiled function. Small layers are dispatch-bound on a GPU and torch
   is always eager, so this is the cost users of torch pay per layer and step.
2. Train step (compiled: `jit_compile="auto"`, XLA on TF and JAX, eager on torch):
   forward + backward of `Scale -> layer -> mse` through `train_on_batch`, where
   `Scale` is one trainable scalar so the gradient flows through the layer.

Inputs are backend tensors created once on the device: no host-to-device copy is
timed. Candidates are interleaved and each figure is the minimum over `--repeats`
rounds (noise from other processes only adds time); ratios are against
`keras.layers.Dropout(rate, seed=1)` measured in the same rounds. Also timed when
available: `torch.nn.Dropout` (torch), timm's `DropBlock2d` (torch, when timm
imports, else read out of a timm wheel: `--timm-wheel`), keras-cv's `DropBlock2D`
(TensorFlow, eager only: it cannot be traced under Keras 3.15). On CUDA every candidate is also run once under
`torch.cuda.set_sync_debug_mode("error")`, reporting device-to-host syncs.

torch runs with one intra-op thread by default (`--threads`): on a shared 2-core
machine torch's thread pool waits for a busy core inside every parallel kernel
(a tiny max-pool measured 7.8 ms with 2 threads, 5 us with 1).

    KERAS_BACKEND=torch python benchmarks/bench_layers.py                    # both tables
    KERAS_BACKEND=jax python benchmarks/bench_layers.py --shape 64 56 56 256 --no-per-call
    KERAS_BACKEND=torch python benchmarks/bench_layers.py --data-format channels_first
"""

import argparse
import glob
import inspect
import os
import platform
import time
import types
import zipfile

import keras
import numpy as np

import keras_dropouts as kd

BASE = "keras.layers.Dropout"


class Scale(keras.layers.Layer):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(), initializer="ones")

    def call(self, x):
        return x * keras.ops.cast(self.w, x.dtype)


def candidates(rate, block, data_format, timm_wheel=None):
    """name -> factory of a Keras layer (or a raw torch module, marked `raw`)."""
    df = {"data_format": data_format}
    out = {
        BASE: lambda: keras.layers.Dropout(rate, seed=1),
        "keras.layers.Dropout (unseeded)": lambda: keras.layers.Dropout(rate),
        "ScheduledDropout": lambda: kd.layers.ScheduledDropout(rate, seed=1),
        "DropPath": lambda: kd.layers.DropPath(rate, seed=1),
        "DropBlock2D (per channel)": lambda: kd.layers.DropBlock2D(rate, block, seed=1, **df),
        "DropBlock2D (shared mask)": lambda: kd.layers.DropBlock2D(
            rate, block, seed=1, per_channel=False, **df
        ),
        "ProbDropBlock2D (per channel)": lambda: kd.layers.ProbDropBlock2D(
            rate, block, seed=1, **df
        ),
        "ProbDropBlock2D (shared mask)": lambda: kd.layers.ProbDropBlock2D(
            rate, block, seed=1, per_channel=False, **df
        ),
    }
    if keras.backend.backend() == "torch":
        import torch

        out["torch.nn.Dropout"] = lambda: torch.nn.Dropout(rate)
        timm = timm_drop_block(timm_wheel)
        if timm is None:
            print("timm does not import here and no timm wheel was found (--timm-wheel): no timm rows")
        elif data_format != "channels_first":
            print("timm rows need --data-format channels_first (timm is NCHW only)")
        else:
            out.update(timm_rows(timm, rate, block))
    return out


def timm_drop_block(wheel=None):
    """timm's `DropBlock2d` class: from the installed package, else from `layers/drop.py`
    alone, read out of the timm wheel `wheel` (a glob; that file imports only torch), for
    a torch build beside which timm's package (its torchvision) does not import."""
    try:
        from timm.layers import DropBlock2d

        return DropBlock2d
    except Exception:  # not installed, or its torchvision does not import
        pass
    paths = sorted(glob.glob(wheel)) if wheel else []
    if not paths:
        return None
    with zipfile.ZipFile(paths[-1]) as archive:
        source = archive.read("timm/layers/drop.py")
    module = types.ModuleType("timm_layers_drop")
    exec(compile(source, f"{paths[-1]}/timm/layers/drop.py", "exec"), module.__dict__)
    print(f"timm's DropBlock2d read from {paths[-1]} (layers/drop.py alone)")
    return module.DropBlock2d


def timm_rows(timm, rate, block):
    """timm's DropBlock2d with the mask shared by the channels (the paper's and timm's
    default) and, where timm has the option (`couple_channels`, timm >= 1.0.23), one
    mask per channel, the same two variants as the package's rows; older timm: its
    `fast` and `fast=False` forms."""
    if "couple_channels" in inspect.signature(timm.__init__).parameters:
        return {
            "timm DropBlock2d (shared mask)": lambda: timm(drop_prob=rate, block_size=block),
            "timm DropBlock2d (per channel)": lambda: timm(
                drop_prob=rate, block_size=block, couple_channels=False
            ),
        }
    return {
        "timm DropBlock2d": lambda: timm(drop_prob=rate, block_size=block),
        "timm DropBlock2d (fast=False)": lambda: timm(drop_prob=rate, block_size=block, fast=False),
    }


def keras_cv_drop_block(rate, block):
    if keras.backend.backend() != "tensorflow":
        return None
    try:
        import keras_cv
    except Exception:  # not installed, or incompatible with this Keras
        return None
    return lambda: keras_cv.layers.DropBlock2D(rate=rate, block_size=block, seed=1)


def is_torch_module(layer):
    if keras.backend.backend() != "torch" or isinstance(layer, keras.layers.Layer):
        return False
    import torch

    return isinstance(layer, torch.nn.Module)


def sync(value=None):
    """Waits for queued device work (timing stops when the work is done)."""
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    elif backend == "jax" and hasattr(value, "block_until_ready"):
        value.block_until_ready()


def per_call_fn(layer, x):
    if is_torch_module(layer):
        layer.train()
        return lambda: layer(x)
    return lambda: layer(x, training=True)


def train_step_fn(layer, x, y):
    """A compiled train step of `Scale -> layer -> mse` on device tensors."""
    if is_torch_module(layer):
        layer.train()
        layer = keras.layers.TorchModuleWrapper(layer, output_shape=tuple(x.shape))
    inputs = keras.Input(tuple(x.shape[1:]), batch_size=x.shape[0])
    model = keras.Model(inputs, layer(Scale()(inputs), training=True))
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse", jit_compile="auto")
    return lambda: model.train_on_batch(x, y)  # returns NumPy logs: a sync per step


def eager_tf_step_fn(layer, x):
    """Eager forward + backward (keras-cv's DropBlock2D cannot be traced by
    tf.function under Keras 3.15: it calls int() on a symbolic shape)."""
    import tensorflow as tf

    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_mean(tf.square(layer(x, training=True)))
        return tape.gradient(loss, x)

    return step


def interleaved_minimum(fns, calls, repeats, warmup=2):
    """Seconds per call of each fn: minimum over `repeats` rounds of `calls` calls."""
    for fn in fns.values():
        for _ in range(warmup):
            out = fn()
        sync(out)
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                out = fn()
            sync(out)
            best[name] = min(best[name], (time.perf_counter() - start) / calls)
    return best


def build_all(factories, make_fn):
    fns = {}
    for name, make in factories.items():
        try:
            fns[name] = make_fn(make())
        except Exception as e:  # report, keep measuring the others
            print(f"{name}: failed ({type(e).__name__}: {str(e)[:160]})")
    return fns


def device_tensor(shape, data_format, seed=0):
    x = np.random.default_rng(seed).random(shape, dtype=np.float32)
    if data_format == "channels_first":
        x = np.moveaxis(x, -1, 1).copy()
    return keras.ops.convert_to_tensor(x)


def print_table(title, times, unit_scale, unit):
    base = times[BASE]
    print(f"\n{title}")
    print(f"| layer | {unit} | x {BASE} |")
    print("|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {t * unit_scale:.1f} | {t / base:.2f} |")


def check_syncs(factories, x):
    """On CUDA: which candidates synchronise the host with the device per call."""
    import torch

    results = {}
    for name, make in factories.items():
        layer = make()
        fn = per_call_fn(layer, x)
        fn()  # first call: builds, caches per-shape tables
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            fn()
            results[name] = "none"
        except RuntimeError as e:
            results[name] = f"sync ({str(e)[:60]})"
        finally:
            torch.cuda.set_sync_debug_mode("default")
    print("\nDevice-to-host syncs per call (CUDA, torch.cuda.set_sync_debug_mode):")
    for name, r in results.items():
        print(f"  {name}: {r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=[16, 56, 56, 64],
                        help="train-step input, (batch, height, width, channels)")
    parser.add_argument("--tiny", type=int, nargs=4, default=[2, 8, 8, 4],
                        help="per-call input, (batch, height, width, channels)")
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--block", type=int, default=7)
    parser.add_argument("--tiny-block", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="train steps per round")
    parser.add_argument("--calls", type=int, default=100, help="eager calls per round")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved rounds")
    parser.add_argument("--data-format", default="channels_last",
                        choices=["channels_last", "channels_first"])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (0: torch's default)")
    parser.add_argument("--timm-wheel", default=".whl/timm-*.whl",
                        help="where timm does not import: a timm wheel (glob) to read DropBlock2d from")
    parser.add_argument("--no-per-call", action="store_true")
    parser.add_argument("--no-train-step", action="store_true")
    args = parser.parse_args()

    backend = keras.backend.backend()
    device = "cpu"
    if backend == "torch":
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    elif backend == "jax":
        import jax

        device = str(jax.devices()[0].device_kind)
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        device = gpus[0].name if gpus else "cpu"
    print(
        f"backend={backend} keras={keras.__version__} device={device} "
        f"machine={platform.machine()} cpus={os.cpu_count()} data_format={args.data_format} "
        f"rate={args.rate} repeats={args.repeats}"
        + (f" torch_threads={args.threads or 'default'}" if backend == "torch" else "")
    )

    if not args.no_per_call:
        x = device_tensor(args.tiny, args.data_format)
        factories = candidates(args.rate, args.tiny_block, args.data_format, args.timm_wheel)
        fns = build_all(factories, lambda layer: per_call_fn(layer, x))
        times = interleaved_minimum(fns, args.calls, args.repeats)
        print_table(
            f"Per call, eager, input {tuple(x.shape)}, block {args.tiny_block}",
            times, 1e6, "us/call",
        )
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                check_syncs(factories, x)

    if not args.no_train_step:
        x = device_tensor(args.shape, args.data_format)
        y = keras.ops.zeros_like(x)
        factories = candidates(args.rate, args.block, args.data_format, args.timm_wheel)
        fns = build_all(factories, lambda layer: train_step_fn(layer, x, y))
        kcv = keras_cv_drop_block(args.rate, args.block)
        if kcv is not None and args.data_format == "channels_last":
            fns["eager: DropBlock2D (per channel)"] = eager_tf_step_fn(
                kd.layers.DropBlock2D(args.rate, args.block, seed=1), x
            )
            fns["eager: keras_cv DropBlock2D"] = eager_tf_step_fn(kcv(), x)
        times = interleaved_minimum(fns, args.steps, max(3, args.repeats // 3))
        mode = "eager" if backend == "torch" else 'jit_compile="auto"'
        print_table(
            f"Train step (forward + backward, {mode}), input {tuple(x.shape)}, "
            f"block {args.block}",
            times, 1e3, "ms/step",
        )


if __name__ == "__main__":
    main()
