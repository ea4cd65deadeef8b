"""Time of `keras_dropouts.surgery` on ResNet50 (no training), for the current KERAS_BACKEND.

Builds `keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)`
and times, each as the median of `--repeats` runs in seconds:

- the baseline: building that ResNet50 again (what a surgery's copy costs at least:
  every layer is rebuilt from its config);
- `insert_drop_path(model, 0.1)`: graph analysis, copy, weight copy, 16 DropPath;
- `insert_drop_block(model, 0.1, 3, after=<groups 3 and 4>)`: 9 + 9 DropBlock2D;
- `swap_dropout(model)`: ResNet50 has no dropout, so this is the cost of copying the
  model (from its config, weights included) and walking its layers.

Each is also given as a ratio to the baseline of the same run. Target: under 10 s each
on a 2-core CPU. Run without other jobs on the machine (no pytest `-n` workers):

    KERAS_BACKEND=jax python benchmarks/bench_surgery.py
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402

import keras_dropouts as kd  # noqa: E402


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build():
    return keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)


def groups_3_and_4(layer):
    return layer.name.startswith(("conv4_", "conv5_")) and layer.name.endswith("_out")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = build()
    cases = {
        "build ResNet50 (baseline)": build,
        "insert_drop_path": lambda: kd.surgery.insert_drop_path(model, 0.1, verbose=False),
        "insert_drop_block": lambda: kd.surgery.insert_drop_block(
            model, 0.1, 3, after=groups_3_and_4, verbose=False
        ),
        "swap_dropout": lambda: kd.surgery.swap_dropout(model, verbose=False),
    }
    times = {name: median_time(fn, args.repeats) for name, fn in cases.items()}
    base = times["build ResNet50 (baseline)"]
    print(f"backend {keras.backend.backend()}, Keras {keras.__version__}, ResNet50 32x32, "
          f"median of {args.repeats}, load average {os.getloadavg()[0]:.1f}")
    for name, seconds in times.items():
        print(f"  {name:28s} {seconds:6.2f} s  {seconds / base:5.2f}x baseline")


if __name__ == "__main__":
    main()
