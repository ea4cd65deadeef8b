"""Multi-process data parallelism with JAX: N local processes train one model together.

One command starts N processes on this machine (127.0.0.1), each with its own host
(CPU) devices; `keras.distribution.DataParallel` spans every device of every process.
They train an `RDropModel` with DropBlock2D, ProbDropBlock2D, DropPath and
ScheduledDropout under an in-step `LinearRamp` (`DropoutScheduler`). Keras shards the
`tf.data` input over the processes (each reads its part of every global batch); the
callback needs no `steps_per_epoch=`, it takes the length of the dataset before
sharding. Every process prints the same losses and rates, and the masks differ on every
device (JAX draws each mask for the whole global batch).

    python examples/multi_process.py                          # 2 processes x 2 devices
    python examples/multi_process.py --processes 4 --devices-per-process 1 --epochs 3

On real hosts, run the worker once per host instead of this launcher, with the first
host's address as the coordinator and each host's own index (and no forced host
devices: each process uses its accelerators):

    python examples/multi_process.py --worker --coordinator 10.0.0.1:1234 \\
        --processes 2 --process-id 0      # on host 0; --process-id 1 on host 1

Needs JAX and TensorFlow (for `tf.data`); the processes use the JAX backend whatever
KERAS_BACKEND says.
"""

import argparse
import os
import socket
import subprocess
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--devices-per-process", type=int, default=2, help="forced host (CPU) devices")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16, help="global batch size")
    p.add_argument("--rate", type=float, default=0.2, help="end rate of the LinearRamp")
    p.add_argument("--timeout", type=float, default=600, help="seconds before the launcher stops the run")
    p.add_argument("--worker", action="store_true", help="run one process (the launcher passes it)")
    p.add_argument("--process-id", type=int, default=0)
    p.add_argument("--coordinator", default=None, help="host:port of process 0 (worker only)")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- the model


def build_model(rate=0.1):
    """A small image classifier with every kind of package drop layer, wrapped in R-Drop."""
    import keras

    import keras_dropouts as kd

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = kd.layers.DropBlock2D(rate, 3, seed=1, name="drop_block")(x)
    x = kd.layers.ProbDropBlock2D(rate, 3, seed=2, name="prob_drop_block")(x)
    branch = keras.layers.Conv2D(8, 3, padding="same")(x)
    branch = kd.layers.DropPath(rate, seed=3, name="drop_path")(branch)
    x = keras.layers.Add()([x, branch])
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    x = kd.layers.ScheduledDropout(rate, seed=4, name="scheduled_dropout")(x)
    outputs = keras.layers.Dense(4)(x)
    return kd.models.RDropModel.from_model(keras.Model(inputs, outputs), alpha=0.5)


def synthetic_images(samples, seed=0):
    """`(x, y)`: random 8x8x3 images, labelled by the sign of two fixed projections."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, 8, 8, 3)).astype("float32")
    w = rng.normal(size=(2, 8 * 8 * 3)).astype("float32")
    z = x.reshape(samples, -1) @ w.T
    return x, ((z[:, 0] > 0) * 2 + (z[:, 1] > 0)).astype("int32")


# ------------------------------------------------------------------------------ a worker


def worker(args):
    import jax

    # JAX's CPU collectives (JAX 0.10 uses gloo by default; older versions need this).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    import keras
    import tensorflow as tf

    import keras_dropouts as kd

    keras.distribution.initialize(args.coordinator, args.processes, args.process_id)
    keras.utils.set_random_seed(0)  # the same initial weights and seeds on every process
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))

    x, y = synthetic_images(args.samples)
    # The global dataset: Keras gives each process its part of every global batch.
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size, drop_remainder=True)
    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    ramp = kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(args.rate))  # no steps_per_epoch
    history = model.fit(data, epochs=args.epochs, callbacks=[ramp], shuffle=False, verbose=0)
    tag = f"process {args.process_id}/{args.processes} ({len(jax.local_devices())} of {len(devices)} devices)"
    for epoch in range(args.epochs):
        logs = {k: round(float(v[epoch]), 6) for k, v in history.history.items()}
        print(f"{tag}: epoch {epoch + 1} {logs}", flush=True)
    return 0


# ---------------------------------------------------------------------------- a launcher


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(args):
    """Starts `args.processes` workers on 127.0.0.1 and waits for all (or stops all)."""
    coordinator = f"127.0.0.1:{_free_port()}"
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices_per_process}"
    common = [
        "--worker", "--coordinator", coordinator, "--processes", str(args.processes),
        "--epochs", str(args.epochs), "--samples", str(args.samples),
        "--batch-size", str(args.batch_size), "--rate", str(args.rate),
    ]
    procs = [
        subprocess.Popen([sys.executable, os.path.abspath(__file__), *common, "--process-id", str(i)], env=env)
        for i in range(args.processes)
    ]
    deadline = time.monotonic() + args.timeout
    try:
        # Until all are done; a failed process leaves its peers waiting in a collective.
        while None in (codes := [p.poll() for p in procs]) and not any(codes):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        running = [p for p in procs if p.poll() is None]
        if running:
            print(f"multi_process: stopping {len(running)} process(es)", file=sys.stderr)
        for p in running:
            p.kill()
            p.wait()
    return max(abs(p.returncode) for p in procs)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        if not args.coordinator:
            raise SystemExit("--worker needs --coordinator host:port (process 0's address)")
        return worker(args)
    devices = args.processes * args.devices_per_process
    if args.batch_size % devices or not args.batch_size <= args.samples:
        raise SystemExit(
            f"--batch-size must be a multiple of the {devices} devices and at most --samples"
        )
    return launch(args)


if __name__ == "__main__":
    sys.exit(main())
