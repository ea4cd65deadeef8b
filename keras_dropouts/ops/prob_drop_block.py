"""ProbDropBlock (Zhao et al., "Revisiting Structured Dropout", ACML 2023)."""

from keras import ops

from keras_dropouts import _checks
from keras_dropouts.ops import _blocks
from keras_dropouts.ops._noise import uniform


# Salience above this, inf and NaN count as the largest salience of their map (over
# the valid centres): an inf activation is the most salient, not a reason never to
# drop a map, and sums over a map stay finite up to 3e8 positions.
_SALIENCE_CAP = 1e30


def salience_probabilities(x, gamma, valid, geometry, inverse=False):
    """Per-position seed probability proportional to normalised salience.

    Salience is `|x|` (averaged over channels when the mask is shared), with no
    gradient; a non-finite (or above 1e30) salience counts as the largest finite one
    of its map. Over the valid centres of each sample (and channel) it is divided by
    its mean, so `p = clip(gamma * s / mean(s), 0, 1)` has the same expected seed
    count as DropBlock. With `inverse=True` the salience is `max(s) - s`, favouring
    the least salient positions. A map with zero salience falls back to `gamma`, and
    so does everything at rate 1 (gamma 1: every valid centre is a seed).
    """
    gamma = ops.cast(gamma, "float32")
    s = ops.stop_gradient(ops.abs(ops.cast(x, "float32")))
    if geometry.channels_first:
        s = ops.moveaxis(s, 1, -1)
    if not geometry.per_channel:
        s = ops.mean(s, axis=-1, keepdims=True)
    axes = tuple(range(1, geometry.n + 1))
    finite = s <= _SALIENCE_CAP  # False for inf and NaN
    s = ops.where(finite, s, 0.0)
    s_max = ops.max(s * valid, axis=axes, keepdims=True)
    s = ops.where(finite, s, s_max)
    if inverse:
        s = s_max - s
    s = s * valid
    n_valid = ops.sum(valid, axis=axes, keepdims=True)
    mean = ops.divide_no_nan(ops.sum(s, axis=axes, keepdims=True), n_valid)
    uniform_p = ops.logical_or(mean <= 0.0, gamma >= 1.0)
    p = ops.where(uniform_p, gamma, gamma * ops.divide_no_nan(s, mean))
    return ops.clip(p, 0.0, 1.0)


def prob_drop_block(
    x,
    rate,
    block_size,
    seed=None,
    data_format=None,
    per_channel=True,
    inverse_salience=False,
    mask=None,
):
    """DropBlock whose block centres follow normalised feature salience.

    Each valid centre is a seed with probability `clip(gamma * s / mean(s), 0, 1)`,
    where `s = |x|` (no gradient) and `gamma` is DropBlock's seed rate, so on
    average as many blocks are dropped as with `drop_block` at the same `rate`,
    but salient regions are dropped more often (Zhao et al. 2023). Padded steps of
    a sequence (`mask`) never count toward salience and never host a seed.

    Args:
        x: Floating-point tensor of rank 3, 4 or 5: (batch, *spatial, channels)
            or, with `data_format="channels_first"`, (batch, channels, *spatial).
            For token sequences use (batch, steps, features).
        rate: The expected fraction of units dropped: a Python number in [0, 1]
            (checked) or a scalar tensor (clipped to [0, 1]). Rate 1 drops every unit.
        block_size: Positive int, or tuple with one per spatial axis.
        seed: A `keras.random.SeedGenerator`, an int or None.
        data_format: "channels_last" or "channels_first"; defaults to
            `keras.config.image_data_format()`.
        per_channel: One mask per channel (True) or one shared mask whose
            salience is the channel mean of `|x|` (False).
        inverse_salience: If True, prefer the least salient positions.
        mask: Optional (batch, steps) padding mask for 1D inputs.

    Returns:
        A tensor with the shape and dtype of `x`. Dropped units are exactly 0.

    Raises:
        TypeError: if `x` is not floating point.
        ValueError: for a bad rank of `x` or a bad argument (named in the message).

    Example:
    >>> y = prob_drop_block(keras.ops.ones((2, 32, 16)), 0.1, 4, seed=1)
    """
    x, rate, block_size, seed, data_format, per_channel, mask = _blocks.check_arguments(
        x, rate, block_size, seed, data_format, per_channel, mask, "prob_drop_block"
    )
    inverse_salience = _checks.check_bool(inverse_salience, "inverse_salience")
    return _prob_drop_block(
        x, rate, block_size, seed, data_format, per_channel, inverse_salience, mask
    )


def _prob_drop_block(x, rate, block_size, seed, data_format, per_channel, inverse, mask):
    """The op on checked arguments (the layers call this directly)."""
    if _blocks.is_empty(x):
        return x
    geo, valid = _blocks.prepare(x, block_size, data_format, per_channel, mask)
    p = salience_probabilities(x, geo.gamma(rate), valid, geo, inverse)
    noise = uniform(geo.mask_shape, seed)
    seeds = ops.cast(noise < p, "float32") * valid
    return _blocks.apply_block_mask(x, geo.expand(seeds), geo)
