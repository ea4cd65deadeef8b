"""Inverted dropout whose rate may be a tensor (no Python branch on its value)."""

import keras
import numpy as np
from keras import ops

from keras_dropouts import _checks
from keras_dropouts.ops._noise import uniform


def rate_tensor(rate):
    """A checked Python rate as a float; a tensor rate as a float32 scalar clipped to
    [0, 1], NaN counting as 1 (drop everything). A tensor can only be checked inside
    the step; these few scalar ops replace the check."""
    if _checks.is_number(rate):
        return float(rate)
    rate = ops.cast(rate, "float32")
    return ops.where(rate <= 1.0, ops.maximum(rate, 0.0), 1.0)  # NaN <= 1 is False


def keep_scale(rate):
    """1 / (1 - rate) in float32, and 0 where everything is dropped (rate == 1).

    For a Python rate the scale is the inverse of the keep probability that the
    float32 comparison `noise >= rate` really has (rate rounded to float32)."""
    if isinstance(rate, float):
        keep = 1.0 - float(np.float32(rate))
        return 0.0 if keep <= 0.0 else 1.0 / keep
    keep = 1.0 - ops.cast(rate, "float32")
    return exact_ratio(ops.ones_like(keep), keep)


def exact_ratio(a, b):
    """`a / b` (0 where b == 0), exactly 1 where a == b: XLA on GPUs divides by a
    reciprocal, so 972 / 972 can come out 1 + 1 ulp and rate 0 would not be the identity."""
    return ops.where(ops.equal(a, b), ops.ones_like(a), ops.divide_no_nan(a, b))


def compute_dtype(dtype):
    """Dtype in which kept units are rescaled: float32, or float64 for float64 inputs."""
    return "float64" if dtype == "float64" else "float32"


def scale_kept(x, keep, scale):
    """`where(keep, x * scale, 0)`, multiplied in float32 and cast back to `x.dtype`.

    Dropped units are exactly 0 whatever they held (inf, NaN). The scale is never
    rounded to a low-precision dtype (1 / (1 - 0.99999) overflows float16); only the
    product is, so a float16 output is inf only where `x * scale` itself exceeds the
    float16 range (65504).
    """
    dtype = keras.backend.standardize_dtype(x.dtype)
    work = compute_dtype(dtype)
    if not isinstance(scale, float):
        scale = ops.cast(scale, work)
    y = ops.where(keep, ops.cast(x, work) * scale, 0.0)
    return ops.cast(y, dtype)


def dropout(x, rate, noise_shape=None, seed=None):
    """Drops entries of `x` with probability `rate` and scales the rest by 1/(1-rate).

    Unlike `keras.random.dropout`, `rate` may be a traced scalar (e.g. a variable
    read inside a compiled train step), so changing it never needs a retrace.
    Noise is drawn and compared in float32; kept entries are rescaled in float32
    (float64 for float64 inputs) and cast back; dropped entries are exactly 0.

    Args:
        x: Floating-point tensor (or NumPy array / nested list of floats).
        rate: The fraction of entries dropped: a Python number in [0, 1] (checked),
            or a scalar tensor / variable (clipped to [0, 1] inside the step).
        noise_shape: Shape of the mask, with the rank of `x`, each entry None (taken
            from `x`), 1 (mask shared along that axis) or the size of `x` there.
            Defaults to the shape of `x`.
        seed: A `keras.random.SeedGenerator`, an int or None.

    Returns:
        A tensor of the shape and dtype of `x`.

    Raises:
        TypeError: if `x` is not floating point.
        ValueError: for a bad `rate` or `noise_shape`.

    Example:
    >>> y = dropout(keras.ops.ones((2, 3)), 0.5, seed=1)
    """
    x = _checks.to_float_tensor(x, "x", "dropout")
    rate = _checks.check_rate_or_tensor(rate)
    if noise_shape is not None:
        noise_shape = _checks.check_noise_shape_for(_checks.check_noise_shape(noise_shape), x)
    seed = _checks.check_seed_argument(seed)
    return _dropout(x, rate, noise_shape, seed)


def drop_path(x, rate, seed=None):
    """Stochastic depth: zeroes whole samples of `x` with probability `rate`.

    Each sample along axis 0 is kept or dropped as one piece, and kept samples are
    scaled by 1/(1-rate). Apply it to the output of a residual branch.

    Args:
        x: Floating-point tensor of rank >= 1, batch first.
        rate: Python number in [0, 1], or a scalar tensor (clipped to [0, 1]).
        seed: A `keras.random.SeedGenerator`, an int or None.

    Example:
    >>> y = drop_path(keras.ops.ones((4, 8, 8, 3)), 0.25, seed=1)
    """
    x = _checks.to_float_tensor(x, "x", "drop_path")
    check_drop_path_rank(x, "x", "drop_path")
    rate = _checks.check_rate_or_tensor(rate)
    seed = _checks.check_seed_argument(seed)
    return _dropout(x, rate, path_noise_shape(x), seed)


def check_drop_path_rank(x, name, owner):
    _checks.check_input_rank(x, name, min_rank=1, layout="(batch first)", owner=owner)


def path_noise_shape(x):
    return (None,) + (1,) * (len(x.shape) - 1)


def _dropout(x, rate, noise_shape, seed):
    """The op on checked arguments (layers call this directly)."""
    if any(s == 0 for s in x.shape):  # static: an empty tensor has nothing to drop
        return x
    if keras.backend.backend() == "torch":
        from keras_dropouts.ops import _torch

        if _torch.active(x) and _torch.can_draw(seed):
            return _torch.dropout(x, rate, noise_shape, seed)
    shape = ops.shape(x)
    if noise_shape is None:
        noise_shape = shape
    else:
        noise_shape = tuple(s if n is None else n for s, n in zip(shape, noise_shape))
    rate = rate_tensor(rate)
    keep = uniform(noise_shape, seed) >= rate
    return scale_kept(x, keep, keep_scale(rate))
