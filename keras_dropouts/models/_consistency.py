"""R-Drop's consistency term from the tiled output of one forward pass.

`RDropModel` gets one output tensor holding `passes` copies of the batch. The
common case (no Keras mask, no sample weights) is computed here directly on that
tensor: the per-element transforms (`log_softmax`, `exp`, `sigmoid`) run once on
the tiled tensor instead of once per pass, and the mean over positions is one
multiply by a constant. That is about half the backend ops of calling
`keras_dropouts.ops.divergence` per pair, which matters on torch, where every op
is dispatched eagerly each step. The numbers are the same as
`symmetric_kl` / `binary_symmetric_kl` / `mean_squared_difference` with
`reduction="mean"` (same float32 math, same clipping; tested equal). Masked or
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

# As in keras_dropouts.ops.divergence: logits are capped so that an inf logit gives
# a large finite divergence instead of NaN.
_LOGIT_CAP = 1e30

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


def _transforms(kind, z, from_logits):
    """Per-element `(u, v)` with the per-position divergence `sum((u_a - u_b) * (v_a - v_b))`."""
    if kind == "kl":
        if from_logits:
            log_p = ops.log_softmax(ops.clip(z, -_LOGIT_CAP, _LOGIT_CAP), axis=-1)
            return ops.exp(log_p), log_p
        eps = keras.config.epsilon()
        return ops.clip(z, 0.0, 1.0), ops.log(ops.clip(z, eps, 1.0))
    # binary_kl
    if from_logits:
        logits = ops.clip(z, -_LOGIT_CAP, _LOGIT_CAP)
        return ops.sigmoid(logits), logits
    eps = keras.config.epsilon()
    logits = ops.log(ops.clip(z, eps, 1.0)) - ops.log(ops.clip(1.0 - z, eps, 1.0))
    return ops.clip(z, 0.0, 1.0), logits


def tiled(kind, tiled_output, passes, pairs, from_logits, weight):
    """`weight * sum over pairs of D(pass a, pass b)`, from the tiled output, no mask/weights.

    `D` is the mean over positions, as the `ops.divergence` functions reduce it:
    the symmetric KL sums the class axis (`kl`), the binary KL and the squared
    difference average the last axis (`binary_kl`, `mse`).
    """
    z = ops.cast(tiled_output, "float32")
    shape = tuple(z.shape)
    n = shape[0]
    if n is None or any(s is None for s in shape[1:]):
        n_total = ops.cast(ops.size(z), "float32")
        static = None
    else:
        static = math.prod(shape)
    b = n // passes if n is not None else ops.shape(z)[0] // passes
    if kind == "mse":
        u = v = z
        scale = 1.0  # (a - b)^2, averaged over every element
    else:
        u, v = _transforms(kind, z, from_logits)
        scale = 0.5  # sum((p - q)(log p - log q)) / 2, averaged over positions / units
    total = None
    for i, j in pairs:
        du = u[i * b:(i + 1) * b] - u[j * b:(j + 1) * b]
        dv = du if u is v else v[i * b:(i + 1) * b] - v[j * b:(j + 1) * b]
        s = ops.sum(du * dv)
        total = s if total is None else total + s
    # Elements per pass; `kl` sums the class axis, so it averages over positions only.
    if static is not None:
        per_pass = static // passes
        if kind == "kl":
            per_pass //= max(shape[-1], 1) if len(shape) > 1 else 1
        return total * (weight * scale / max(per_pass, 1))
    per_pass = n_total / float(passes)
    if kind == "kl" and len(shape) > 1:
        per_pass = per_pass / ops.cast(ops.shape(z)[-1], "float32")
    return total * (weight * scale) / ops.maximum(per_pass, 1.0)
