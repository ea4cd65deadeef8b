"""Why the oldest-Keras test run keeps JAX's persistent compilation cache off.

Keras 3.8 with JAX 0.4.38 and the persistent compilation cache on: a non-trainable
variable assigned from a NumPy array that is then freed (`variable.assign(np.array(...))`,
which on CPU can keep a zero-copy view of the array's memory), followed by a rebuilt
train function (`make_train_function(force=True)`, what a scheduled `fit` does when it
installs its step) whose executable comes from the cache, can end the `fit` holding
other bytes: here the (4,) weight reads [1.8e-44 2.1e-44 3.6e-44 8.4e-45] (the int32
values 13, 15, 26, 6). Plain Keras only (no keras_dropouts): the fault is upstream.
Measured on 2 CPU cores: 7 of 288 models in 24 processes with a cold cache; none with
`--keep` (the array stays alive), none without the cache, none on Keras 3.15 / JAX 0.10.
keras_dropouts writes its own variables from a copy JAX owns
(`keras_dropouts/backend/jax/variables.py`). Intermittent: run many processes.

Usage (one cold cache per process):
    rm -rf /tmp/jc && JAX_COMPILATION_CACHE_DIR=/tmp/jc \
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0 \
    KERAS_BACKEND=jax python benchmarks/diag_jax_persistent_cache.py --trials 6
"""

import argparse

import keras
import numpy as np

EXPECTED = np.asarray([0.0, 0.0, 0.0, 0.7], "float32")


class Scaled(keras.layers.Layer):
    """Multiplies by 1 - r; holds two non-trainable weights, a (4,) `k` (unused in the
    step, as a schedule's knots are in Keras' own step) and a scalar `r`."""

    def build(self, shape):
        self.k = self.add_weight(shape=(4,), initializer="zeros", trainable=False, name="k")
        self.r = self.add_weight(shape=(), initializer="zeros", trainable=False, name="r")

    def call(self, x):
        return x * (1.0 - self.r)


def build():
    keras.utils.set_random_seed(7)
    inp = keras.Input((16,))
    h = Scaled(name="scaled")(inp)
    h = keras.layers.Dense(16, activation="relu")(h)
    h = keras.layers.Dropout(0.1, seed=2)(h)
    model = keras.Model(inp, keras.layers.Dense(3)(h))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6, help="pairs of models per process")
    parser.add_argument("--keep", action="store_true", help="assign an array that stays alive")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 16)).astype("float32"), rng.integers(0, 3, 32).astype("int32")
    corrupt = 0
    for trial in range(args.trials):
        models = [build(), build()]
        for model in models:
            model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
        for model in models:
            model.get_layer("scaled").k.assign(EXPECTED if args.keep else np.array(EXPECTED))
            type(model).make_train_function(model, force=True)
            model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
            value = np.asarray(model.get_layer("scaled").k.value)
            if not np.array_equal(value, EXPECTED):
                corrupt += 1
                print(f"trial {trial}: k = {value} (expected {EXPECTED})")
    print(f"corrupt: {corrupt} of {2 * args.trials} models (keras {keras.__version__})")


if __name__ == "__main__":
    main()
