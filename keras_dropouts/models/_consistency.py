"""R-Drop's consistency term for masked or weighted outputs: the public
`keras_dropouts.ops.divergence` functions, one call per pair of passes.

The common case (no Keras mask, no sample weights) is computed from the tiled
output by `keras_dropouts.backend.consistency.tiled`.
"""

from keras_dropouts.ops.divergence import (
    binary_symmetric_kl,
    mean_squared_difference,
    symmetric_kl,
)

_PAIR_FNS = {
    "kl": lambda a, b, logits, mask, sw: symmetric_kl(a, b, from_logits=logits, mask=mask, sample_weight=sw),
    "binary_kl": lambda a, b, logits, mask, sw: binary_symmetric_kl(
        a, b, from_logits=logits, mask=mask, sample_weight=sw
    ),
    "mse": lambda a, b, logits, mask, sw: mean_squared_difference(a, b, mask=mask, sample_weight=sw),
}


def pairwise(kind, parts, pairs, from_logits, mask=None, sample_weight=None):
    """Sum over `pairs` of the divergence between per-pass tensors (via `ops.divergence`).

    Args:
        kind: "kl", "binary_kl" or "mse".
        parts: The per-pass outputs.
        pairs: Index pairs into `parts`.
        from_logits: Whether the outputs hold logits.
        mask: Optional Keras mask shared by the passes.
        sample_weight: Optional sample weights.

    Returns:
        A float32 scalar tensor.
    """
    fn = _PAIR_FNS[kind]
    total = None
    for a, b in pairs:
        v = fn(parts[a], parts[b], from_logits, mask, sample_weight)
        total = v if total is None else total + v
    return total
