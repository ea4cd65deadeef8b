"""The layout of a DropBlock-style mask, shared by every backend and torch's eager path."""

import math

from keras import ops


class BlockGeometry:
    """Layout of a mask in channels_last order: (batch, *spatial, mask_channels).

    With static spatial sizes (the usual case) seeds are drawn only at the valid
    block centres, a (batch, *box, mask_channels) array with `box = S - b + 1` per
    axis, and grown into blocks by padding `b - 1` zeros on each side and pooling
    with window `b`. With a spatial size known only at run time the seeds are drawn
    on the whole map and multiplied by a valid-centre mask built in the step.

    Args:
        x: The input (a tensor whose static shape is read).
        block_size: Tuple of positive ints, one per spatial axis.
        data_format: "channels_last" or "channels_first".
        per_channel: One mask per channel (True) or one shared by all (False).
    """

    def __init__(self, x, block_size, data_format, per_channel):
        self.n = len(x.shape) - 2
        self.channels_first = data_format == "channels_first"
        dims = ops.shape(x)
        static = tuple(x.shape)
        if self.channels_first:
            self.batch, channels, self.spatial = dims[0], dims[1], tuple(dims[2:])
            static_spatial, static_channels = static[2:], static[1]
        else:
            self.batch, channels, self.spatial = dims[0], dims[-1], tuple(dims[1:-1])
            static_spatial, static_channels = static[1:-1], static[-1]
        self.per_channel = per_channel
        self.mask_channels = channels if per_channel else 1
        self.static = None not in static_spatial
        if self.static:  # the usual case, kept lean: torch's eager path builds one per call
            self.sizes = tuple(map(int, static_spatial))
            self.window = self.block = tuple(map(min, block_size, self.sizes))
            self.box = tuple(s - w + 1 for s, w in zip(self.sizes, self.window))
        else:
            # The pooling window must be static: clip to the feature size when it is known.
            # `block` (clipped at run time) sets gamma and the valid centres, and the
            # window still covers the whole map.
            self.window = tuple(
                b if s is None else min(b, s) for b, s in zip(block_size, static_spatial)
            )
            self.block = tuple(
                ops.minimum(b, s) if not isinstance(s, int) else min(b, s)
                for b, s in zip(block_size, self.spatial)
            )
        # Number of mask units, a Python int when every size is static.
        known = static[:1] + static_spatial + ((static_channels if per_channel else 1),)
        self.count = None if None in known else math.prod(known)

    @property
    def mask_shape(self):
        return (self.batch,) + self.spatial + (self.mask_channels,)

    @property
    def box_shape(self):
        return (self.batch,) + self.box + (self.mask_channels,)

    def float_sizes(self):
        """(spatial sizes, clipped blocks): Python ints where static, else float32 tensors."""
        sizes, blocks = [], []
        for s, b in zip(self.spatial, self.block):
            if not (isinstance(s, int) and isinstance(b, int)):
                s, b = ops.cast(s, "float32"), ops.cast(b, "float32")
            sizes.append(s)
            blocks.append(b)
        return sizes, blocks

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
        """`t` (batch, *spatial, ...) restricted to the valid centres (static sizes);
        plain indexing, so it works on any framework's tensors."""
        index = [slice(None)] * len(t.shape)
        for axis, (w, b) in enumerate(zip(self.window, self.box)):
            index[axis + 1] = slice(w // 2, w // 2 + b)
        return t[tuple(index)]

    def to_input_layout(self, mask):
        """Moves the mask's channel axis to where the input has it."""
        if not self.channels_first:
            return mask
        return ops.moveaxis(mask, -1, 1)
