"""DropBlock (Ghiasi et al. 2018) for 1D, 2D and 3D feature maps."""

from keras_dropouts import backend
from keras_dropouts.ops import _block_checks, _docstrings


@_docstrings.fill
def drop_block(
    x,
    rate,
    block_size,
    seed=None,
    data_format=None,
    per_channel=True,
    mask=None,
    gamma="exact",
):
    """Drops contiguous blocks of a feature map (DropBlock, Ghiasi et al. 2018).

    Block centres are sampled with probability `gamma` among the centres whose
    whole block fits inside the map, grown into `block_size` blocks by max-pooling,
    and the kept units are rescaled by `count / count_ones` (over the whole batch).
    By default gamma is solved so that the expected dropped fraction equals `rate`,
    counting overlapping blocks; `gamma="paper"` uses Ghiasi et al.'s
    `rate / prod(b) * prod(S) / prod(S - b + 1)`, which ignores overlaps and drops
    less (0.179 at rate 0.2 on 56x56 maps with block 7). The block is clipped to the
    feature size on every axis; a block not smaller than the map drops a whole map
    with probability `rate`. `rate` may be a tensor.

    Args:
        x: Floating-point tensor of rank 3, 4 or 5: (batch, *spatial, channels)
            or, with `data_format="channels_first"`, (batch, channels, *spatial).
        {block_args}
        per_channel: If True (the paper's Algorithm 1), every channel has its own
            mask; if False, one mask is shared by all channels (C times fewer
            random draws).
        mask: Optional (batch, steps) padding mask for 1D inputs: no block is
            centred on a padded step (so at rate 1, padding further than
            `block_size // 2` from a real step is not dropped).
        gamma: "exact" (default): the seed rate whose expected dropped fraction is
            `rate`, solved per static map shape (cached; the paper's formula is used
            when a spatial size is only known at run time). "paper": Ghiasi et al.'s
            formula, exactly. With a padding `mask`, "exact" assumes an unpadded map.

    Returns:
        A tensor with the shape and dtype of `x`. Dropped units are exactly 0, kept
        ones are rescaled in float32 and cast back.

    Raises:
        TypeError: if `x` is not floating point.
        ValueError: for a bad rank of `x`, or a bad `rate`, `block_size`,
            `data_format`, `per_channel`, `seed`, `mask` or `gamma`.

    Example:
    >>> y = drop_block(keras.ops.ones((2, 16, 16, 8)), 0.1, 5, seed=1)
    """
    x, rate, block_size, seed, data_format, per_channel, mask = _block_checks.check_arguments(
        x, rate, block_size, seed, data_format, per_channel, mask, "drop_block"
    )
    gamma = _block_checks.check_gamma(gamma)
    return _drop_block(x, rate, block_size, seed, data_format, per_channel, mask, gamma)


def _drop_block(x, rate, block_size, seed, data_format, per_channel, mask, gamma="exact"):
    """The op on checked arguments (the layers call this directly)."""
    if _block_checks.is_empty(x):
        return x
    return backend.blocks.drop_block(
        x, rate, block_size, seed, data_format, per_channel, mask, gamma
    )
