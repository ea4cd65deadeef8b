"""R-Drop's consistency term over a model's outputs.

The common case (no Keras mask, no sample weights) is computed from the tiled
output, viewed by sample (`_tiling.group`), by
`keras_dropouts.backend.consistency.tiled`; masked or weighted outputs use the
public `keras_dropouts.ops.divergence` functions, one call per pair of passes
(`pairwise`).
"""

import keras
from keras import ops

from keras_dropouts import _internals, backend
from keras_dropouts.models._tiling import group, is_nested, resolve, split
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


def consistency_term(y_pred, passes, sample_weight, terms, m, xla=False):
    """Sum over outputs of `weight * sum over pairs of D(pass a, pass b)` (float32).

    Args:
        y_pred: The prediction on the batch tiled `m` times.
        passes: The first single-pass structure, or all `m` of them; the rest are
            split off here when an output needs them (masked, weighted or rank-1).
        sample_weight: The (untiled) sample weights, or None.
        terms: `(index, path, kind, from_logits, weight)` per output with a term
            (`_rdrop_plan.consistency_terms`).
        m: The number of passes.
        xla: Whether TensorFlow's XLA form of the tiled term is wanted.

    Returns:
        A float32 scalar tensor.
    """
    if not terms:
        return ops.zeros((), "float32")
    nested = is_nested(y_pred)
    flat_tiled = keras.tree.flatten(y_pred) if nested else [y_pred]
    flat = None
    sw_nested = sample_weight is not None and is_nested(sample_weight)
    total = None
    for i, path, kind, from_logits, weight in terms:
        sw = sample_weight
        if sw_nested:
            sw = keras.tree.flatten(sw)[i] if path is None else resolve(path, sw)
        out = flat_tiled[i]
        if sw is None and len(out.shape) >= 2 and _internals.get_keras_mask(out) is None:
            term = backend.consistency.tiled(kind, group(out, m), from_logits, weight, xla)
        else:
            if flat is None:
                if len(passes) < m:
                    passes = split(y_pred, m)
                flat = [keras.tree.flatten(p) for p in passes] if nested else [[p] for p in passes]
            parts = [f[i] for f in flat]
            pairs = [(a, b) for a in range(m) for b in range(a + 1, m)]
            mask = _internals.get_keras_mask(parts[0])  # the copies share the batch's mask
            term = pairwise(kind, parts, pairs, from_logits, mask, sw) * weight
        total = term if total is None else total + term
    return total
