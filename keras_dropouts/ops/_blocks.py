"""Shared geometry of DropBlock-style masks: argument checks, gamma, valid centres,
block expansion and count/count_ones rescaling. All maths in float32."""

import keras
from keras import backend, ops

from keras_dropouts import _checks
from keras_dropouts.ops.dropout import rate_tensor, scale_kept


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


class BlockGeometry:
    """Layout of a mask in channels_last order: (batch, *spatial, mask_channels)."""

    def __init__(self, x, block_size, data_format, per_channel):
        self.n = len(x.shape) - 2
        self.channels_first = data_format == "channels_first"
        dims = ops.shape(x)
        static = tuple(x.shape)
        if self.channels_first:
            self.batch, channels, self.spatial = dims[0], dims[1], tuple(dims[2:])
            static_spatial = static[2:]
        else:
            self.batch, channels, self.spatial = dims[0], dims[-1], tuple(dims[1:-1])
            static_spatial = static[1:-1]
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

    @property
    def mask_shape(self):
        return (self.batch,) + self.spatial + (self.mask_channels,)

    def gamma(self, rate):
        """Seed probability: rate / prod(b) * prod(S) / prod(S - b + 1) (Ghiasi et al.)."""
        rate = rate_tensor(rate)
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
        """Float32 {0, 1} of shape (1, *S, 1): centres whose whole block fits the map."""
        valid = None
        for axis, (s, b) in enumerate(zip(self.spatial, self.block)):
            idx = ops.arange(s, dtype="int32")
            ok = ops.logical_and(idx >= b // 2, idx <= s - 1 - (b - 1) // 2)
            shape = [1] * (self.n + 2)
            shape[axis + 1] = -1
            ok = ops.reshape(ok, shape)
            valid = ok if valid is None else ops.logical_and(valid, ok)
        return ops.cast(valid, "float32")

    def expand(self, seeds):
        """Grows each seed into a block: separable max-pool, one axis at a time."""
        # torch pools channels_first natively and Keras would transpose the full mask
        # around every channels_last pool (measured 5x slower on CPU); TF's CPU pool
        # is channels_last only, and JAX does not care.
        channels_first = backend.backend() == "torch"
        if channels_first:
            seeds = ops.moveaxis(seeds, -1, 1)
        first_spatial = 2 if channels_first else 1
        for axis, w in enumerate(self.window):
            if w == 1:
                continue
            pad = [[0, 0]] * (self.n + 2)
            pad[axis + first_spatial] = [(w - 1) // 2, w // 2]
            pool = [1] * self.n
            pool[axis] = w
            seeds = ops.max_pool(
                ops.pad(seeds, pad), tuple(pool), strides=1, padding="valid",
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

    `dropped` is a float32 {0, 1} mask in channels_last order. Counting is done in
    int32 so that large masks count exactly; the all-dropped case gives zeros, and
    dropped units are exactly 0 whatever they held (see `scale_kept`).
    """
    keep = dropped < 0.5
    count = ops.cast(ops.size(keep), "float32")
    ones = ops.cast(ops.sum(ops.cast(keep, "int32")), "float32")
    scale = ops.divide_no_nan(count, ones)
    return scale_kept(x, geometry.to_input_layout(keep), scale)


def prepare(x, block_size, data_format, per_channel, mask):
    """Returns `(geometry, valid)` for checked arguments, where `valid` (float32,
    broadcastable to the mask) marks the allowed block centres, padding excluded."""
    geometry = BlockGeometry(x, block_size, data_format, per_channel)
    valid = geometry.valid_centres()
    if mask is not None:
        valid = valid * ops.expand_dims(ops.cast(mask, "float32"), -1)
    return geometry, valid
