"""Shared geometry of DropBlock-style masks: argument checks, gamma, valid centres,
block expansion and count/count_ones rescaling: the generic `keras.ops` path (TF,
JAX, torch under `torch.compile`). Eager torch calls take `ops/_torch.py`, which
computes the same masks from the same noise. Noise and rescale in float32."""

import math

import keras
from keras import backend, ops

from keras_dropouts import _checks
from keras_dropouts.ops import _gamma
from keras_dropouts.ops._noise import uniform
from keras_dropouts.ops.dropout import exact_ratio, rate_tensor, scale_kept


_SPATIAL = {1: "steps", 2: "height, width", 3: "depth, height, width"}


def normalize_data_format(data_format):
    """`data_format` ("channels_last", "channels_first" or None: Keras' default)."""
    _checks.check_choice(data_format, "data_format", ("channels_last", "channels_first", None))
    return data_format or backend.image_data_format()


def normalize_block_size(block_size, n, x=None):
    """`block_size` as a tuple of `n` positive ints (an int is used on every axis).

    Integral floats (3.0) are accepted; bools, strings and fractional sizes are not.
    With the input `x`, a tuple of the wrong length also names the input's shape.
    """
    expected = f"a positive integer or a tuple of {n} positive integers"
    if x is not None:
        expected += f" (one per spatial axis of the input of shape {_checks.shape_of(x)})"
    if _checks.is_number(block_size):
        sizes = (block_size,) * n
    elif isinstance(block_size, (tuple, list)):
        sizes = tuple(block_size)
    else:
        raise _checks.invalid("block_size", expected, block_size)
    if len(sizes) != n:
        raise _checks.invalid("block_size", expected, block_size)
    try:
        return tuple(_checks.check_int(b, "block_size", min_value=1) for b in sizes)
    except ValueError:
        raise _checks.invalid("block_size", expected, block_size) from None


def check_block_input(x, owner, name="x"):
    """`x` as a floating tensor of rank 3, 4 or 5."""
    x = _checks.to_float_tensor(x, name, owner)
    _checks.check_input_rank(
        x, name, (3, 4, 5), layout="(batch, 1 to 3 spatial axes, channels)", owner=owner
    )
    return x


def layout(n):
    return f"(batch, {_SPATIAL[n]}, channels)"


def check_arguments(x, rate, block_size, seed, data_format, per_channel, mask, owner):
    """Checks the public arguments of a block op; returns them normalised."""
    x = check_block_input(x, owner)
    n = len(x.shape) - 2
    block_size = normalize_block_size(block_size, n, x)
    data_format = normalize_data_format(data_format)
    per_channel = _checks.check_bool(per_channel, "per_channel")
    rate = _checks.check_rate_or_tensor(rate)
    seed = _checks.check_seed_argument(seed)
    mask = check_padding_mask(mask, x, data_format)
    return x, rate, block_size, seed, data_format, per_channel, mask


def check_padding_mask(mask, x, data_format):
    """A (batch, steps) padding mask for a 1D input, as a tensor; None stays None."""
    if mask is None:
        return None
    n = len(x.shape) - 2
    if n != 1:
        raise _checks.invalid_tensor(
            "mask", "None: a padding mask is only supported for 1D inputs "
            f"(batch, steps, channels), and the input has shape {_checks.shape_of(x)}", mask,
        )
    mask = ops.convert_to_tensor(mask) if not isinstance(mask, keras.KerasTensor) else mask
    shape = _checks.shape_of(x)
    steps = shape[2] if data_format == "channels_first" else shape[1]
    expected = (shape[0], steps)
    got = _checks.shape_of(mask)
    if len(got) != 2 or any(a is not None and b is not None and a != b
                            for a, b in zip(got, expected)):
        raise ValueError(
            "Invalid value received for argument `mask`. Expected a (batch, steps) padding "
            f"mask of shape {expected} for the input of shape {shape}. "
            f"Received: mask.shape={got}"
        )
    return mask


def is_empty(x):
    """True when a static dimension of `x` is 0: there is nothing to drop."""
    return any(s == 0 for s in x.shape)


GAMMA_MODES = ("exact", "paper")


def check_gamma(gamma):
    """`gamma`: "exact" (the seed rate whose expected dropped fraction is `rate`) or
    "paper" (Ghiasi et al.'s formula, which ignores overlapping blocks)."""
    return _checks.check_choice(gamma, "gamma", GAMMA_MODES)


def torch_branch(x, seed):
    """The torch module when it handles this call (see `ops/_torch.py`), else None."""
    if backend.backend() != "torch":
        return None
    from keras_dropouts.ops import _torch

    return _torch if _torch.active(x) and _torch.can_draw(seed) else None


# The dtype block masks are pooled in: the narrowest each backend's max-pool takes
# everywhere. XLA (JAX) pools int8; TF's MaxPool3D and GPU MaxPool kernels have no
# int8 (half, bfloat16, float), and its CPU float16 pool is emulated (1.3x slower
# than bfloat16 in the CPU train-step benchmark); torch's CUDA max-pool is floating
# point only (eager torch pools in `_torch.py`).
POOL_DTYPE = {"jax": "int8", "tensorflow": "bfloat16", "torch": "float16"}


class BlockGeometry:
    """Layout of a mask in channels_last order: (batch, *spatial, mask_channels).

    With static spatial sizes (the usual case) seeds are drawn only at the valid
    block centres, a (batch, *box, mask_channels) array with `box = S - b + 1` per
    axis, and grown into blocks by padding `b - 1` zeros on each side and max-pooling
    with window `b`. With a spatial size known only at run time the seeds are drawn
    on the whole map and multiplied by a valid-centre mask built in the step.
    """

    def __init__(self, x, block_size, data_format, per_channel):
        self.n = len(x.shape) - 2
        self.channels_first = data_format == "channels_first"
        dims = ops.shape(x)
        static = tuple(x.shape)
        if self.channels_first:
            self.batch, channels, self.spatial = dims[0], dims[1], tuple(dims[2:])
            static_spatial = static[2:]
            static_channels = static[1]
        else:
            self.batch, channels, self.spatial = dims[0], dims[-1], tuple(dims[1:-1])
            static_spatial = static[1:-1]
            static_channels = static[-1]
        self.per_channel = per_channel
        self.mask_channels = channels if per_channel else 1
        # The pooling window must be static: clip to the feature size when it is known.
        # When a spatial size is only known at run time, `block` (clipped at run time)
        # sets gamma and the valid centres, and the window still covers the whole map.
        self.window = tuple(
            b if s is None else min(b, s) for b, s in zip(block_size, static_spatial)
        )
        self.block = tuple(
            ops.minimum(b, s) if not isinstance(s, int) else min(b, s)
            for b, s in zip(block_size, self.spatial)
        )
        self.static = all(s is not None for s in static_spatial)
        if self.static:
            self.sizes = tuple(int(s) for s in static_spatial)
            self.box = tuple(s - w + 1 for s, w in zip(self.sizes, self.window))
        # Number of mask units, a Python int when every size is static.
        known = static[:1] + static_spatial + ((static_channels if per_channel else 1),)
        self.count = math.prod(known) if all(s is not None for s in known) else None

    @property
    def mask_shape(self):
        return (self.batch,) + self.spatial + (self.mask_channels,)

    @property
    def box_shape(self):
        return (self.batch,) + self.box + (self.mask_channels,)

    def gamma(self, rate, mode="exact"):
        """Seed probability at the valid centres.

        "exact" (static sizes): the rate whose expected dropped fraction equals `rate`,
        counting overlapping blocks (`_gamma`). "paper", and "exact" when a spatial
        size is only known at run time: `rate / prod(b) * prod(S) / prod(S - b + 1)`
        (Ghiasi et al.). Rate 1 gives gamma 1 either way.
        """
        rate = rate_tensor(rate)
        if mode == "exact" and self.static:
            if isinstance(rate, float):
                return _gamma.exact_gamma_value(rate, self.sizes, self.window)
            return _gamma.exact_gamma(rate, self.sizes, self.window)
        if isinstance(rate, float) and rate >= 1.0:
            return 1.0
        gamma = rate
        for s, b in zip(self.spatial, self.block):
            if isinstance(s, int) and isinstance(b, int):
                gamma = gamma * s / (b * (s - b + 1.0))
            else:
                s = ops.cast(s, "float32")
                b = ops.cast(b, "float32")
                gamma = gamma * s / (b * (s - b + 1.0))
        if isinstance(rate, float):
            return gamma
        # At rate 1 every valid centre is a seed (uniform noise < 1 always), and the
        # blocks around the valid centres cover the whole map: everything is dropped.
        return ops.where(rate >= 1.0, 1.0, gamma)

    def valid_centres(self):
        """Bool of shape (1, *S, 1): centres whose whole block fits the map (run-time
        sizes only; with static sizes seeds are drawn at the valid centres)."""
        valid = None
        for axis, (s, b) in enumerate(zip(self.spatial, self.block)):
            idx = ops.arange(s, dtype="int32")
            ok = ops.logical_and(idx >= b // 2, idx <= s - 1 - (b - 1) // 2)
            shape = [1] * (self.n + 2)
            shape[axis + 1] = -1
            ok = ops.reshape(ok, shape)
            valid = ok if valid is None else ops.logical_and(valid, ok)
        return valid

    def box_slice(self, t):
        """`t` (batch, *spatial, ...) restricted to the valid centres (static sizes)."""
        index = [slice(None)] * len(t.shape)
        for axis, (w, b) in enumerate(zip(self.window, self.box)):
            index[axis + 1] = slice(w // 2, w // 2 + b)
        return t[tuple(index)]

    def expand(self, seeds):
        """Grows each seed (bool, channels_last) into a block: `dropped`, int8 {0, 1}.

        One pad, then a separable max-pool, one axis at a time, in int8 (a quarter of
        float32's memory traffic on a memory-bound op). Seeds drawn on the valid-centre
        box are padded by `w - 1` on both sides; seeds on the whole map (run-time sizes)
        by `(w - 1) // 2` and `w // 2`, centring the window.
        """
        seeds = ops.cast(seeds, POOL_DTYPE[backend.backend()])
        pads = [[0, 0]]
        for w in self.window:
            pads.append([w - 1, w - 1] if self.static else [(w - 1) // 2, w // 2])
        pads.append([0, 0])
        # torch (under torch.compile; eager calls take the torch branch) pools
        # channels_first natively; TF's CPU pool is channels_last only; JAX does not care.
        channels_first = backend.backend() == "torch"
        seeds = ops.pad(seeds, pads)
        if channels_first:
            seeds = ops.moveaxis(seeds, -1, 1)
        for axis, w in enumerate(self.window):
            if w == 1:
                continue
            pool = [1] * self.n
            pool[axis] = w
            seeds = ops.max_pool(
                seeds, tuple(pool), strides=1, padding="valid",
                data_format="channels_first" if channels_first else "channels_last",
            )
        return ops.moveaxis(seeds, 1, -1) if channels_first else seeds

    def to_input_layout(self, mask):
        """Moves the mask's channel axis to where the input has it."""
        if not self.channels_first:
            return mask
        return ops.moveaxis(mask, -1, 1)


def apply_block_mask(x, dropped, geometry):
    """`where(keep, x * count / count_ones, 0)`, the rescale computed over the whole batch.

    `dropped` is a {0, 1} mask (int8 or float) in channels_last order. Counting is
    done in int32 so that large masks count exactly; the all-dropped case gives
    zeros, and dropped units are exactly 0 whatever they held (see `scale_kept`).
    """
    keep = ops.equal(dropped, 0)
    count = geometry.count
    count = ops.cast(ops.size(keep), "float32") if count is None else float(count)
    ones = ops.cast(ops.sum(ops.cast(keep, "int32")), "float32")
    scale = exact_ratio(ops.convert_to_tensor(count, "float32"), ones)
    return scale_kept(x, geometry.to_input_layout(keep), scale)


def draw_seeds(geometry, p, seed, mask=None):
    """Bool seeds, channels_last: `uniform < p` at the valid centres (the box when the
    sizes are static, else the whole map times the valid-centre mask), padded steps
    excluded. `p` is a scalar or broadcasts to the box / map."""
    if geometry.static:
        seeds = uniform(geometry.box_shape, seed) < p
        valid = None if mask is None else padding_box(geometry, mask)
    else:
        seeds = uniform(geometry.mask_shape, seed) < p
        valid = geometry.valid_centres()
        if mask is not None:
            valid = ops.logical_and(valid, ops.expand_dims(ops.cast(mask, "bool"), -1))
    return seeds if valid is None else ops.logical_and(seeds, valid)


def padding_box(geometry, mask):
    """A (batch, steps) padding mask as bool (batch, *box, 1) at the valid centres."""
    return geometry.box_slice(ops.expand_dims(ops.cast(mask, "bool"), -1))
