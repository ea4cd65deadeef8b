"""R-Drop's consistency term from the tiled output of one forward pass.

`RDropModel` gets one output tensor holding `passes` copies of the batch. The
common case (no Keras mask, no sample weights) is computed here directly on that
tensor: the per-element transforms (`log_softmax`, `exp`, `sigmoid`) run once on
the tiled tensor instead of once per pass, and the pairs come from one `roll` of
the tiled tensor per pass offset, not from slices:

    sum over ordered pairs (a, b) of sum(u_a * (v_a - v_b))
        = sum over unordered pairs of sum((u_a - u_b) * (v_a - v_b)),

with `(u, v) = (p, log p)` for the symmetric KL (from logits `(softmax(l), l)`: the
log-sum-exp terms cancel because both distributions sum to 1), `(sigmoid(l), l)`
for the binary KL and `(y, y)` for the squared difference. That is about half the backend ops
(forward and backward) of calling `keras_dropouts.ops.divergence` per pair, which
matters on torch, where every op is dispatched eagerly each step. The values are
those of `symmetric_kl` / `binary_symmetric_kl` / `mean_squared_difference` with
`reduction="mean"` (float32; tested equal to float rounding) for finite logits. One
difference: logits are not capped at +-1e30 here. A non-finite logit inside a
train step already makes the compiled cross-entropy NaN, so the cap would not
save the step, and it costs a clip forward and backward every step. Masked or
weighted outputs go through `keras_dropouts.ops.divergence`.
"""

import math

import keras
from keras import ops

from keras_dropouts.ops.divergence import (
    binary_symmetric_kl,
    mean_squared_difference,
    symmetric_kl,
)

if keras.backend.backend() == "torch":
    from keras_dropouts.models import _rdrop_torch
else:
    _rdrop_torch = None
if keras.backend.backend() == "tensorflow":
    from keras_dropouts.models import _consistency_tf

_PAIR_FNS = {
    "kl": lambda a, b, logits, mask, sw: symmetric_kl(a, b, from_logits=logits, mask=mask, sample_weight=sw),
    "binary_kl": lambda a, b, logits, mask, sw: binary_symmetric_kl(
        a, b, from_logits=logits, mask=mask, sample_weight=sw
    ),
    "mse": lambda a, b, logits, mask, sw: mean_squared_difference(a, b, mask=mask, sample_weight=sw),
}


def pairwise(kind, parts, pairs, from_logits, mask=None, sample_weight=None):
    """Sum over `pairs` of the divergence between per-pass tensors (via `ops.divergence`)."""
    fn = _PAIR_FNS[kind]
    total = None
    for a, b in pairs:
        v = fn(parts[a], parts[b], from_logits, mask, sample_weight)
        total = v if total is None else total + v
    return total


class _KerasOps:
    """The few ops the tiled term needs, as `keras.ops` (any backend, symbolic or not)."""

    float32 = staticmethod(lambda z: ops.cast(z, "float32"))
    softmax = staticmethod(lambda z: ops.softmax(z, axis=-1))
    sigmoid = staticmethod(ops.sigmoid)
    clip = staticmethod(ops.clip)
    log = staticmethod(ops.log)
    roll = staticmethod(lambda v, shift: ops.roll(v, shift, axis=0))
    sum = staticmethod(ops.sum)


def _ops_for(z):
    """torch's own functions for a torch tensor (each `keras.ops` call costs its argument
    conversion and dtype checks on every eager step), else `keras.ops`."""
    if _rdrop_torch is not None and _rdrop_torch.handles(z):
        return _rdrop_torch.OPS
    return _KerasOps


def _transforms(xp, kind, z, from_logits):
    """Per-element `(u, v)` whose per-position divergence is `sum((u_a - u_b) * (v_a - v_b))`."""
    if kind == "mse":
        return z, z
    eps = keras.config.epsilon()
    if kind == "kl":
        if from_logits:
            # log p = z - logsumexp(z), and sum_c (p_a - p_b) = 0, so the logsumexp
            # terms cancel: sum((p_a - p_b) * (log p_a - log p_b)) = sum((p_a - p_b) * (z_a - z_b)).
            return xp.softmax(z), z
        return xp.clip(z, 0.0, 1.0), xp.log(xp.clip(z, eps, 1.0))
    # binary_kl
    if from_logits:
        return xp.sigmoid(z), z
    logits = xp.log(xp.clip(z, eps, 1.0)) - xp.log(xp.clip(1.0 - z, eps, 1.0))
    return xp.clip(z, 0.0, 1.0), logits


def tiled(kind, tiled_output, passes, from_logits, weight, xla=False):
    """`weight * sum over pairs of D(pass a, pass b)`, from the tiled output, no mask/weights.

    `D` is the mean over positions, as the `ops.divergence` functions reduce it:
    the KLs are halved (`(KL(P||Q) + KL(Q||P)) / 2`), the symmetric KL sums the
    class axis (`kl`), the binary KL and the squared difference average the last
    axis (`binary_kl`, `mse`). `xla=True` (TensorFlow only) computes it and its
    gradient in one XLA computation: see `_consistency_tf.py`.
    """
    if xla:
        return _consistency_tf.compiled(tiled, kind, passes, from_logits, weight)(tiled_output)
    xp = _ops_for(tiled_output)
    z = xp.float32(tiled_output)
    shape = tuple(z.shape)
    u, v = _transforms(xp, kind, z, from_logits)
    n = shape[0]
    b = n // passes if n is not None else ops.shape(z)[0] // passes
    total = None
    for k in range(1, passes):
        s = xp.sum(u * (v - xp.roll(v, k * b)))
        total = s if total is None else total + s
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
