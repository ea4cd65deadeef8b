"""Time of `keras_dropouts.surgery` on ResNet50 (no training), for the current KERAS_BACKEND.

Builds `keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)`
once, then times `insert_drop_path(model, 0.1)` (graph analysis, clone, weight copy: 16
DropPath layers) and `swap_dropout(model)` (clone with reused layers; ResNet50 has no
dropout, so this is the cost of walking and rewiring the graph). Each figure is the median
of `--repeats` runs, in seconds. Target: under 10 s each on a 2-core CPU.

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)
    build = time.perf_counter() - start
    insert = median_time(lambda: kd.surgery.insert_drop_path(model, 0.1, verbose=False), args.repeats)
    swap = median_time(lambda: kd.surgery.swap_dropout(model, verbose=False), args.repeats)
    print(f"backend {keras.backend.backend()}, Keras {keras.__version__}, ResNet50 32x32")
    print(f"  build ResNet50 (reference)  {build:7.2f} s")
    print(f"  insert_drop_path (median of {args.repeats}) {insert:7.2f} s")
    print(f"  swap_dropout (median of {args.repeats})     {swap:7.2f} s")


if __name__ == "__main__":
    main()
