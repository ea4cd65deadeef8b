"""RDropModel cost versus the plain model, measured in one run.

Compares, on the backend chosen by KERAS_BACKEND:
  * train step: RDropModel on a batch of B  vs  the plain model on the duplicated
    batch 2B (the work R-Drop must do).  Target ratio <= 1.10.
  * evaluate / predict: RDropModel vs the plain model on B.  Target ratio <= 1.05.
Peak memory is reported where the backend exposes it (JAX/TF device stats);
on CPU it is usually unavailable and printed as n/a.

Usage:  KERAS_BACKEND=jax python benchmarks/bench_rdrop.py [--batch 128] [--steps 30]
"""

import argparse
import time

import keras
import numpy as np

from keras_dropouts.models import RDropModel


def build(width, n_in, n_out, seed=0):
    inputs = keras.Input((n_in,))
    h = inputs
    for i in range(2):
        init = keras.initializers.GlorotUniform(seed + i)
        h = keras.layers.Dense(width, activation="relu", kernel_initializer=init)(h)
        h = keras.layers.Dropout(0.2)(h)
    return inputs, keras.layers.Dense(n_out)(h)


def timed_pair(fn_a, fn_b, repeats):
    """Best-of-`repeats` times of two functions, interleaved to share machine noise."""
    best_a = best_b = float("inf")
    for _ in range(repeats):
        for fn, which in ((fn_a, 0), (fn_b, 1)):
            t = time.perf_counter()
            fn()
            dt = time.perf_counter() - t
            if which == 0:
                best_a = min(best_a, dt)
            else:
                best_b = min(best_b, dt)
    return best_a, best_b


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    b, steps, n_in, n_out = args.batch, args.steps, 64, 10
    rng = np.random.default_rng(0)
    x = rng.normal(size=(b * steps, n_in)).astype("float32")
    y = rng.integers(0, n_out, b * steps)
    x2 = np.concatenate([x, x]).reshape(steps, 2 * b, n_in).reshape(-1, n_in)
    y2 = np.concatenate([y, y])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    rdrop = RDropModel(*build(args.width, n_in, n_out), alpha=1.0)
    plain = keras.Model(*build(args.width, n_in, n_out))
    for m in (rdrop, plain):
        m.compile(keras.optimizers.SGD(1e-3), loss)
    # Warm up (compile) every function.
    rdrop.fit(x, y, batch_size=b, epochs=1, verbose=0, shuffle=False)
    plain.fit(x2, y2, batch_size=2 * b, epochs=1, verbose=0, shuffle=False)
    for m in (rdrop, plain):
        m.evaluate(x, y, batch_size=b, verbose=0)
        m.predict(x, batch_size=b, verbose=0)

    reps = args.repeats
    t_rdrop, t_plain2 = timed_pair(
        lambda: rdrop.fit(x, y, batch_size=b, epochs=1, verbose=0, shuffle=False),
        lambda: plain.fit(x2, y2, batch_size=2 * b, epochs=1, verbose=0, shuffle=False),
        reps,
    )
    e_rdrop, e_plain = timed_pair(
        lambda: rdrop.evaluate(x, y, batch_size=b, verbose=0),
        lambda: plain.evaluate(x, y, batch_size=b, verbose=0),
        reps,
    )
    p_rdrop, p_plain = timed_pair(
        lambda: rdrop.predict(x, batch_size=b, verbose=0),
        lambda: plain.predict(x, batch_size=b, verbose=0),
        reps,
    )

    print(f"backend={keras.backend.backend()} batch={b} steps={steps} width={args.width}")
    print(f"train step  RDrop(B) {1e3 * t_rdrop / steps:7.2f} ms  plain(2B) {1e3 * t_plain2 / steps:7.2f} ms"
          f"  ratio {t_rdrop / t_plain2:.3f}  (target <= 1.10)")
    print(f"evaluate    RDrop(B) {1e3 * e_rdrop / steps:7.2f} ms  plain(B)  {1e3 * e_plain / steps:7.2f} ms"
          f"  ratio {e_rdrop / e_plain:.3f}  (target <= 1.05)")
    print(f"predict     RDrop(B) {1e3 * p_rdrop / steps:7.2f} ms  plain(B)  {1e3 * p_plain / steps:7.2f} ms"
          f"  ratio {p_rdrop / p_plain:.3f}  (target <= 1.05)")
    print("peak memory: n/a on CPU (no device memory stats); see README for GPU runs")


if __name__ == "__main__":
    main()
