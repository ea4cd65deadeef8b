"""Inverted dropout whose rate may be a tensor (no Python branch on its value)."""

from keras import ops

from keras_dropouts.ops._noise import uniform


def keep_scale(rate):
    """1 / (1 - rate) in float32, and 0 where everything is dropped (rate == 1)."""
    keep = 1.0 - ops.cast(rate, "float32")
    return ops.divide_no_nan(ops.ones_like(keep), keep)


def dropout(x, rate, noise_shape=None, seed=None):
    """Drops entries of `x` with probability `rate` and scales the rest by 1/(1-rate).

    Unlike `keras.random.dropout`, `rate` may be a traced scalar (e.g. a variable
    read inside a compiled train step), so changing it never needs a retrace.
    Noise is drawn and compared in float32; the mask is cast to `x.dtype`.

    Args:
        x: Input tensor.
        rate: Scalar in [0, 1], float or tensor: the fraction of entries dropped.
        noise_shape: Shape of the mask, broadcastable to `x`; None entries are
            taken from `x`. Defaults to the shape of `x`.
        seed: A `keras.random.SeedGenerator`, an int or None.

    Returns:
        A tensor of the shape and dtype of `x`.

    Example:
    >>> y = dropout(keras.ops.ones((2, 3)), 0.5, seed=1)
    """
    shape = ops.shape(x)
    if noise_shape is None:
        noise_shape = shape
    else:
        noise_shape = tuple(s if n is None else n for s, n in zip(shape, noise_shape))
    keep = ops.cast(uniform(noise_shape, seed) >= ops.cast(rate, "float32"), "float32")
    return x * ops.cast(keep * keep_scale(rate), x.dtype)


def drop_path(x, rate, seed=None):
    """Stochastic depth: zeroes whole samples of `x` with probability `rate`.

    Each sample along axis 0 is kept or dropped as one piece, and kept samples are
    scaled by 1/(1-rate). Apply it to the output of a residual branch.

    Args:
        x: Tensor of rank >= 1, batch first.
        rate: Scalar in [0, 1], float or tensor.
        seed: A `keras.random.SeedGenerator`, an int or None.

    Example:
    >>> y = drop_path(keras.ops.ones((4, 8, 8, 3)), 0.25, seed=1)
    """
    noise_shape = (None,) + (1,) * (len(x.shape) - 1)
    return dropout(x, rate, noise_shape=noise_shape, seed=seed)

