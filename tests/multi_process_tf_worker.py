"""One worker of the TensorFlow multi-worker test (tests/test_multi_process_tf.py).

`MultiWorkerMirroredStrategy` over `--workers` local workers (`TF_CONFIG` on 127.0.0.1,
the ports given), training the model of examples/multi_process.py under an in-step
`LinearRamp`; writes the `History` to `--out` as JSON. Never collected by pytest.
"""

import argparse
import json
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--ports", required=True, help="comma-separated, one port a worker")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    workers = [f"127.0.0.1:{port}" for port in args.ports.split(",")]
    os.environ["TF_CONFIG"] = json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": args.index}}
    )
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import keras
    from multi_process_harness import load_example  # this script's folder is on sys.path

    import keras_dropouts as kd

    keras.utils.set_random_seed(0)
    example = load_example()
    x, y = example.synthetic_images(64)
    with strategy.scope():
        model = example.build_model(rate=0.1)
        model.compile(
            optimizer=keras.optimizers.SGD(0.05),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16, drop_remainder=True)
    ramp = kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.3))
    history = model.fit(data, epochs=2, callbacks=[ramp], shuffle=False, verbose=0)
    with open(args.out, "w") as f:
        json.dump({k: [float(v) for v in vs] for k, vs in history.history.items()}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
