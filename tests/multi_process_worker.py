"""One process of the JAX multi-process tests (tests/test_multi_process.py).

Started by `tests/multi_process_harness.py`, never collected by pytest. With
`--processes N > 1` it joins the others on 127.0.0.1 (JAX's CPU collectives over gloo)
and trains under `keras.distribution.DataParallel` over every device of every process;
with `--processes 1` it is the single-process reference with the same global batch.
It writes a JSON report to `--out`:

- `runs`: for each distribution (`--distributions`), `steps`, `losses` (after every
  batch), `history`, `rates` (the scheduled rate of each layer after every batch),
  `evaluate` (the loss of the trained model, `training=False`); for `data_parallel` also
- `masks`: for each dropout layer, the keep pattern (hex of packed bits) of each row of
  a global batch of identical samples that this process's devices hold, keyed by the
  row's global index; `row_devices`: the device (global id) of each of these rows.
"""

import argparse
import json
import os
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--devices", type=int, default=2, help="host devices per process")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--rate", type=float, default=0.3, help="end rate of the LinearRamp")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--distributions", default="data_parallel",
        help="comma-separated, run one after the other: data_parallel (a 1D mesh over every "
        "device), model_parallel (a 2 x N/2 batch x model mesh; Dense kernels sharded)",
    )
    parser.add_argument(
        "--input", choices=("tf.data", "numpy"), default="tf.data",
        help="tf.data: the global dataset, sharded by Keras; numpy (no TensorFlow): each "
        "process passes its own rows of every global batch",
    )
    return parser.parse_args(argv)


GLOBAL_BATCH = 8
SAMPLES = 48  # 6 global batches per epoch
PROBE_BATCH = 64  # 16 identical samples per device on 4 devices
SEED = 1234


def start(args):
    """Sets the host devices, then (several processes) joins the others."""
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"
    import jax

    if args.processes > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        import keras

        keras.distribution.initialize(f"127.0.0.1:{args.port}", args.processes, args.process_id)


def build_model():
    """The model of examples/multi_process.py (names its four drop layers as below)."""
    from multi_process_harness import load_example  # this script's folder is on sys.path

    return load_example().build_model(rate=0.1)


DROP_LAYERS = ("drop_block", "prob_drop_block", "drop_path", "scheduled_dropout")


def data(args):
    """`fit`'s data arguments: the same global batches in every mode."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(SAMPLES, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 4, size=(SAMPLES,)).astype("int32")
    if args.input == "numpy":
        # This process's rows of every global batch (Keras puts them on its devices).
        local = GLOBAL_BATCH // args.processes

        def rows(a):
            a = a.reshape((SAMPLES // GLOBAL_BATCH, args.processes, local) + a.shape[1:])
            return a[:, args.process_id].reshape((-1,) + a.shape[3:])

        return {"x": rows(x), "y": rows(y), "batch_size": local, "shuffle": False}
    import tensorflow as tf

    return {"x": tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH), "shuffle": False}


class Recorder:
    """Keras callback (made in `train`): the loss and each scheduled rate after every batch."""

    @staticmethod
    def make(layers):
        import keras

        class _Recorder(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.losses, self.rates = [], []

            def on_train_batch_end(self, batch, logs=None):
                self.losses.append(float(logs["loss"]))
                _ = self.model  # syncs the JAX state
                self.rates.append([layer.rate for layer in layers])

        return _Recorder()


def train(args, model):
    import keras

    import keras_dropouts as kd

    model.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    layers = [_find(model, name) for name in DROP_LAYERS]
    recorder = Recorder.make(layers)
    # No `steps_per_epoch=`: the sharded input's length is unknown to TF (issue 22 item 9).
    scheduler = kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(args.rate))
    history = model.fit(**data(args), epochs=args.epochs, callbacks=[scheduler, recorder], verbose=0)
    return {
        "steps": len(recorder.losses),
        "losses": recorder.losses,
        "rates": recorder.rates,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "evaluate": float(model.evaluate(**_without(data(args), "shuffle"), verbose=0)),
    }


def _without(kwargs, key):
    return {k: v for k, v in kwargs.items() if k != key}


def _find(model, name):
    return model.base_model.get_layer(name)


def probe_masks(model):
    """Each drop layer at rate 0.5 on a global batch of identical samples, sharded over
    every device as `DataParallel` shards the data: this process's keep patterns."""
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("batch",))
    sharding = NamedSharding(mesh, PartitionSpec("batch"))
    local_rows = PROBE_BATCH // jax.process_count()
    masks, row_devices = {}, {}
    for name in DROP_LAYERS:
        layer = _find(model, name)
        layer.rate = 0.5
        shape = (local_rows,) + tuple(layer.input.shape[1:])
        x = jax.make_array_from_process_local_data(sharding, np.ones(shape, "float32"))
        trainable = [v.value for v in layer.trainable_variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]

        def forward(trainable, non_trainable, x, layer=layer):
            return layer.stateless_call(trainable, non_trainable, x, training=True)[0]

        out = jax.jit(forward)(trainable, non_trainable, x)
        masks[name] = {}
        for shard in out.addressable_shards:
            start = shard.index[0].start or 0
            keep = np.asarray(shard.data) != 0
            for r, row in enumerate(keep.reshape(keep.shape[0], -1)):
                masks[name][str(start + r)] = np.packbits(row).tobytes().hex()
                row_devices[str(start + r)] = shard.device.id
    return masks, row_devices


def make_distribution(name, args):
    import keras

    devices = keras.distribution.list_devices("cpu")
    shard = args.input == "tf.data"
    if name == "data_parallel":
        return keras.distribution.DataParallel(devices=devices, auto_shard_dataset=shard)
    mesh = keras.distribution.DeviceMesh((2, len(devices) // 2), ["batch", "model"], devices)
    layout_map = keras.distribution.LayoutMap(mesh)
    layout_map[".*dense.*kernel"] = (None, "model")
    layout_map[".*dense.*bias"] = ("model",)
    return keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name="batch", auto_shard_dataset=shard
    )


def main(argv=None):
    args = parse_args(argv)
    start(args)
    import keras

    report = {"process_id": args.process_id, "devices": len(keras.distribution.list_devices("cpu"))}
    report["runs"] = {}
    for name in args.distributions.split(","):
        keras.utils.clear_session()
        keras.utils.set_random_seed(SEED)
        keras.distribution.set_distribution(make_distribution(name, args))
        model = build_model()
        run = report["runs"][name] = train(args, model)
        if name == "data_parallel":
            run["masks"], run["row_devices"] = probe_masks(model)
    with open(args.out, "w") as f:
        json.dump(report, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
