"""Shared geometry of DropBlock-style masks: argument checks, gamma, valid centres,
block expansion and count/count_ones rescaling. All maths in float32."""

from keras import backend, ops


def normalize_data_format(data_format):
    data_format = data_format or backend.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            "Argument `data_format` must be 'channels_last' or 'channels_first'. "
            f"Received: data_format={data_format!r}"
        )
    return data_format


def normalize_block_size(block_size, n):
    """`block_size` as a tuple of `n` positive ints (an int is used on every axis)."""
    if isinstance(block_size, int) and not isinstance(block_size, bool):
        block_size = (block_size,) * n
    try:
        block_size = tuple(int(b) for b in block_size)
    except TypeError:
        raise ValueError(
            f"Argument `block_size` must be an int or a tuple of {n} ints. "
            f"Received: block_size={block_size!r}"
        )
    if len(block_size) != n or any(b < 1 for b in block_size):
        raise ValueError(
            f"Argument `block_size` must be an int >= 1 or a tuple of {n} ints >= 1. "
            f"Received: block_size={block_size!r}"
        )
    return block_size


def check_input_rank(x, n):
    if len(x.shape) != n + 2:
        raise ValueError(
            f"Expected an input of rank {n + 2} (batch, {n} spatial axes, channels). "
            f"Received: input shape={tuple(x.shape)}"
        )


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
        gamma = ops.cast(rate, "float32")
        for s, b in zip(self.spatial, self.block):
            s = ops.cast(s, "float32")
            b = ops.cast(b, "float32")
            gamma = gamma * s / (b * (s - b + 1.0))
        return gamma

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
    """x * keep * count / count_ones, the rescale computed over the whole batch.

    `dropped` is a float32 {0, 1} mask in channels_last order. Counting is done in
    int32 so that large masks count exactly; the all-dropped case gives zeros.
    """
    keep = 1.0 - dropped
    count = ops.cast(ops.size(keep), "float32")
    ones = ops.cast(ops.sum(ops.cast(keep, "int32")), "float32")
    scale = ops.divide_no_nan(count, ones)
    mask = geometry.to_input_layout(keep * scale)
    return x * ops.cast(mask, x.dtype)


def prepare(x, block_size, data_format, per_channel, mask):
    """Checks the arguments; returns `(x, geometry, valid)` where `valid` (float32,
    broadcastable to the mask) marks the allowed block centres, padding excluded."""
    x = ops.convert_to_tensor(x)
    n = len(x.shape) - 2
    if n < 1:
        check_input_rank(x, 1)
    block_size = normalize_block_size(block_size, n)
    data_format = normalize_data_format(data_format)
    geometry = BlockGeometry(x, block_size, data_format, per_channel)
    valid = geometry.valid_centres()
    if mask is not None:
        if n != 1:
            raise ValueError(
                "A padding `mask` is only supported for 1D inputs (batch, steps, channels)."
            )
        valid = valid * ops.expand_dims(ops.cast(mask, "float32"), -1)
    return x, geometry, valid
