"""JAX's noise: drawn flat and reshaped.

XLA:CPU compiles JAX's partitionable threefry for a rank-4/5 shape in ~10 s and runs
it 2x slower than a flat draw of the same size (measured on jax 0.10); the values are
equally uniform (tests/test_backend_paths.py), so the draw is flat.
"""

import math

import keras


def uniform(shape, seed=None):
    """Float32 noise in [0, 1) of `shape` (static ints), drawn flat with `seed`.

    Args:
        shape: Output shape.
        seed: A `keras.random.SeedGenerator`, an int, or None.

    Returns:
        A float32 array of `shape`.
    """
    flat = keras.random.uniform((math.prod(shape),), dtype="float32", seed=seed)
    return keras.ops.reshape(flat, shape)
