"""The torch branch of the ops: the same masks, built from torch's own kernels.

torch runs eagerly, so a layer's cost on small tensors is dispatch, not arithmetic:
every `keras.ops` call converts its arguments (a Python scalar becomes a tensor,
on CUDA a host-to-device copy), checks dtypes and shapes, and Keras' seeded
`keras.random` functions build a new `torch.Generator` from the seed variable
with `int(tensor)` (a device-to-host sync). Measured on the 2-core CPU with a
(2, 8, 8, 4) tensor, the `keras.ops` composition of DropBlock2D cost 4.8x a
`keras.layers.Dropout` call. This module computes exactly what the generic path
in `ops/dropout.py` and `ops/_blocks.py` computes, with direct torch calls:

* noise from a `torch.Generator` kept per `SeedGenerator` and device (seeded once
  from the seed generator's configured seed, or from Python's `random` when it has
  none, so `keras.utils.set_random_seed` makes runs repeatable); an int seed gives
  a generator seeded as Keras seeds one, so the noise, and therefore the mask,
  equals the generic path's bit for bit (tests check it); no host sync per call;
* scalars derived from a rate variable (clipped rate, keep scale, gamma) computed
  once per value of the variable: cached on the variable's tensor and its in-place
  version counter (`assign` is an in-place copy), so a rate changed by a callback
  or inside the step is picked up, and an unchanged one costs no kernel;
* block masks drawn only at valid block centres, in (batch, *spatial, channels)
  order whatever the data format (the order the generic path draws in), expanded
  in float16 by separable average pools (a window sum is > 0 exactly where a
  seed is in reach; no int64 argmax indices as `max_pool` writes on CUDA), pooled
  in channels_last memory format (15x faster than channels_first on CPU);
* `where(keep, x, 0) * scale` in float32 (float64 for float64 inputs), so dropped
  units are exactly 0 whatever they held.

The branch runs only for concrete tensors outside `torch.compile` (dynamo traces
the generic `keras.ops` path, which it compiles as well as anything else);
`ENABLED = False` switches it off (the tests compare both paths).
"""

import math
import random
import weakref

import keras
import torch
import torch.nn.functional as F

from keras_dropouts.ops import _gamma
from keras_dropouts.ops.dropout import keep_scale
from keras_dropouts.ops.prob_drop_block import _SALIENCE_CAP

ENABLED = True


def active(x):
    """True when the torch branch handles the call on `x`."""
    return (
        ENABLED
        and isinstance(x, torch.Tensor)
        and x.device.type != "meta"
        and not torch.compiler.is_compiling()
    )


# ----------------------------------------------------------------------- generators

_GENERATORS = weakref.WeakKeyDictionary()  # SeedGenerator -> {device: torch.Generator}


def generator(seed, device):
    """A `torch.Generator` on `device` for an ops `seed` (None: torch's default one)."""
    if seed is None:
        return None
    if isinstance(seed, int):
        # As `keras.random` seeds one for an int seed: the same noise as the generic path.
        gen = torch.Generator(device=device)
        gen.manual_seed(seed & 0xFFFFFFFF)
        return gen
    per_device = _GENERATORS.get(seed)
    if per_device is None:
        per_device = _GENERATORS[seed] = {}
    gen = per_device.get(device)
    if gen is None:
        initial = seed.get_config().get("seed")
        if initial is None:
            initial = random.randint(1, int(1e9))  # as Keras draws a default seed
        gen = torch.Generator(device=device)
        gen.manual_seed((int(initial) + len(per_device)) & 0xFFFFFFFF)
        per_device[device] = gen
    return gen


def can_draw(seed):
    """Seeds this branch draws from itself (a seed tensor goes through Keras)."""
    return seed is None or isinstance(seed, (int, keras.random.SeedGenerator))


def uniform(shape, seed, device):
    """Float32 noise in [0, 1): `keras.random.uniform`'s values for an int seed."""
    return torch.rand(shape, generator=generator(seed, device), device=device)


# -------------------------------------------------------------------------- scalars

_SCALARS = {}


def per_value(rate, key, fn, device):
    """`fn(rate)` (a tuple of 0-d tensors), computed once per value of `rate`, on `device`
    (the input's: a rate variable on the GPU may meet an input left on the CPU).

    A Keras variable's tensor changes in place on `assign` and bumps its version
    counter, so (tensor, version) identifies the value without reading it (which
    would be a device-to-host sync). Other tensors are computed every call.
    """
    if isinstance(rate, keras.Variable):
        tensor = rate.value
    else:
        return fn(rate.to(device) if isinstance(rate, torch.Tensor) else rate)
    try:
        version = tensor._version
    except (RuntimeError, AttributeError):  # inference tensors have no version
        return fn(tensor.to(device))
    slot = (id(tensor), key, device)
    hit = _SCALARS.get(slot)
    if hit is not None and hit[0] is tensor and hit[1] == version:
        return hit[2]
    value = fn(tensor if tensor.device == device else tensor.to(device))
    _remember(slot, tensor, version, value)
    return value


def _remember(slot, tensor, version, value):
    if len(_SCALARS) > 4096:
        _SCALARS.clear()
    _SCALARS[slot] = (tensor, version, value)  # holds `tensor`: its id is not reused


def prime_dropout_scalars(tensors, rates):
    """Caches `dropout`'s (rate, scale) for rate variables' tensors just written with
    `rates` (one per tensor), computed for all of them at once."""
    rate, scale = _rate_and_scale(rates)
    for tensor, r, s in zip(tensors, torch.unbind(rate), torch.unbind(scale)):
        try:
            version = tensor._version
        except (RuntimeError, AttributeError):
            continue
        _remember((id(tensor), "dropout", tensor.device), tensor, version, (r, s))


class KnotStack:
    """The (n, 4) stack of layers' `rate_schedule` tensors, restacked only when one of
    them was replaced or written (their version counters say so, no value is read)."""

    def __init__(self):
        self._key = None
        self._stacked = None
        self._tensors = []

    def __call__(self, tensors):
        key = tuple((id(t), t._version) for t in tensors)
        if key != self._key:
            with torch.no_grad():
                self._stacked = torch.stack([t.to(torch.float32) for t in tensors])
            self._tensors = list(tensors)  # holds them: their ids are not reused
            self._key = key
        return self._stacked


@torch.no_grad()
def two_knot_rates(step, knots):
    """`schedules.two_knots` for every row `(a, b, v0, v1)` of `knots` at `step`, NaN
    counting as 0 and clipped to [0, 1], in a few eager kernels."""
    s = step.to(torch.float32)
    a, b, v0, v1 = knots.unbind(1)
    ramp = v0 + (v1 - v0) * (s - a) / torch.clamp(b - a, min=1.0)
    rates = torch.where(s >= b, v1, torch.where(s < a, v0, ramp))
    return torch.nan_to_num(rates, nan=0.0).clamp(0.0, 1.0)


_CONSTANTS = {}


def constant(value, device):
    """A float32 0-d tensor holding `value`, created on `device` once (by a fill, not a
    host-to-device copy)."""
    key = (value, device)
    tensor = _CONSTANTS.get(key)
    if tensor is None:
        if len(_CONSTANTS) > 4096:
            _CONSTANTS.clear()
        tensor = _CONSTANTS[key] = torch.full((), value, dtype=torch.float32, device=device)
    return tensor


@torch.no_grad()
def _clean_rate(rate):
    """Float32, clipped to [0, 1], NaN counting as 1 (as `dropout.rate_tensor`)."""
    rate = rate.to(torch.float32)
    return torch.where(rate <= 1.0, rate.clamp_min(0.0), 1.0)


@torch.no_grad()
def _rate_and_scale(rate):
    rate = _clean_rate(rate)
    keep = 1.0 - rate
    return rate, torch.where(keep > 0, 1.0 / keep, 0.0)


# ------------------------------------------------------------------------- applying


def scale_kept(x, keep, scale):
    """`where(keep, x, 0) * scale` in float32 (float64 for float64 inputs), cast back.

    Equal to the generic `where(keep, x * scale, 0)`: the scale is finite, so a
    dropped unit is 0 whatever it held, and a kept one is `x * scale`."""
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    y = torch.where(keep, x.to(work), 0.0) * scale
    return y.to(x.dtype)


def dropout(x, rate, noise_shape, seed):
    """Inverted dropout. `rate` is a checked Python float (its scale computed on the
    host, as `dropout.keep_scale` does) or a tensor / Keras variable; `noise_shape`
    is None or a tuple of ints and Nones (taken from `x`)."""
    shape = tuple(x.shape)
    if noise_shape is not None:
        shape = tuple(s if n is None else n for s, n in zip(shape, noise_shape))
    noise = uniform(shape, seed, x.device)
    if isinstance(rate, float):
        return scale_kept(x, noise >= rate, keep_scale(rate))
    rate, scale = per_value(rate, "dropout", _rate_and_scale, x.device)
    return scale_kept(x, noise >= rate, scale)


# --------------------------------------------------------------------------- blocks


class Geometry:
    """A block mask's layout for a concrete input; the mask is computed in
    (batch, *spatial, mask_channels) order, as the generic path draws it."""

    def __init__(self, x, block_size, channels_first, per_channel):
        shape = tuple(x.shape)
        self.device = x.device
        self.n = len(shape) - 2
        self.channels_first = channels_first
        self.sizes = shape[2:] if channels_first else shape[1:-1]
        channels = shape[1] if channels_first else shape[-1]
        self.mask_channels = channels if per_channel else 1
        self.window = tuple(min(b, s) for b, s in zip(block_size, self.sizes))
        self.box = tuple(s - w + 1 for s, w in zip(self.sizes, self.window))
        self.box_shape = (shape[0],) + self.box + (self.mask_channels,)
        self.size = math.prod(shape[:1] + self.sizes) * self.mask_channels

    def gamma(self, rate, mode):
        """The seed rate: a Python float for a Python rate, else a cached 0-d tensor."""
        if isinstance(rate, float):
            if mode == "exact":
                return _gamma.exact_gamma_value(rate, self.sizes, self.window)
            return paper_gamma_value(rate, self.sizes, self.window)
        key = ("gamma", mode, self.sizes, self.window)
        return per_value(rate, key, lambda r: self._gamma_tensor(r, mode), self.device)

    @torch.no_grad()
    def _gamma_tensor(self, rate, mode):
        rate = _clean_rate(rate)
        if mode == "exact":
            return _exact_gamma(rate, self.sizes, self.window)
        gamma = rate * paper_gamma_value(1.0, self.sizes, self.window, clip=False)
        return torch.where(rate >= 1.0, 1.0, gamma)

    def box_slice(self, t, offset=1):
        """`t` (batch, *spatial, ...) restricted to the valid block centres."""
        index = [slice(None)] * t.dim()
        for axis, (w, b) in enumerate(zip(self.window, self.box)):
            index[axis + offset] = slice(w // 2, w // 2 + b)
        return t[tuple(index)]

    def expand(self, seeds):
        """Bool seeds (batch, *box, channels) -> bool `keep` (batch, *spatial, channels):
        a unit is dropped where a window sum of seeds is > 0 (within a seed's block)."""
        pad = []
        for w in reversed(self.window):
            pad += [w - 1, w - 1]
        # float16: window sums of 0/1 seeds are > 0 exactly where a seed is in reach
        # (integers up to 2048 are exact, larger ones round but stay > 0); 3D CPU
        # pools have float32 kernels only.
        narrow = torch.float32 if self.n == 3 and seeds.device.type == "cpu" else torch.float16
        mask = F.pad(seeds.to(narrow), [0, 0] + pad)
        mask = torch.movedim(mask, -1, 1)  # a view: channels_last memory format
        for axis, w in enumerate(self.window):
            if w > 1:
                kernel = [1] * self.n
                kernel[axis] = w
                mask = _window_sum(mask, tuple(kernel))
        return torch.movedim(mask, 1, -1) == 0

    def apply(self, x, keep):
        """`where(keep, x, 0) * count / count_ones`, the counts over the whole batch."""
        kept = torch.count_nonzero(keep).clamp_min(1)
        scale = constant(float(self.size), keep.device) / kept  # float32, as the generic path
        if self.channels_first:
            # Contiguous in the input's layout: a strided mask slows the full-size pass.
            keep = torch.movedim(keep, -1, 1).contiguous()
        return scale_kept(x, keep, scale)


def _window_sum(mask, kernel):
    """Sum (1D: mean, which has no divisor override) over a stride-1 window; > 0
    exactly where the window holds a seed."""
    if len(kernel) == 1:
        return F.avg_pool1d(mask, kernel, stride=1)
    pool = F.avg_pool2d if len(kernel) == 2 else F.avg_pool3d
    return pool(mask, kernel, stride=1, divisor_override=1)


_TABLES = {}


def _exact_gamma(rate, sizes, window):
    """`_gamma.exact_gamma` in torch ops; the table is copied to the device once."""
    key = (sizes, window, rate.device)
    table = _TABLES.get(key)
    if table is None:
        table = _TABLES[key] = torch.as_tensor(
            _gamma.gamma_table(sizes, window), device=rate.device
        )
    grid = table.shape[0] - 1
    pos = rate * float(grid)
    i0 = pos.floor().clamp_max(grid - 1)
    frac = pos - i0
    i0 = i0.to(torch.int64)
    # `take`, not `table[i0]`: indexing with a 0-d tensor reads it on the host (a sync).
    g0, g1 = torch.take(table, i0), torch.take(table, i0 + 1)
    return g0 * (1.0 - frac) + g1 * frac  # exact at rates 0 and 1


def paper_gamma_value(rate, sizes, window, clip=True):
    """Ghiasi et al.'s seed rate for a Python rate (1 at rate 1)."""
    if clip and rate >= 1.0:
        return 1.0
    gamma = rate
    for s, b in zip(sizes, window):
        gamma = gamma * s / (b * (s - b + 1.0))
    return gamma


def drop_block(x, rate, block_size, seed, channels_first, per_channel, mask, gamma_mode,
               salience=None):
    """DropBlock (or, with `salience=(inverse,)`, ProbDropBlock) on a concrete tensor."""
    geo = Geometry(x, block_size, channels_first, per_channel)
    gamma = geo.gamma(rate, gamma_mode)
    with torch.no_grad():
        valid = None
        if mask is not None:
            valid = geo.box_slice(mask.to(torch.bool))[..., None]
        if salience is None:
            p = gamma
        else:
            p = salience_probabilities(x, gamma, valid, geo, inverse=salience[0])
        seeds = uniform(geo.box_shape, seed, x.device) < p
        if valid is not None:
            seeds = seeds & valid
        keep = geo.expand(seeds)
    return geo.apply(x, keep)


def salience_probabilities(x, gamma, valid, geo, inverse):
    """`ops.prob_drop_block.salience_probabilities` on the valid-centre box, with the
    same arithmetic (so the same noise gives the same seeds)."""
    if isinstance(gamma, float) and gamma >= 1.0:
        return 1.0  # every valid centre is a seed
    s = x.detach().to(torch.float32).abs()
    if geo.channels_first:
        s = torch.movedim(s, 1, -1)
    if geo.mask_channels == 1:
        s = s.mean(dim=-1, keepdim=True)
    s = geo.box_slice(s)
    axes = tuple(range(1, geo.n + 1))
    finite = s <= _SALIENCE_CAP  # False for inf and NaN
    clean = torch.where(finite, s, 0.0)
    bad = ~finite
    if valid is not None:
        clean = clean * valid
        bad = bad & valid
    s_max = clean.amax(dim=axes, keepdim=True)
    n_bad = bad.sum(dim=axes, keepdim=True, dtype=torch.float32)
    total = clean.sum(dim=axes, keepdim=True) + s_max * n_bad
    if valid is None:
        n_valid = float(math.prod(geo.box))
    else:
        n_valid = valid.sum(dim=axes, keepdim=True, dtype=torch.float32)
    s = torch.where(finite, clean, s_max)
    if inverse:
        s = s_max - s
        total = n_valid * s_max - total
    if valid is not None:
        s = s * valid
    if valid is None:
        mean = total / n_valid
    else:  # divide_no_nan: a sample with no valid centre has mean 0
        mean = torch.where(n_valid > 0, total / n_valid.clamp_min(1.0), 0.0)
    salient = mean > 0.0
    if not isinstance(gamma, float):
        salient = salient & (gamma < 1.0)
    p = torch.where(salient, gamma * (s / mean), gamma)
    return p.clamp_(0.0, 1.0)
