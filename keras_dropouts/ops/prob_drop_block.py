"""ProbDropBlock (Zhao et al., "Revisiting Structured Dropout", ACML 2023)."""

import math

from keras import ops

from keras_dropouts import _checks
from keras_dropouts.ops import _blocks


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

    With static sizes `p` covers the valid-centre box only (`valid` is then the
    padding mask on the box, or None); otherwise the whole map, with `valid` the
    valid-centre (and padding) mask.
    """
    gamma = ops.cast(gamma, "float32")
    s = ops.stop_gradient(ops.abs(ops.cast(x, "float32")))
    if geometry.channels_first:
        s = ops.moveaxis(s, 1, -1)
    if not geometry.per_channel:
        s = ops.mean(s, axis=-1, keepdims=True)
    if geometry.static:
        s = geometry.box_slice(s)
    axes = tuple(range(1, geometry.n + 1))
    finite = s <= _SALIENCE_CAP  # False for inf and NaN
    clean = ops.where(finite, s, 0.0)
    bad = ops.logical_not(finite)
    if valid is not None:
        valid = ops.cast(valid, "float32")
        clean = clean * valid
        bad = ops.logical_and(bad, valid > 0.0)
    # One pass over the salience for all three reductions (XLA fuses sibling
    # reductions); the sum of the salience with non-finite values replaced by the
    # largest finite one is sum(clean) + s_max * n_bad.
    s_max = ops.max(clean, axis=axes, keepdims=True)
    n_bad = ops.sum(ops.cast(bad, "float32"), axis=axes, keepdims=True)
    total = ops.sum(clean, axis=axes, keepdims=True) + s_max * n_bad
    if valid is None:  # static sizes, no padding: every centre of the box is valid
        n_valid = float(math.prod(geometry.box))
    else:
        n_valid = ops.sum(valid, axis=axes, keepdims=True)
    s = ops.where(finite, clean, s_max)
    if inverse:
        s = s_max - s
        total = n_valid * s_max - total
    if valid is not None:
        s = s * valid
    mean = ops.divide_no_nan(total, n_valid)
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
    x, rate, block_size, seed, data_format, per_channel, mask = _blocks.check_arguments(
        x, rate, block_size, seed, data_format, per_channel, mask, "prob_drop_block"
    )
    inverse_salience = _checks.check_bool(inverse_salience, "inverse_salience")
    gamma = _blocks.check_gamma(gamma)
    return _prob_drop_block(
        x, rate, block_size, seed, data_format, per_channel, inverse_salience, mask, gamma
    )


def _prob_drop_block(
    x, rate, block_size, seed, data_format, per_channel, inverse, mask, gamma="exact"
):
    """The op on checked arguments (the layers call this directly)."""
    if _blocks.is_empty(x):
        return x
    torch_branch = _blocks.torch_branch(x, seed)
    if torch_branch is not None:
        return torch_branch.drop_block(
            x, rate, block_size, seed, data_format == "channels_first", per_channel, mask,
            gamma, salience=(inverse,),
        )
    geo = _blocks.BlockGeometry(x, block_size, data_format, per_channel)
    if geo.static:
        valid = None if mask is None else _blocks.padding_box(geo, mask)
    else:
        valid = geo.valid_centres()
        if mask is not None:
            valid = ops.logical_and(valid, ops.expand_dims(ops.cast(mask, "bool"), -1))
    p = salience_probabilities(x, geo.gamma(rate, gamma), valid, geo, inverse)
    seeds = _blocks.draw_seeds(geo, p, seed, mask)
    return _blocks.apply_block_mask(x, geo.expand(seeds), geo)
