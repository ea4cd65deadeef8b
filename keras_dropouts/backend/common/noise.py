"""Uniform noise: the portable draw (`keras.random.uniform`, float32)."""

import keras


def uniform(shape, seed=None):
    """Float32 noise in [0, 1) of `shape`, drawn with `seed`.

    Args:
        shape: Output shape; entries may be scalar tensors (unknown dims).
        seed: A `keras.random.SeedGenerator`, an int, or None.

    Returns:
        A float32 tensor of `shape`.
    """
    return keras.random.uniform(shape, dtype="float32", seed=seed)
