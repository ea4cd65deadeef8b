"""Dropout on torch: the eager fast path, else `common`'s."""

import torch

from keras_dropouts.backend.common import dropout as common
from keras_dropouts.backend.torch import eager, generators, masked_scale
from keras_dropouts.backend.torch.scalars import per_value, rate_and_scale


def scale_kept(x, keep, scale):
    """`where(keep, x, 0) * scale` in float32 (float64 for float64 inputs), cast back.

    Equal to `common.dropout.scale_kept`'s `where(keep, x * scale, 0)`: the scale is
    finite, so a dropped unit is 0 whatever it held, and a kept one is `x * scale`.
    On the CPU the same values come from `masked_scale` (torch's CPU `where` is slow)."""
    if masked_scale.usable(x, keep, scale):
        return masked_scale.scale_kept(x, keep, scale)
    y = torch.where(keep, x.to(masked_scale.work_dtype(x.dtype)), 0.0) * scale
    return y.to(x.dtype)


def dropout(x, rate, noise_shape, seed, scale_by_keep=True):
    """Inverted dropout on checked arguments (see `common.dropout.dropout`).

    On the eager path `rate` is a checked Python float (its scale computed on the
    host by `common.dropout.keep_scale`) or a tensor / Keras variable whose
    (rate, scale) are cached per value (`scalars.per_value`). Without `scale_by_keep`
    kept units are not rescaled.
    """
    if not eager.handles(x, seed):
        return common.dropout(x, rate, noise_shape, seed, scale_by_keep=scale_by_keep)
    shape = tuple(x.shape)
    if noise_shape is not None:
        shape = tuple(s if n is None else n for s, n in zip(shape, noise_shape))
    noise = generators.uniform(shape, seed, x.device)
    if isinstance(rate, float):
        return scale_kept(x, noise >= rate, common.keep_scale(rate) if scale_by_keep else 1.0)
    rate, scale = per_value(rate, "dropout", rate_and_scale, x.device)
    return scale_kept(x, noise >= rate, scale if scale_by_keep else 1.0)
