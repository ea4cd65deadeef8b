"""R-Drop's consistency term from the output of one forward pass on the tiled batch.

`RDropModel` gets one output tensor holding `passes` copies of the batch, which
`models/_tiling.py` hands here viewed as `(B, passes, ...)` (the one place that
knows how the copies are laid out). The common case (no Keras mask, no sample
weights) is computed here directly on that tensor: the per-element transforms
(`log_softmax`, `exp`, `sigmoid`) run once on all passes instead of once per pass,
and the pairs come from one sum over the passes axis, not from slices:

    sum over ordered pairs (a, b) of sum(u_a * (v_a - v_b))
        = sum over passes a of sum(u_a * (m * d_a - sum over passes b of d_b))
        = sum over unordered pairs of sum((u_a - u_b) * (v_a - v_b)),

with `m` passes, `d_a = v_a - v_1` (a per-sample shift of `v` cancels; this one
keeps the differences exact where the passes agree) and `(u, v) = (p, log p)` for
the symmetric KL (from logits `(softmax(l), l)`: the log-sum-exp terms cancel
because both distributions sum to 1), `(sigmoid(l), l)` for the binary KL and
`(y, y)` for the squared difference. Every operation stays within a sample's own passes,
so a batch-sharded tensor needs no data from other devices. That is about half the
backend ops (forward and backward) of calling `keras_dropouts.ops.divergence` per
pair, which matters on torch, where every op is dispatched eagerly each step. The
values are those of `symmetric_kl` / `binary_symmetric_kl` /
`mean_squared_difference` with `reduction="mean"` (float32; tested equal to float
rounding) for finite logits. One difference: logits are not capped at +-1e30 here. A
non-finite logit inside a train step already makes the compiled cross-entropy NaN,
so the cap would not save the step, and it costs a clip forward and backward every
step. Masked or weighted outputs go through `keras_dropouts.ops.divergence`
(`models/_consistency.py`).
"""

import math

import keras
from keras import ops

from keras_dropouts.backend.common import array_ops

# Whether the term may be the whole loss of a step that compiled none (as RDropModel
# has always allowed on JAX; the other backends raise Keras' "No loss to compute").
MAY_BE_THE_ONLY_LOSS = False


def num_replicas():
    """Number of replicas whose losses Keras sums (1: no `tf.distribute` here)."""
    return 1


def wanted(model):
    """Whether `model`'s step, traced now, should take the term's XLA form (TensorFlow only)."""
    del model
    return False


def transforms(xp, kind, z, from_logits):
    """Per-element `(u, v, norm)`: the per-position divergence is
    `sum((u_a / n_a - u_b / n_b) * (v_a - v_b))` over the last axis, `n` being the
    sum of `u` over the last axis where `norm` is True, else 1."""
    if kind == "mse":
        return z, z, False
    eps = keras.config.epsilon()
    if kind == "kl":
        if from_logits:
            # p = exp(z - c) / sum(exp(z - c)) for any per-position c (the max, for range);
            # log p = z - logsumexp(z), and sum_c (p_a - p_b) = 0, so the logsumexp
            # terms cancel: sum((p_a - p_b) * (log p_a - log p_b)) = sum((p_a - p_b) * (z_a - z_b)).
            return xp.exp(z - xp.stop_gradient(xp.max(z, axis=-1, keepdims=True))), z, True
        return xp.clip(z, 0.0, 1.0), xp.log(xp.clip(z, eps, 1.0)), False
    # binary_kl
    if from_logits:
        return xp.sigmoid(z), z, False
    logits = xp.log(xp.clip(z, eps, 1.0)) - xp.log(xp.clip(1.0 - z, eps, 1.0))
    return xp.clip(z, 0.0, 1.0), logits, False


def tiled(kind, grouped, from_logits, weight, xla=False, xp=array_ops.KerasOps):
    """`weight * sum over pairs of D(pass a, pass b)` of a grouped output, no mask/weights.

    `D` is the mean over positions, as the `ops.divergence` functions reduce it:
    the KLs are halved (`(KL(P||Q) + KL(Q||P)) / 2`), the symmetric KL sums the
    class axis (`kl`), the binary KL and the squared difference average the last
    axis (`binary_kl`, `mse`).

    Args:
        kind: "kl", "binary_kl" or "mse".
        grouped: The output on the tiled batch viewed as `(B, passes, ...)`
            (`models/_tiling.group`), rank >= 3; `passes` (axis 1) must be known.
        from_logits: Whether the output holds logits.
        weight: Python float, the term's weight.
        xla: Unused here: only TensorFlow's `consistency.tiled` has an XLA form
            (`wanted` says when; it is False on the other backends).
        xp: The array functions (`array_ops.KerasOps`, or torch's eager `TorchOps`).

    Returns:
        A float32 scalar tensor.
    """
    del xla
    z = xp.float32(grouped)
    shape = tuple(z.shape)
    passes = shape[1]
    u, v, norm = transforms(xp, kind, z, from_logits)
    # Differences from the first pass: exact where the passes agree closely, so the
    # sum over the passes axis adds no rounding of the size of `v` itself (the shift
    # cancels: sum_a u_a * (m * c - m * c) = 0).
    d = v - v[:, :1]
    w = float(passes) * d - xp.sum(d, axis=1, keepdims=True)
    if norm:
        # Normalised after the class sum, not by a softmax before it: a position's two
        # class sums are independent, so where a mesh shards the classes they travel in
        # one all-reduce with the compiled loss's (tests/test_multi_process_collectives.py).
        total = xp.sum(xp.sum(u * w, axis=-1) / xp.sum(u, axis=-1))
    else:
        total = xp.sum(u * w)
    scale = weight * (1.0 if kind == "mse" else 0.5)
    # Positions per pass: every element, except that `kl` sums the class axis.
    if all(s is not None for s in shape):
        per_pass = math.prod(shape) // passes
        if kind == "kl":
            per_pass //= max(shape[-1], 1)
        return total * (scale / max(per_pass, 1))
    per_pass = ops.cast(ops.size(z), "float32") / float(passes)
    if kind == "kl":
        per_pass = per_pass / ops.cast(ops.shape(z)[-1], "float32")
    return total * scale / ops.maximum(per_pass, 1.0)
