"""Block masks on torch: the eager fast path, else `common`'s `keras.ops` masks.

The fast path draws the same noise as `common` (bit-identical masks, tested) on the
valid-centre box, in (batch, *spatial, channels) order whatever the data format,
and expands it in float16 by separable average pools (a window sum is > 0 exactly
where a seed is in reach; no int64 argmax indices as `max_pool` writes on CUDA),
pooled in channels_last memory format (15x faster than channels_first on CPU).
Layout, seed rate and salience are `common`'s (`BlockGeometry`, `seed_rate`, `gamma`,
`salience_probabilities` on `TorchOps`).
"""

import torch
import torch.nn.functional as F

from keras_dropouts.backend.common import blocks as common
from keras_dropouts.backend.common.gamma import paper_gamma
from keras_dropouts.backend.common.geometry import BlockGeometry
from keras_dropouts.backend.common.salience import salience_probabilities
from keras_dropouts.backend.torch import eager, gamma, generators
from keras_dropouts.backend.torch.array_ops import TorchOps
from keras_dropouts.backend.torch.dropout import scale_kept
from keras_dropouts.backend.torch.scalars import clean_rate, constant, per_value

# torch's CUDA max-pool is floating point only; torch pools channels_first natively.
_MASKS = common.BlockMasks(pool_dtype="float16", channels_first_pool=True)


def drop_block(x, rate, block_size, seed, data_format, per_channel, mask, gamma_mode):
    """DropBlock on checked, non-empty arguments (see `common.blocks.BlockMasks`)."""
    if not eager.handles(x, seed):
        return _MASKS.drop_block(x, rate, block_size, seed, data_format, per_channel, mask,
                                 gamma_mode)
    return _eager(x, rate, block_size, seed, data_format, per_channel, mask, gamma_mode)


def prob_drop_block(x, rate, block_size, seed, data_format, per_channel, inverse, mask,
                    gamma_mode):
    """ProbDropBlock on checked, non-empty arguments (see `common.blocks.BlockMasks`)."""
    if not eager.handles(x, seed):
        return _MASKS.prob_drop_block(x, rate, block_size, seed, data_format, per_channel,
                                      inverse, mask, gamma_mode)
    return _eager(x, rate, block_size, seed, data_format, per_channel, mask, gamma_mode,
                  salience=(inverse,))


def _eager(x, rate, block_size, seed, data_format, per_channel, mask, gamma_mode,
           salience=None):
    geo = BlockGeometry(x, block_size, data_format, per_channel)
    p = seed_rate(geo, rate, gamma_mode, x.device)
    with torch.no_grad():
        valid = None
        if mask is not None:
            valid = geo.box_slice(mask.to(torch.bool))[..., None]
        if salience is not None:
            p = salience_probabilities(x, p, valid, geo, salience[0], xp=TorchOps)
        seeds = generators.uniform(geo.box_shape, seed, x.device) < p
        if valid is not None:
            seeds = seeds & valid
        keep = expand(geo, seeds)
    return apply(x, keep, geo)


def seed_rate(geo, rate, mode, device):
    """`common.blocks.seed_rate`: for a Python rate that very function (host floats, no
    tensor op); for a tensor rate the same maths in torch ops, once per rate value."""
    if isinstance(rate, float):
        return common.seed_rate(geo, rate, mode)
    key = ("gamma", mode, geo.sizes, geo.window)
    return per_value(rate, key, lambda r: _gamma_tensor(r, mode, geo), device)


@torch.no_grad()
def _gamma_tensor(rate, mode, geo):
    rate = clean_rate(rate)
    if mode == "exact":
        return gamma.device_exact_gamma(rate, geo.sizes, geo.window)
    return torch.where(rate >= 1.0, 1.0, paper_gamma(rate, geo.sizes, geo.window))


def expand(geo, seeds):
    """Bool seeds (batch, *box, channels) -> bool `keep` (batch, *spatial, channels):
    a unit is dropped where a window sum of seeds is > 0 (within a seed's block)."""
    pad = []
    for w in reversed(geo.window):
        pad += [w - 1, w - 1]
    # float16: window sums of 0/1 seeds are > 0 exactly where a seed is in reach
    # (integers up to 2048 are exact, larger ones round but stay > 0); 3D CPU
    # pools have float32 kernels only.
    narrow = torch.float32 if geo.n == 3 and seeds.device.type == "cpu" else torch.float16
    mask = F.pad(seeds.to(narrow), [0, 0] + pad)
    mask = torch.movedim(mask, -1, 1)  # a view: channels_last memory format
    for axis, w in enumerate(geo.window):
        if w > 1:
            kernel = [1] * geo.n
            kernel[axis] = w
            mask = _window_sum(mask, tuple(kernel))
    return torch.movedim(mask, 1, -1) == 0


def _window_sum(mask, kernel):
    """Sum (1D: mean, which has no divisor override) over a stride-1 window; > 0
    exactly where the window holds a seed."""
    if len(kernel) == 1:
        return F.avg_pool1d(mask, kernel, stride=1)
    pool = F.avg_pool2d if len(kernel) == 2 else F.avg_pool3d
    return pool(mask, kernel, stride=1, divisor_override=1)


def apply(x, keep, geo):
    """`where(keep, x, 0) * count / count_ones`, the counts over the whole batch."""
    kept = torch.count_nonzero(keep).clamp_min(1)
    scale = constant(float(geo.count), keep.device) / kept  # float32, as `common`
    if geo.channels_first:
        # Contiguous in the input's layout: a strided mask slows the full-size pass.
        keep = torch.movedim(keep, -1, 1).contiguous()
    return scale_kept(x, keep, scale)
