"""Inverted dropout's maths: rate clean-up, keep scale, the rescale of kept units.

No Python branch on a rate value (README, Design notes): masks are
`uniform(...) >= rate` and the scale is `1 / (1 - rate)`, 0 at rate 1.
"""

import keras
import numpy as np
from keras import ops

from keras_dropouts import _checks
from keras_dropouts.backend.common import noise


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


def full_noise_shape(x, noise_shape):
    """`noise_shape` (None, or ints and Nones) with every None taken from `x`."""
    shape = ops.shape(x)
    if noise_shape is None:
        return shape
    return tuple(s if n is None else n for s, n in zip(shape, noise_shape))


def dropout(x, rate, noise_shape, seed, uniform=noise.uniform, scale_by_keep=True):
    """Inverted dropout on checked arguments.

    Args:
        x: A non-empty floating tensor.
        rate: A checked Python float, or a scalar tensor / variable.
        noise_shape: None, or a checked tuple of ints and Nones.
        seed: A `keras.random.SeedGenerator`, an int or None.
        uniform: The backend's noise draw (`noise.uniform`'s signature).
        scale_by_keep: False keeps the kept units as they are (no 1 / (1 - rate)).

    Returns:
        `where(uniform >= rate, x / (1 - rate), 0)` with the dtype of `x`
        (`where(uniform >= rate, x, 0)` without `scale_by_keep`).
    """
    rate = rate_tensor(rate)
    keep = uniform(full_noise_shape(x, noise_shape), seed) >= rate
    return scale_kept(x, keep, keep_scale(rate) if scale_by_keep else 1.0)
