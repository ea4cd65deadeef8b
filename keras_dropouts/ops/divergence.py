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

Inputs: the two passes must have the same static shape (a mismatch raises a
ValueError naming both shapes; nothing is broadcast), and `mask` / `sample_weight`
must broadcast to the per-position values. Values are only known inside the
compiled step, so they are not checked: probabilities (`from_logits=False`) are
clipped to [0, 1] (as Keras' cross-entropies clip theirs), and logits to +-1e30,
so an inf logit gives a large finite divergence instead of NaN. Tensors are
converted with `keras.ops.convert_to_tensor`, which puts them on Keras' default
device as every `keras.ops` function does (on torch a CPU tensor moves to the GPU),
so constants and inputs always share a device.
"""

import keras
from keras import ops

from keras_dropouts import _checks

__all__ = [
    "binary_symmetric_kl",
    "mean_squared_difference",
    "reduce_consistency",
    "symmetric_kl",
]

# Logits are clipped to +-1e30 before use: an inf logit (e.g. a float16 overflow)
# would make log_softmax compute inf - inf = NaN; a huge finite one gives a huge but
# finite divergence, and sums over the classes stay finite.
_LOGIT_CAP = 1e30


def _tensor(x):
    """`x` as a tensor on Keras' default device, as every `keras.ops` function puts
    its inputs (on torch, a CPU tensor moves to the GPU): then constants created by
    `keras.ops` and the inputs share one device."""
    if x is None or isinstance(x, keras.KerasTensor):
        return x
    return ops.convert_to_tensor(x)


def _pair(a, b, name_a, name_b):
    """Both passes as float32 tensors of the same static shape."""
    a, b = _tensor(a), _tensor(b)
    _checks.check_same_shape(a, b, name_a, name_b)
    return ops.cast(a, "float32"), ops.cast(b, "float32")


def _check_axis(axis, x):
    rank = len(x.shape)
    if rank == 0:
        raise _checks.invalid_tensor("p", "a tensor of rank >= 1 (classes on `axis`)", x)
    if isinstance(axis, bool) or not isinstance(axis, int) or not -rank <= axis < rank:
        raise _checks.invalid(
            "axis", f"an integer in [-{rank}, {rank}) for inputs of shape {_checks.shape_of(x)}",
            axis,
        )
    return axis


def _log_probs(x, from_logits, axis):
    if from_logits:
        return ops.log_softmax(ops.clip(x, -_LOGIT_CAP, _LOGIT_CAP), axis=axis)
    eps = keras.config.epsilon()
    return ops.log(ops.clip(x, eps, 1.0))


def _binary_logits(x, from_logits):
    if from_logits:
        return ops.clip(x, -_LOGIT_CAP, _LOGIT_CAP)
    eps = keras.config.epsilon()
    # log(p) - log(1 - p) with both probabilities clipped away from 0.
    return ops.log(ops.clip(x, eps, 1.0)) - ops.log(ops.clip(1.0 - x, eps, 1.0))


def _check_weights(w, values, name):
    """`mask` / `sample_weight` must broadcast to `values` the way `_match_rank`
    aligns them: from the first axis (trailing 1-dims dropped, missing ones added)."""
    if w is None:
        return None
    w = _tensor(w)
    shape, target = _checks.shape_of(w), _checks.shape_of(values)
    ok = _checks.lines_up(shape, target, ones_broadcast=True)
    if not ok:
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a tensor that "
            f"broadcasts, from the first axis, to the per-position values of shape {target} "
            "(the inputs' shape without the class / unit axis). "
            f"Received: {name}.shape={shape}"
        )
    return w


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
    _checks.check_choice(reduction, "reduction", ("mean", "sum", "none"))
    values = ops.cast(_tensor(values), "float32")
    mask = _check_weights(mask, values, "mask")
    sample_weight = _check_weights(sample_weight, values, "sample_weight")
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
    p, q = _pair(p, q, "p", "q")
    from_logits = _checks.check_bool(from_logits, "from_logits")
    axis = _check_axis(axis, p)
    lp = _log_probs(p, from_logits, axis)
    lq = _log_probs(q, from_logits, axis)
    if from_logits:
        pp, pq = ops.exp(lp), ops.exp(lq)
    else:
        pp, pq = ops.clip(p, 0.0, 1.0), ops.clip(q, 0.0, 1.0)
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
        mask: Optional boolean mask over the positions `(B, ...)`, as for
            `reduce_consistency`.
        sample_weight: Optional per-sample or per-position weights.
        reduction: `"mean"`, `"sum"` or `"none"`, see `reduce_consistency`.

    Returns:
        A float32 scalar, or the per-position values `(B, ...)` for `"none"`.

    Example:
    >>> binary_symmetric_kl(keras.ops.array([[0.0, 1.0]]), keras.ops.array([[0.5, 1.0]]))
    """
    from_logits = _checks.check_bool(from_logits, "from_logits")

    def per_unit(p, q):
        a = _binary_logits(p, from_logits)
        b = _binary_logits(q, from_logits)
        if from_logits:
            pa, pb = ops.sigmoid(a), ops.sigmoid(b)
        else:
            pa, pb = ops.clip(p, 0.0, 1.0), ops.clip(q, 0.0, 1.0)
        return 0.5 * (pa - pb) * (a - b)

    return _mean_over_units(per_unit, (p, q), ("p", "q"), mask, sample_weight, reduction)


def mean_squared_difference(a, b, mask=None, sample_weight=None, reduction="mean"):
    """Mean squared difference of two regression outputs (last axis averaged).

    The regression analogue of `symmetric_kl` for R-Drop: like
    `keras.losses.mean_squared_error`, the last axis is averaged.

    Args:
        a: Output of the first pass, `(B, ..., D)`.
        b: Output of the second pass, same shape.
        mask: Optional boolean mask, `(B, ...)`: positions where it is False are
            left out of the mean.
        sample_weight: Optional per-sample or per-position weights.
        reduction: `"mean"`, `"sum"` or `"none"`, see `reduce_consistency`.

    Returns:
        A float32 scalar (`"mean"`, `"sum"`) or per-position values.

    Example:
    >>> mean_squared_difference(keras.ops.zeros((2, 1)), keras.ops.ones((2, 1)))  # 1.0
    """
    return _mean_over_units(
        lambda a, b: ops.square(a - b), (a, b), ("a", "b"), mask, sample_weight, reduction
    )


def _mean_over_units(per_unit, pair, names, mask, sample_weight, reduction):
    """`per_unit(a, b)` of the two passes (float32, same shape, units on the last axis)
    averaged over the units, then reduced like a loss (`reduce_consistency`)."""
    a, b = _pair(*pair, *names)
    if len(a.shape) == 0:
        raise _checks.invalid_tensor(names[0], "a tensor of rank >= 1 (units on the last axis)", a)
    values = ops.mean(per_unit(a, b), axis=-1)
    return reduce_consistency(values, mask, sample_weight, reduction)
