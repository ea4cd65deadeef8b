"""ProbDropBlock (Zhao et al., "Revisiting Structured Dropout", ACML 2023)."""

from keras_dropouts import _checks
from keras_dropouts import backend
from keras_dropouts.ops import _block_checks, _docstrings


@_docstrings.fill
def prob_drop_block(
    x,
    rate,
    block_size,
    seed=None,
    data_format=None,
    per_channel=True,
    inverse_salience=False,
    mask=None,
    gamma="exact",
):
    """DropBlock whose block centres follow normalised feature salience.

    Each valid centre is a seed with probability `clip(gamma * s / mean(s), 0, 1)`,
    where `s = |x|` (no gradient) and `gamma` is DropBlock's seed rate (by default
    corrected for overlapping blocks, see `drop_block`), so on
    average as many blocks are dropped as with `drop_block` at the same `rate`,
    but salient regions are dropped more often (Zhao et al. 2023). Padded steps of
    a sequence (`mask`) never count toward salience and never host a seed.

    Args:
        x: Floating-point tensor of rank 3, 4 or 5: (batch, *spatial, channels)
            or, with `data_format="channels_first"`, (batch, channels, *spatial).
            For token sequences use (batch, steps, features).
        {block_args}
        per_channel: One mask per channel (True) or one shared mask whose
            salience is the channel mean of `|x|` (False).
        inverse_salience: If True, prefer the least salient positions.
        mask: Optional (batch, steps) padding mask for 1D inputs.
        gamma: "exact" (default) or "paper": DropBlock's seed rate, as in
            `drop_block`. With uniform salience the masks equal DropBlock's.

    Returns:
        A tensor with the shape and dtype of `x`. Dropped units are exactly 0.

    Raises:
        TypeError: if `x` is not floating point.
        ValueError: for a bad rank of `x` or a bad argument (named in the message).

    Example:
    >>> y = prob_drop_block(keras.ops.ones((2, 32, 16)), 0.1, 4, seed=1)
    """
    x, rate, block_size, seed, data_format, per_channel, mask = _block_checks.check_arguments(
        x, rate, block_size, seed, data_format, per_channel, mask, "prob_drop_block"
    )
    inverse_salience = _checks.check_bool(inverse_salience, "inverse_salience")
    gamma = _block_checks.check_gamma(gamma)
    return _prob_drop_block(
        x, rate, block_size, seed, data_format, per_channel, inverse_salience, mask, gamma
    )


def _prob_drop_block(
    x, rate, block_size, seed, data_format, per_channel, inverse, mask, gamma="exact"
):
    """The op on checked arguments (the layers call this directly)."""
    if _block_checks.is_empty(x):
        return x
    return backend.blocks.prob_drop_block(
        x, rate, block_size, seed, data_format, per_channel, inverse, mask, gamma
    )
