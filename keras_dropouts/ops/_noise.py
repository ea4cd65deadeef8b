"""Uniform noise that is independent across `tf.distribute` replicas.

Keras' `SeedGenerator` state is mirrored under `tf.distribute`, so every replica
would draw the same numbers and therefore the same dropout mask. On the TensorFlow
backend we fold the replica id into the seed. JAX `DataParallel` draws one global
array that is then sharded, so its shards already differ; torch has no replicas.
"""

import math

import keras


def uniform(shape, seed=None):
    """Float32 noise in [0, 1) of `shape`, drawn with `seed`.

    Args:
        shape: Output shape; entries may be scalar tensors (unknown dims).
        seed: A `keras.random.SeedGenerator`, an int, or None.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            return _tf_replica_uniform(tf, ctx, shape, seed)
    if keras.backend.backend() == "jax":
        # XLA:CPU compiles JAX's partitionable threefry for a rank-4/5 shape in ~10 s
        # and runs it 2x slower than a flat draw of the same size (measured on
        # jax 0.10); the values are equally uniform, so draw flat and reshape.
        flat = keras.random.uniform((math.prod(shape),), dtype="float32", seed=seed)
        return keras.ops.reshape(flat, shape)
    return keras.random.uniform(shape, dtype="float32", seed=seed)


def _tf_replica_uniform(tf, ctx, shape, seed):
    if isinstance(seed, keras.random.SeedGenerator):
        seed = seed.next()
    elif seed is None:
        seed = keras.random.randint((2,), 0, 2**30, dtype="int32")
    else:
        seed = tf.constant([int(seed), 0])
    seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)
    replica = tf.cast(ctx.replica_id_in_sync_group, tf.int32)
    seed = tf.random.experimental.stateless_fold_in(seed, replica)
    return tf.random.stateless_uniform(shape, seed=seed, dtype=tf.float32)
