"""RDropModel: R-Drop (Liang et al., 2021) as a drop-in `keras.Model`."""

import functools
import math
import threading
import warnings

import keras
from keras import ops

from keras_dropouts.ops.divergence import (
    binary_symmetric_kl,
    mean_squared_difference,
    symmetric_kl,
)

_CONSISTENCY_KINDS = ("auto", "kl", "binary_kl", "mse", None)

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


def _dropout_like_classes():
    from keras_dropouts.layers.base import RateLayer

    return (
        RateLayer,
        keras.layers.Dropout,
        keras.layers.SpatialDropout1D,
        keras.layers.SpatialDropout2D,
        keras.layers.SpatialDropout3D,
        keras.layers.GaussianDropout,
        keras.layers.AlphaDropout,
        keras.layers.GaussianNoise,
    )


def has_dropout_like_layer(model):
    """Whether `model` contains (at any depth) a layer that draws random noise."""
    classes = _dropout_like_classes()
    return any(isinstance(layer, classes) for layer in model._flatten_layers(include_self=True))


def _get_keras_mask(x):
    # Isolated use of Keras' tensor-mask attribute (no public accessor in Keras 3).
    from keras.src.backend.common.masking import get_keras_mask

    return get_keras_mask(x)


def _set_keras_mask(x, mask):
    from keras.src.backend.common.masking import set_keras_mask

    set_keras_mask(x, mask)


def _num_replicas():
    """Number of `tf.distribute` replicas in sync (1 outside TensorFlow)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def _check_alpha(alpha):
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(
            f"Argument `alpha` must be a number >= 0 (or a list/dict of them, one per "
            f"output). Received: alpha={alpha!r}"
        )
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"Argument `alpha` must be a finite number >= 0. Received: alpha={alpha!r}"
        )
    return value


def _check_per_output(value, name, check):
    if isinstance(value, dict):
        return {str(k): check(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [check(v) for v in value]
    return check(value)


def _check_kind(kind):
    if kind not in _CONSISTENCY_KINDS:
        raise ValueError(
            "Argument `consistency` must be one of 'auto', 'kl', 'binary_kl', 'mse' or "
            f"None (or a list/dict of them, one per output). Received: {kind!r}"
        )
    return kind


def _loss_name_and_logits(loss_fn):
    fn = getattr(loss_fn, "fn", None)
    if fn is not None and hasattr(fn, "__name__"):
        name = fn.__name__
    elif hasattr(loss_fn, "__name__"):
        name = loss_fn.__name__
    else:
        name = type(loss_fn).__name__
    kwargs = getattr(loss_fn, "_fn_kwargs", None) or {}
    from_logits = bool(kwargs.get("from_logits", getattr(loss_fn, "from_logits", False)))
    return name, from_logits


@keras.saving.register_keras_serializable(package="keras_dropouts")
class RDropModel(keras.Model):
    """R-Drop: regularises a model by making two dropout passes agree.

    Each training batch is passed through the model `passes` times (one call on
    the batch tiled along axis 0, so every copy draws its own dropout masks). The
    loss is the compiled loss averaged over the passes plus a consistency term
    between the passes, computed in float32:

    `loss = mean_k(compiled_loss(y, y_pred_k)) + alpha * D / 2 (+ add_loss terms)`

    where `D` is the paper's `L_KL = (KL(P1||P2) + KL(P2||P1)) / 2` for
    classification outputs (categorical or binary cross-entropy; computed from
    logits when the compiled loss has `from_logits=True`, else from
    probabilities), and the mean squared difference of the two outputs for
    regression losses (MSE, MAE, Huber, ...). With more than two passes, `D` is
    the average over all pairs. This is the paper's objective
    `NLL1 + NLL2 + alpha * L_KL` divided by 2, so `alpha` has the paper's meaning
    and `alpha=0` gives exactly the ordinary compiled loss. Padding (the output's
    Keras mask, or zero `sample_weight`) is excluded from `D`, which is weighted
    by `sample_weight` / `class_weight` like the loss.

    Compiled metrics score the first pass only, the added term is logged as
    `consistency_loss`, and `evaluate` / `predict` / `training=False` calls run a
    single pass of the base model (validation loss has no consistency term).

    Two construction forms:

    ```python
    model = RDropModel(inputs, outputs, alpha=1.0)          # functional
    model = RDropModel.from_model(base_model, alpha=1.0)    # wrap a built model
    ```

    Args:
        inputs: Functional inputs (with `outputs`); mutually exclusive with
            `model`.
        outputs: Functional outputs.
        alpha: Float >= 0, the consistency weight (paper's alpha: e.g. 0.1-1.0 on
            GLUE, 5 for translation), or a list (flat output order) / dict (by
            output name) with one alpha per output.
        passes: Int >= 2, forward passes per sample; the consistency term is the
            mean over all pairs of passes.
        consistency_every: Int >= 1. Apply R-Drop (duplicated batch + consistency
            term) only on every k-th train-function execution; other steps run
            a single ordinary pass, which is cheaper. Counted in executions, i.e.
            in units of `steps_per_execution` steps.
        consistency: `"auto"` (derive from the compiled loss; an unsupported loss
            is an error), `"kl"`, `"binary_kl"`, `"mse"` or `None` (no term for
            that output); or a list/dict of these, one per output.
        model: A built `keras.Model` to wrap (prefer `RDropModel.from_model`).
        **kwargs: Base `keras.Model` arguments (`name`, ...).

    Call arguments:
        inputs: Inputs of the base model.
        training: Python bool. The batch is tiled `passes` times only inside
            `fit`'s train step; a direct call is always a single pass.

    Example:
    >>> inputs = keras.Input((8,))
    >>> h = keras.layers.Dropout(0.3)(keras.layers.Dense(16, activation="relu")(inputs))
    >>> model = RDropModel(inputs, keras.layers.Dense(3)(h), alpha=1.0)
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    """

    def __init__(
        self,
        inputs=None,
        outputs=None,
        alpha=1.0,
        passes=2,
        consistency_every=1,
        consistency="auto",
        model=None,
        **kwargs,
    ):
        if model is None:
            if inputs is None or outputs is None:
                raise ValueError(
                    "RDropModel needs either `inputs` and `outputs` (functional "
                    "construction) or a built `model` (see `RDropModel.from_model`)."
                )
            model = keras.Model(inputs, outputs)
        elif inputs is not None or outputs is not None:
            raise ValueError("Pass either `inputs`/`outputs` or `model`, not both.")
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"Argument `model` must be a keras.Model. Received: {type(model).__name__}"
            )
        if isinstance(passes, bool) or not isinstance(passes, int) or passes < 2:
            raise ValueError(f"Argument `passes` must be an int >= 2. Received: passes={passes!r}")
        if (
            isinstance(consistency_every, bool)
            or not isinstance(consistency_every, int)
            or consistency_every < 1
        ):
            raise ValueError(
                "Argument `consistency_every` must be an int >= 1. "
                f"Received: consistency_every={consistency_every!r}"
            )
        self._functional_construction = kwargs.pop("functional_construction", inputs is not None)
        super().__init__(**kwargs)
        self.base_model = model
        self.alpha = _check_per_output(alpha, "alpha", _check_alpha)
        self.passes = passes
        self.consistency_every = consistency_every
        self.consistency = _check_per_output(consistency, "consistency", _check_kind)
        self.consistency_tracker = keras.metrics.Mean(name="consistency_loss")
        # Per-thread: tf.distribute traces each replica's train step in its own thread.
        self._rdrop_local = threading.local()
        self._rdrop_enabled = True
        self._rdrop_executions = 0
        if getattr(model, "built", False):
            self.built = True
        if not has_dropout_like_layer(model):
            warnings.warn(
                f"RDropModel: model '{model.name}' has no dropout-like layer (Dropout, "
                "SpatialDropout, GaussianDropout/Noise, AlphaDropout or a "
                "keras_dropouts layer). All passes are then identical, the consistency "
                "term is 0 and R-Drop only multiplies the cost of training.",
                stacklevel=2,
            )

    @classmethod
    def from_model(cls, model, alpha=1.0, **kwargs):
        """Wraps an existing built model (Sequential, functional, subclassed, keras-hub).

        The wrapped model's layers and weights are shared, not copied.

        Args:
            model: A `keras.Model`.
            alpha: Consistency weight(s), see the class docstring.
            **kwargs: Other `RDropModel` options (`passes`, `consistency_every`,
                `consistency`, `name`).

        Returns:
            An `RDropModel`.

        Example:
        >>> base = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.2),
        ...                          keras.layers.Dense(2)])
        >>> model = RDropModel.from_model(base, alpha=0.5)
        """
        return cls(model=model, alpha=alpha, **kwargs)

    @property
    def output_names(self):
        """The wrapped model's output names (used by `compile` for per-output logs)."""
        override = self.__dict__.get("_rdrop_output_names")
        if override is not None:
            return override
        try:
            base = object.__getattribute__(self, "base_model")
        except AttributeError:
            base = getattr(self, "base_model", None)  # torch keeps submodules aside
        return getattr(base, "output_names", None)

    @output_names.setter
    def output_names(self, value):
        self.__dict__["_rdrop_output_names"] = value

    # ------------------------------------------------------------------ forward

    def build(self, input_shape=None):
        if not self.base_model.built and input_shape is not None:
            self.base_model.build(input_shape)
        self.built = True

    @property
    def _rdrop_in_train_step(self):
        return getattr(self._rdrop_local, "in_train_step", False)

    @_rdrop_in_train_step.setter
    def _rdrop_in_train_step(self, value):
        self._rdrop_local.in_train_step = value

    def _rdrop_active(self):
        return self._rdrop_in_train_step and self._rdrop_enabled

    def call(self, inputs, training=None):
        if training and self._rdrop_active():
            m = self.passes
            inputs = keras.tree.map_structure(
                lambda t: t if t is None else ops.concatenate([t] * m, axis=0), inputs
            )
        return self.base_model(inputs, training=training)

    def train_step(self, *args, **kwargs):
        # Marks the trace of `fit`'s own train step: only there is the batch tiled.
        self._rdrop_in_train_step = True
        try:
            return super().train_step(*args, **kwargs)
        finally:
            self._rdrop_in_train_step = False

    def make_train_function(self, force=False):
        if self.consistency_every == 1:
            self._rdrop_enabled = True
            return super().make_train_function(force=force)
        if self.train_function is not None and not force:
            return self.train_function
        # Two compiled step functions: with R-Drop, and a plain single pass. The
        # flag is read when each function traces (lazily, at its first call).
        # Each variant gets its own step callable: `jax.jit` caches traces by
        # function identity, so two jits of the same bound method would share one.
        functions = []
        for enabled in (True, False):
            self._rdrop_enabled = enabled
            self.__dict__["train_step"] = functools.partial(type(self).train_step, self)
            try:
                super().make_train_function(force=True)
            finally:
                del self.__dict__["train_step"]
            functions.append(self.train_function)
        with_rdrop, plain = functions
        every = self.consistency_every

        def train_function(*args, **kwargs):
            on = self._rdrop_executions % every == 0
            self._rdrop_executions += 1
            self._rdrop_enabled = on
            return (with_rdrop if on else plain)(*args, **kwargs)

        self.train_function = train_function
        return train_function

    # ---------------------------------------------------------------- loss

    def _split(self, y_pred):
        """Splits a tiled prediction structure into `passes` single-pass structures."""
        m = self.passes
        flat = keras.tree.flatten(y_pred)
        chunks = [[] for _ in range(m)]
        for t in flat:
            parts = ops.split(t, m, axis=0)
            mask = _get_keras_mask(t)
            masks = ops.split(mask, m, axis=0) if mask is not None else [None] * m
            for k in range(m):
                if masks[k] is not None:
                    _set_keras_mask(parts[k], masks[k])
                chunks[k].append(parts[k])
        return [keras.tree.pack_sequence_as(y_pred, c) for c in chunks]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not (training and self._rdrop_active()):
            return super().compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
            )
        passes = self._split(y_pred)
        losses = []
        if self._compile_loss is not None:
            values = [self._compile_loss(y, p, sample_weight) for p in passes]
            if values[0] is not None:
                total = values[0]
                for v in values[1:]:
                    total = total + v
                losses.append(total / float(self.passes))
        for loss in self.losses:
            losses.append(self._aggregate_additional_loss(loss))
        consistency = self._consistency(passes, sample_weight)
        self.consistency_tracker.update_state(consistency)
        scale = 1.0 / _num_replicas()
        if scale != 1.0:
            consistency = consistency * scale
        if not losses:
            if keras.backend.backend() != "jax":
                raise ValueError("No loss to compute. Provide a `loss` argument in `compile()`.")
            return ops.cast(consistency, "float32")
        total = losses[0] if len(losses) == 1 else ops.sum(losses)
        return total + ops.cast(consistency, total.dtype)

    def _output_terms(self, y_pred):
        """[(flat index, loss path, kind, from_logits, alpha)] for outputs with a term."""
        flat_pred = keras.tree.flatten(y_pred)
        n = len(flat_pred)
        names = self._flat_output_names(y_pred, n)
        compile_loss = self._compile_loss
        entries = []  # (flat index, path, loss_fn)
        if compile_loss is not None and getattr(compile_loss, "_flat_losses", None):
            struct = compile_loss._y_pred_build_structure
            try:
                index = keras.tree.pack_sequence_as(struct, list(range(n)))
            except (ValueError, TypeError):
                index = list(range(n))
            for path, loss_fn, _, _ in compile_loss._flat_losses:
                i = index
                for p in path:
                    i = i[p]
                entries.append((i, path, loss_fn))
        else:
            entries = [(i, None, None) for i in range(n)]
        terms = []
        for i, path, loss_fn in entries:
            alpha = self._per_output(self.alpha, i, names, n, "alpha", 1.0)
            kind = self._per_output(self.consistency, i, names, n, "consistency", "auto")
            from_logits = False
            loss_name = None
            if loss_fn is not None:
                loss_name, from_logits = _loss_name_and_logits(loss_fn)
            if kind == "auto":
                if loss_name in _KL_LOSSES:
                    kind = "kl"
                elif loss_name in _BINARY_LOSSES:
                    kind = "binary_kl"
                elif loss_name in _MSE_LOSSES:
                    kind = "mse"
                else:
                    raise ValueError(
                        f"RDropModel cannot derive a consistency term for output "
                        f"'{names[i]}' with loss {loss_name!r}: supported are categorical/"
                        "sparse categorical/binary cross-entropy (KL) and regression "
                        "losses (MSE, MAE, Huber, ...). Pass `consistency='kl'`, "
                        "'binary_kl', 'mse' or None for that output."
                    )
            if kind is None or alpha == 0.0:
                continue
            terms.append((i, path, kind, from_logits, alpha))
        return terms

    def _flat_output_names(self, y_pred, n):
        if isinstance(y_pred, dict):
            return [str(k) for k in sorted(y_pred)]
        names = list(getattr(self.base_model, "output_names", None) or [])
        if len(names) != n:
            names = [f"output_{i}" for i in range(n)]
        return names

    def _per_output(self, value, i, names, n, arg, default):
        if isinstance(value, dict):
            unknown = set(value) - set(names)
            if unknown:
                raise ValueError(
                    f"Argument `{arg}` has keys {sorted(unknown)} that are not output "
                    f"names {names}."
                )
            return value.get(names[i], default)
        if isinstance(value, list):
            if len(value) != n:
                raise ValueError(
                    f"Argument `{arg}` has {len(value)} entries but the model has {n} "
                    "outputs."
                )
            return value[i]
        return value

    def _consistency(self, passes, sample_weight):
        flat = [keras.tree.flatten(p) for p in passes]
        terms = self._output_terms(passes[0])
        total = ops.zeros((), "float32")
        m = self.passes
        pairs = [(a, b) for a in range(m) for b in range(a + 1, m)]
        for i, path, kind, from_logits, alpha in terms:
            sw = sample_weight
            if sw is not None and keras.tree.is_nested(sw):
                sw = keras.tree.flatten(sw)[i] if path is None else _resolve(path, sw)
            d = ops.zeros((), "float32")
            for a, b in pairs:
                pa, pb = flat[a][i], flat[b][i]
                mask = _get_keras_mask(pa)
                if kind == "kl":
                    v = symmetric_kl(pa, pb, from_logits=from_logits, mask=mask, sample_weight=sw)
                elif kind == "binary_kl":
                    v = binary_symmetric_kl(
                        pa, pb, from_logits=from_logits, mask=mask, sample_weight=sw
                    )
                else:
                    v = mean_squared_difference(pa, pb, mask=mask, sample_weight=sw)
                d = d + v
            total = total + (alpha / (2.0 * len(pairs))) * d
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if self._rdrop_active():
            # Score one pass: the first copy of the tiled batch.
            y_pred = self._split(y_pred)[0]
        results = super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        if not self._rdrop_active():
            results.pop(self.consistency_tracker.name, None)
        return results

    # --------------------------------------------------------------- config

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "model": keras.saving.serialize_keras_object(self.base_model),
            "alpha": self.alpha,
            "passes": self.passes,
            "consistency_every": self.consistency_every,
            "consistency": self.consistency,
            "functional_construction": self._functional_construction,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        model = keras.saving.deserialize_keras_object(
            config.pop("model"), custom_objects=custom_objects
        )
        return cls(model=model, **config)

    def get_build_config(self):
        return {"base_model": self.base_model.get_build_config()}

    def build_from_config(self, config):
        inner = (config or {}).get("base_model")
        if inner and not self.base_model.built:
            self.base_model.build_from_config(inner)
        self.built = True


def _resolve(path, structure):
    for p in path:
        structure = structure[p]
    return structure
