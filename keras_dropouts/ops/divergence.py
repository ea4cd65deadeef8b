"""Consistency terms between two stochastic forward passes (R-Drop).

All functions compute in float32 whatever the input dtype (mixed precision), are
built only on `keras.ops`, and never produce NaN/inf for probabilities that are
exactly 0 or 1: the symmetric KL is written as
`(KL(p||q) + KL(q||p)) / 2 = sum((p - q) * (log p - log q)) / 2`, every term of
which is non-negative, and log-probabilities are either taken from a
`log_softmax` (logits) or from probabilities clipped to `[epsilon, 1]`.

Reduction (`reduction="mean"`) follows Keras' `sum_over_batch_size`: with a
`mask` (True = keep, e.g. the Keras mask of a padded sequence) the mean is taken
over the kept positions only; `sample_weight` multiplies the per-position values
(so a zero weight excludes a position) and the sum is divided by the number of
(kept) positions, as Keras losses do.
"""

import keras
from keras import ops

__all__ = [
    "binary_symmetric_kl",
    "mean_squared_difference",
    "reduce_consistency",
    "symmetric_kl",
]


def _log_probs(x, from_logits, axis):
    x = ops.cast(x, "float32")
    if from_logits:
        return ops.log_softmax(x, axis=axis)
    eps = keras.config.epsilon()
    return ops.log(ops.clip(x, eps, 1.0))


def _binary_logits(x, from_logits):
    x = ops.cast(x, "float32")
    if from_logits:
        return x
    eps = keras.config.epsilon()
    # log(p) - log(1 - p) with both probabilities clipped away from 0.
    return ops.log(ops.clip(x, eps, 1.0)) - ops.log(ops.clip(1.0 - x, eps, 1.0))


def reduce_consistency(values, mask=None, sample_weight=None, reduction="mean"):
    """Reduces per-position consistency values like a Keras loss.

    Args:
        values: Float tensor of per-position values, e.g. shape `(B,)` or `(B, T)`.
        mask: Optional boolean (or 0/1) tensor broadcastable to `values`; positions
            where it is False are excluded and the mean is over the kept ones.
        sample_weight: Optional weights of shape `(B,)`, `(B, 1)` or the shape of
            `values`; they multiply the per-position values.
        reduction: `"mean"` (sum of weighted values divided by the number of kept
            positions), `"sum"`, or `"none"` (weighted values, masked to 0).

    Returns:
        A float32 scalar (`"mean"`, `"sum"`) or a tensor shaped like `values`.

    Example:
    >>> reduce_consistency(keras.ops.ones((2, 3)), mask=[[1, 1, 0], [1, 0, 0]])
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(
            "Argument `reduction` must be one of 'mean', 'sum', 'none'. "
            f"Received: reduction={reduction!r}"
        )
    values = ops.cast(values, "float32")
    weights = ops.ones_like(values)
    if sample_weight is not None:
        weights = weights * _match_rank(ops.cast(sample_weight, "float32"), values)
    if mask is not None:
        keep = _match_rank(ops.cast(mask, "float32"), values)
        keep = ops.broadcast_to(keep, ops.shape(values))
        weights = weights * keep
        count = ops.sum(keep)
    else:
        count = ops.cast(ops.size(values), "float32")
    weighted = values * weights
    if reduction == "none":
        return weighted
    total = ops.sum(weighted)
    if reduction == "sum":
        return total
    return ops.divide_no_nan(total, count)


def _match_rank(w, values):
    """Squeezes trailing 1-dims or appends axes so `w` broadcasts over `values`."""
    while len(w.shape) > len(values.shape) and w.shape[-1] == 1:
        w = ops.squeeze(w, axis=-1)
    while len(w.shape) < len(values.shape):
        w = ops.expand_dims(w, axis=-1)
    return w


def symmetric_kl(
    p,
    q,
    from_logits=False,
    axis=-1,
    mask=None,
    sample_weight=None,
    reduction="mean",
):
    """Symmetric KL divergence `(KL(P||Q) + KL(Q||P)) / 2` between two categoricals.

    This is the paper's `L_KL` of R-Drop (Liang et al., 2021, eq. 2) for two
    predictive distributions over the classes on `axis`.

    Args:
        p: Logits or probabilities of the first pass, e.g. `(B, C)` or `(B, T, C)`.
        q: Same for the second pass, same shape as `p`.
        from_logits: Whether `p` and `q` are logits (softmax over `axis`) rather
            than probabilities.
        axis: The class axis.
        mask: Optional boolean tensor over the non-class axes (e.g. `(B, T)`, the
            Keras padding mask); masked positions are excluded from the mean.
        sample_weight: Optional per-sample or per-position weights.
        reduction: `"mean"`, `"sum"` or `"none"`, see `reduce_consistency`.

    Returns:
        A float32 scalar, or per-position values (`reduction="none"`).

    Example:
    >>> p = keras.ops.array([[2.0, 0.0, -1.0]])
    >>> symmetric_kl(p, p, from_logits=True)  # 0.0
    """
    lp = _log_probs(p, from_logits, axis)
    lq = _log_probs(q, from_logits, axis)
    if from_logits:
        pp, pq = ops.exp(lp), ops.exp(lq)
    else:
        pp, pq = ops.cast(p, "float32"), ops.cast(q, "float32")
    values = 0.5 * ops.sum((pp - pq) * (lp - lq), axis=axis)
    return reduce_consistency(values, mask, sample_weight, reduction)


def binary_symmetric_kl(
    p,
    q,
    from_logits=False,
    mask=None,
    sample_weight=None,
    reduction="mean",
):
    """Symmetric KL between independent Bernoulli outputs (sigmoid / binary CE).

    Per unit, `(KL(P||Q) + KL(Q||P)) / 2 = (p - q) * (logit(p) - logit(q)) / 2`;
    like `keras.losses.binary_crossentropy`, units on the last axis are averaged.

    Args:
        p: Logits or probabilities of the first pass, `(B, ..., K)`.
        q: Same for the second pass.
        from_logits: Whether the inputs are logits.
        mask: Optional boolean mask over the leading axes (without `K`).
        sample_weight: Optional per-sample or per-position weights.
        reduction: `"mean"`, `"sum"` or `"none"`.

    Returns:
        A float32 scalar, or per-position values (`reduction="none"`).

    Example:
    >>> binary_symmetric_kl(keras.ops.array([[0.0, 1.0]]), keras.ops.array([[0.5, 1.0]]))
    """
    a = _binary_logits(p, from_logits)
    b = _binary_logits(q, from_logits)
    if from_logits:
        pa, pb = ops.sigmoid(a), ops.sigmoid(b)
    else:
        pa, pb = ops.cast(p, "float32"), ops.cast(q, "float32")
    values = 0.5 * ops.mean((pa - pb) * (a - b), axis=-1)
    return reduce_consistency(values, mask, sample_weight, reduction)


def mean_squared_difference(a, b, mask=None, sample_weight=None, reduction="mean"):
    """Mean squared difference of two regression outputs (last axis averaged).

    The regression analogue of `symmetric_kl` for R-Drop: like
    `keras.losses.mean_squared_error`, the last axis is averaged.

    Args:
        a: Output of the first pass, `(B, ..., D)`.
        b: Output of the second pass, same shape.
        mask: Optional boolean mask over the leading axes (without `D`).
        sample_weight: Optional per-sample or per-position weights.
        reduction: `"mean"`, `"sum"` or `"none"`.

    Returns:
        A float32 scalar, or per-position values (`reduction="none"`).

    Example:
    >>> mean_squared_difference(keras.ops.zeros((2, 1)), keras.ops.ones((2, 1)))  # 1.0
    """
    d = ops.cast(a, "float32") - ops.cast(b, "float32")
    values = ops.mean(ops.square(d), axis=-1)
    return reduce_consistency(values, mask, sample_weight, reduction)
