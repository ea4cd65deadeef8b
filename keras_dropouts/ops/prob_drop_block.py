"""ProbDropBlock (Zhao et al., "Revisiting Structured Dropout", ACML 2023)."""

from keras import ops

from keras_dropouts.ops import _blocks
from keras_dropouts.ops._noise import uniform


def salience_probabilities(x, gamma, valid, geometry, inverse=False):
    """Per-position seed probability proportional to normalised salience.

    Salience is `|x|` (averaged over channels when the mask is shared), with no
    gradient. Over the valid centres of each sample (and channel) it is divided by
    its mean, so `p = clip(gamma * s / mean(s), 0, 1)` has the same expected seed
    count as DropBlock. With `inverse=True` the salience is `max(s) - s`, favouring
    the least salient positions. A map with zero salience falls back to `gamma`.
    """
    s = ops.stop_gradient(ops.abs(ops.cast(x, "float32")))
    if geometry.channels_first:
        s = ops.moveaxis(s, 1, -1)
    if not geometry.per_channel:
        s = ops.mean(s, axis=-1, keepdims=True)
    axes = tuple(range(1, geometry.n + 1))
    if inverse:
        s_max = ops.max(s * valid, axis=axes, keepdims=True)
        s = s_max - s
    s = s * valid
    n_valid = ops.sum(valid, axis=axes, keepdims=True)
    mean = ops.divide_no_nan(ops.sum(s, axis=axes, keepdims=True), n_valid)
    p = ops.where(mean > 0, gamma * ops.divide_no_nan(s, mean), gamma)
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
        x: Tensor of rank 3, 4 or 5: (batch, *spatial, channels) or, with
            `data_format="channels_first"`, (batch, channels, *spatial). For token
            sequences use (batch, steps, features).
        rate: Scalar in [0, 1], the expected fraction of units dropped.
        block_size: Int, or tuple with one int per spatial axis.
        seed: A `keras.random.SeedGenerator`, an int or None.
        data_format: "channels_last" or "channels_first"; defaults to
            `keras.config.image_data_format()`.
        per_channel: One mask per channel (True) or one shared mask whose
            salience is the channel mean of `|x|` (False).
        inverse_salience: If True, prefer the least salient positions.
        mask: Optional (batch, steps) padding mask for 1D inputs.

    Returns:
        A tensor with the shape and dtype of `x`.

    Example:
    >>> y = prob_drop_block(keras.ops.ones((2, 32, 16)), 0.1, 4, seed=1)
    """
    x, geo, valid = _blocks.prepare(x, block_size, data_format, per_channel, mask)
    p = salience_probabilities(x, geo.gamma(rate), valid, geo, inverse_salience)
    noise = uniform(geo.mask_shape, seed)
    seeds = ops.cast(noise < p, "float32") * valid
    return _blocks.apply_block_mask(x, geo.expand(seeds), geo)
