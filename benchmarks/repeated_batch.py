"""The same batch again and again, on the device, as a benchmark's `fit` input."""

import keras


def repeated_batch(x, y):
    """`(x, y)` (NumPy arrays) forever: a `tf.data` dataset of one repeated element on
    TensorFlow (a Python generator goes through `from_generator`, whose per-`fit` set-up
    and host round trips would be timed: they scattered TensorFlow's ratios by up to
    +-40%), elsewhere a generator of device tensors."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.data.Dataset.from_tensors((x, y)).repeat()
    return _repeat(keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y))


def _repeat(x, y):
    while True:
        yield x, y
