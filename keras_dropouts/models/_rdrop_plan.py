"""What RDropModel does per output, decided once per `compile()` (not per step).

* Whether the compiled loss may run once on the tiled batch: true when every
  compiled loss is a built-in per-sample loss (cross-entropies, MSE, ...) with a
  mean reduction. For those, the mean over the tiled batch of `passes` copies is
  exactly the mean of the per-pass losses: the copies have the same size, the
  same `sample_weight` and the same Keras mask, so numerator and denominator
  both scale by `passes` (`sum_over_batch_size`, `mean`, `mean_with_sample_weight`;
  with a mask, Keras' `total / (valid + epsilon)` rescaling differs by
  `epsilon / valid`, below float32 resolution). A custom loss may reduce over the
  batch in any way (a sum, a batch statistic, pairs within the batch: Dice,
  Tversky, Circle), so it runs once per pass.
* The consistency term of each output: kind (symmetric KL, binary KL, mean
  squared difference), `from_logits`, and its weight `alpha / (2 * pairs)`.
"""

import keras

from keras_dropouts import _checks
from keras_dropouts import _internals

KINDS = ("auto", "kl", "binary_kl", "mse", None)

# Compiled-loss names (function name or class name) -> consistency kind.
_KL_LOSSES = {
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "categorical_focal_crossentropy",
    "kl_divergence",
    "kld",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "CategoricalFocalCrossentropy",
    "KLDivergence",
}
_BINARY_LOSSES = {
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
}
_MSE_LOSSES = {
    "mean_squared_error",
    "mean_absolute_error",
    "mean_squared_logarithmic_error",
    "mean_absolute_percentage_error",
    "huber",
    "log_cosh",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "MeanSquaredLogarithmicError",
    "MeanAbsolutePercentageError",
    "Huber",
    "LogCosh",
}
# Built-in Keras loss functions whose value is per sample (per position): the
# Loss wrapper then reduces them like any other, so tiling is exact. The
# lower-case names above are such functions ("kld" is an alias, not a function name).
_PER_SAMPLE_FUNCTIONS = {
    name for name in _KL_LOSSES | _BINARY_LOSSES | _MSE_LOSSES if name.islower() and name != "kld"
} | {
    "categorical_generalized_cross_entropy",
    "hinge",
    "squared_hinge",
    "categorical_hinge",
    "poisson",
    "cosine_similarity",
    "ctc",
}
_MEAN_REDUCTIONS = {"sum_over_batch_size", "mean", "mean_with_sample_weight"}


def check_alpha(alpha):
    """Returns alpha (a number >= 0, or a list/dict of them) with floats, or raises."""
    expected = "a finite number >= 0, or a list/dict of them (one per output)"

    def one(value):
        try:
            return _checks.check_number(value, "alpha", min_value=0)
        except ValueError:
            raise _checks.invalid("alpha", expected, alpha) from None

    if isinstance(alpha, dict):
        return {str(k): one(v) for k, v in alpha.items()}
    if isinstance(alpha, (list, tuple)):
        if not alpha:
            raise _checks.invalid("alpha", expected, alpha)
        return [one(v) for v in alpha]
    return one(alpha)


def check_consistency(consistency):
    """Returns `consistency` (a kind, or a list/dict of kinds), or raises."""
    expected = f"one of {KINDS}, or a list/dict of them (one per output)"

    def one(kind):
        if (kind is None or isinstance(kind, str)) and kind in KINDS:
            return kind
        raise _checks.invalid("consistency", expected, consistency)

    if isinstance(consistency, dict):
        return {str(k): one(v) for k, v in consistency.items()}
    if isinstance(consistency, (list, tuple)):
        return [one(v) for v in consistency]
    return one(consistency)


def _is_per_sample_builtin(fn):
    return getattr(fn, "__module__", "").startswith("keras") and getattr(fn, "__name__", "") in (
        _PER_SAMPLE_FUNCTIONS
    )


def loss_is_tileable(identifier):
    """Whether one `compile(loss=...)` entry gives the per-pass mean on a tiled batch."""
    if identifier is None:
        return True
    if isinstance(identifier, str):
        if identifier.lower() in ("crossentropy", "ce"):
            return True
        try:
            identifier = keras.losses.get(identifier)
        except (ValueError, TypeError):
            return False
    if isinstance(identifier, keras.losses.Loss):
        if getattr(identifier, "reduction", None) not in _MEAN_REDUCTIONS:
            return False
        if not type(identifier).__module__.startswith("keras"):
            return False  # a user subclass may reduce over the batch in `call`
        _, _, fn = _internals.loss_function(identifier)
        return _is_per_sample_builtin(fn)
    return callable(identifier) and _is_per_sample_builtin(identifier)


def compiled_loss_is_tileable(model):
    """Whether every loss given to `model.compile` may run once on the tiled batch."""
    loss = getattr(model, "loss", None)
    if isinstance(loss, dict):
        leaves = list(loss.values())
    elif isinstance(loss, (list, tuple)):
        leaves = keras.tree.flatten(loss)
    else:
        leaves = [loss]
    return all(loss_is_tileable(leaf) for leaf in leaves)


def flat_output_names(model, y_pred, n):
    if isinstance(y_pred, dict):
        return [str(k) for k in sorted(y_pred)]
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != n:
        names = [f"output_{i}" for i in range(n)]
    return names


def _per_output(value, i, names, n, arg, default):
    if isinstance(value, dict):
        unknown = set(value) - set(names)
        if unknown:
            raise _checks.invalid(
                arg, f"a dict keyed by output names {names} (unknown keys {sorted(unknown)})", value
            )
        return value.get(names[i], default)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise _checks.invalid(
                arg, f"a list with one entry per output ({n} outputs: {names}), got {len(value)}", value
            )
        return value[i]
    return value


def consistency_terms(model, base_model, y_pred, alpha, consistency, passes):
    """`[(flat index, loss path or None, kind, from_logits, weight)]`, one per output with a term.

    `y_pred` is one pass's prediction structure; the compiled loss must already be
    built (it is called before this in the first step).
    """
    flat_pred = keras.tree.flatten(y_pred)
    n = len(flat_pred)
    names = flat_output_names(base_model, y_pred, n)
    entries = []  # (flat index, path, loss_fn)
    losses = _internals.compiled_losses(model)
    if losses:
        struct = _internals.compiled_loss_structure(model)
        try:
            index = keras.tree.pack_sequence_as(struct, list(range(n)))
        except (ValueError, TypeError):
            index = list(range(n))
        for path, loss_fn in losses:
            i = index
            for p in path:
                i = i[p]
            entries.append((i, path, loss_fn))
    else:
        entries = [(i, None, None) for i in range(n)]
    pairs = passes * (passes - 1) // 2
    terms = []
    for i, path, loss_fn in entries:
        a = _per_output(alpha, i, names, n, "alpha", 1.0)
        kind = _per_output(consistency, i, names, n, "consistency", "auto")
        from_logits = False
        loss_name = None
        if loss_fn is not None:
            loss_name, kwargs, _ = _internals.loss_function(loss_fn)
            from_logits = bool(kwargs.get("from_logits", getattr(loss_fn, "from_logits", False)))
        if kind == "auto":
            kind = _auto_kind(model, loss_fn, loss_name, names[i])
        if kind is None or a == 0.0:
            continue
        terms.append((i, path, kind, from_logits, a / (2.0 * pairs)))
    return terms


def _auto_kind(model, loss_fn, loss_name, output_name):
    if loss_name in _KL_LOSSES:
        return "kl"
    if loss_name in _BINARY_LOSSES:
        return "binary_kl"
    if loss_name in _MSE_LOSSES:
        return "mse"
    if loss_fn is None and not _internals.has_compiled_loss(model):
        raise ValueError(
            "RDropModel was compiled without a loss (`loss` is missing from "
            "`compile()`), so it cannot choose the consistency term from it. Pass "
            "`loss=` to `compile()` (e.g. keras.losses.SparseCategoricalCrossentropy"
            "(from_logits=True)), or choose the term with `consistency='kl'`, "
            "'binary_kl' or 'mse'."
        )
    raise ValueError(
        f"RDropModel cannot derive a consistency term for output '{output_name}' "
        f"with loss {loss_name!r}: supported are categorical/sparse categorical/"
        "binary cross-entropy (KL) and regression losses (MSE, MAE, Huber, ...). "
        "Pass `consistency='kl'`, 'binary_kl', 'mse' or None for that output."
    )


def check_sample_weight(sample_weight, y_pred):
    """Raises a clear error for a `sample_weight` that cannot weight `y_pred` per sample.

    Only static shapes are checked (no work on tensor values): the weights' batch
    size must equal the outputs', and their shape must be a prefix of the output
    shape (trailing 1s allowed), as Keras losses broadcast them.
    """
    flat_pred = keras.tree.flatten(y_pred)
    if keras.tree.is_nested(sample_weight):
        flat_sw = keras.tree.flatten(sample_weight)
        if len(flat_sw) != len(flat_pred):
            return  # Keras' own compiled loss reports structure mismatches.
        pairs = zip(flat_sw, flat_pred)
    else:
        pairs = [(sample_weight, p) for p in flat_pred]
    for sw, pred in pairs:
        if sw is None:
            continue
        sw_shape = tuple(getattr(sw, "shape", ()))
        out_shape = tuple(pred.shape)
        ok = len(sw_shape) >= 1 and _checks.lines_up(sw_shape, out_shape, ones_broadcast=False)
        if not ok:
            raise ValueError(
                "Invalid value received for argument `sample_weight`. Expected one "
                f"weight per sample, shape ({out_shape[0]},), or per position, a prefix of "
                f"the output shape {out_shape}. Received: sample_weight with shape "
                f"{sw_shape}"
            )
