"""TensorFlow's noise: independent across `tf.distribute` replicas.

Keras' `SeedGenerator` state is mirrored under `tf.distribute`, so every replica
would draw the same numbers and therefore the same dropout mask; the replica id is
folded into the seed. (JAX `DataParallel` draws one global array that is then
sharded, so its shards already differ; torch has no replicas.)
"""

import keras
import tensorflow as tf

from keras_dropouts.backend.common import noise as common


def uniform(shape, seed=None):
    """`common.noise.uniform`, with the replica id folded into the seed under a
    `tf.distribute` strategy of more than one replica (the arguments are common's)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync <= 1:
        return common.uniform(shape, seed)
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
