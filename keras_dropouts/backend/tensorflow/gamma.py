"""The exact-gamma table as an eager TensorFlow constant, even when first used in a graph."""

import tensorflow as tf

from keras_dropouts.backend.common import gamma as common


def constant(table):
    """`table` as an eager constant, usable from every later graph."""
    with tf.init_scope():
        return tf.constant(table)


def exact_gamma(rate, sizes, blocks):
    """`common.gamma.exact_gamma` with a graph-proof table (see `constant`)."""
    return common.exact_gamma(rate, sizes, blocks, constant)
