"""RDropModel: R-Drop (Liang et al., 2021) as a drop-in `keras.Model`.

Built on the hooks every backend's own train step calls (`call`, `compute_loss`,
`compute_metrics`), so loss scaling, `add_loss`, JAX's stateless step and
distribution stay Keras' own. Per training step the work over the plain model
on the tiled batch is: tiling the inputs (and `y` / `sample_weight`), one split
of the outputs, and the consistency term. Everything that depends only on the
compiled loss and the output structure is decided once per `compile()`
(`_rdrop_plan.py`), so torch's eager step does no extra Python work per step.
"""

import functools
import warnings

import keras
from keras import ops

from keras_dropouts import _checks, _internals, backend
from keras_dropouts._step_owner import owner_of
from keras_dropouts.backend import IS_TORCH as _TORCH  # read by `__call__`
from keras_dropouts.layers.kinds import draws_noise
from keras_dropouts.models import _rdrop_plan as plan_lib
from keras_dropouts.models._consistency import consistency_term
from keras_dropouts.models._pass_state import PassState
from keras_dropouts.models._tiling import is_nested, split, tile
from keras_dropouts.models._tracker import RunningMean


def has_dropout_like_layer(model):
    """Whether `model` contains (at any depth) a layer that draws random noise."""
    return any(draws_noise(layer) for layer in _internals.iter_layers(model))


def _base_model(inputs, outputs, model):
    """The model to wrap: `model`, or a functional model of `inputs` and `outputs`."""
    if model is None:
        if inputs is None or outputs is None:
            raise ValueError(
                "RDropModel needs either `inputs` and `outputs` (functional "
                "construction) or a built `model` (see `RDropModel.from_model`)."
            )
        # A class that also wraps must not hand `inputs/outputs` to `Model.__init__`
        # (Keras would rewrite its bases to `Functional`): build an inner model.
        return keras.Model(inputs, outputs)
    if inputs is not None or outputs is not None:
        raise ValueError("Pass either `inputs`/`outputs` or `model`, not both.")
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Invalid value received for argument `model`. Expected a keras.Model. "
            f"Received: model of type {type(model).__name__}"
        )
    return model


def _testing(name):
    """`keras.Model.<name>`, run inside the model's testing scope (`PassState`)."""

    @functools.wraps(getattr(keras.Model, name))
    def method(self, *args, **kwargs):
        with self._rdrop_local.testing_scope():
            return getattr(super(RDropModel, self), name)(*args, **kwargs)

    return method


class _Plan:
    """Per-compile decisions (see `_rdrop_plan.py`); rebuilt when the compiled loss changes."""

    __slots__ = ("key", "tile_loss", "terms")

    def __init__(self, key, tile_loss):
        self.key = key  # the compiled loss object: a new `compile()` makes a new one
        self.tile_loss = tile_loss
        self.terms = None  # built after the first call of the compiled loss


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
    `consistency_loss` (unless `log_consistency=False`), and `evaluate` /
    `predict` / `training=False` calls run a single pass of the base model
    (validation loss has no consistency term).
    The plain model is `model.base_model` (weights shared, not copied): save or
    export that one for inference.

    Cost: one forward/backward on the tiled batch; the compiled loss runs once on
    it (tiled `y` / `sample_weight`) when every compiled loss is a built-in
    per-sample Keras loss with a mean reduction, which gives exactly the mean of
    the per-pass losses, and once per pass otherwise (custom losses may reduce
    over the batch in other ways). `add_loss` terms from the forward pass see the
    tiled batch: a term averaged over the batch (as Keras >= 3.14 does for
    activity regularisers, and as this model arranges on Keras 3.8 - 3.13) is the
    per-pass mean; a term summed over the batch counts every pass. Weight
    regularisers count once.

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
            in units of `steps_per_execution` steps. `consistency_loss` is then the
            mean over the epoch's steps that ran R-Drop (logged every epoch).
        consistency: `"auto"` (derive from the compiled loss; an unsupported loss
            is an error), `"kl"`, `"binary_kl"`, `"mse"` or `None` (no term for
            that output); or a list/dict of these, one per output.
        model: A built `keras.Model` to wrap (prefer `RDropModel.from_model`).
        log_consistency: Bool. `True` (default) logs the added term as
            `consistency_loss`. Every logged value costs one device-to-host copy
            per step (Keras converts each step's logs), which is most of R-Drop's
            excess on small, dispatch-bound GPU steps (see the R-Drop benchmarks in
            `benchmarks/RESULTS.md`); `False` leaves it out (the term is still in
            `loss`).
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
        log_consistency=True,
        **kwargs,
    ):
        model = _base_model(inputs, outputs, model)
        alpha = plan_lib.check_alpha(alpha)
        passes = _checks.check_int(passes, "passes", min_value=2)
        consistency_every = _checks.check_int(consistency_every, "consistency_every", min_value=1)
        consistency = plan_lib.check_consistency(consistency)
        if not isinstance(log_consistency, bool):
            raise ValueError(
                "Invalid value received for argument `log_consistency`. Expected True or False. "
                f"Received: log_consistency={log_consistency!r}"
            )
        super().__init__(**kwargs)
        self.base_model = model
        self.alpha = alpha
        self.passes = passes
        self.consistency_every = consistency_every
        self.consistency = consistency
        self._rdrop_local = local = PassState()
        self.log_consistency = log_consistency
        self.consistency_tracker = None
        if log_consistency:
            self.consistency_tracker = RunningMean(name="consistency_loss", muted=lambda: local.testing > 0)
        self._rdrop_enabled = True
        self._rdrop_executions = 0
        self._rdrop_plan = None
        self._rdrop_activity_layers = None
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

        The wrapped model's layers and weights are shared, not copied; it stays
        available as `rdrop_model.base_model`.

        Args:
            model: A `keras.Model`.
            alpha: Consistency weight(s), see the class docstring.
            **kwargs: Other `RDropModel` options (`passes`, `consistency_every`,
                `consistency`, `log_consistency`, `name`).

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
        override = _internals.get_instance_attribute(self, "_rdrop_output_names")
        if override is not None:
            return override
        return getattr(getattr(self, "base_model", None), "output_names", None)

    @output_names.setter
    def output_names(self, value):
        # Keras sets this in `Model.__init__`, before `base_model` exists; kept out of
        # Keras' attribute tracking.
        _internals.set_instance_attribute(self, "_rdrop_output_names", value)

    # ------------------------------------------------------------------ forward

    def build(self, input_shape=None):
        if not self.base_model.built and input_shape is not None:
            self.base_model.build(input_shape)
        self.built = True

    @property
    def _rdrop_in_train_step(self):
        return self._rdrop_local.in_train_step

    @_rdrop_in_train_step.setter
    def _rdrop_in_train_step(self, value):
        self._rdrop_local.in_train_step = value

    def _rdrop_active(self):
        return self._rdrop_enabled and self._rdrop_local.in_train_step

    def __call__(self, *args, **kwargs):
        # torch runs every step eagerly: this wrapper's own `Layer.__call__` (call
        # context, input conversion, autocast) repeats what the base model's
        # `__call__` does, and costs as much as a small layer per step. For concrete
        # tensors, go straight to `call`. (TF and JAX trace the step once; JAX's
        # steps call `call` directly.) Symbolic inputs keep the full path.
        if _TORCH and self.built and len(args) == 1 and kwargs.keys() <= {"training"}:
            x = args[0]
            first = keras.tree.flatten(x)[0] if is_nested(x) else x
            if not isinstance(first, keras.KerasTensor):
                return self.call(x, training=kwargs.get("training"))
        return super().__call__(*args, **kwargs)

    def call(self, inputs, training=None):
        if training and self._rdrop_active():
            m = self.passes
            inputs = tile(inputs, m)
            layers = self._rdrop_activity_layers
            if layers is None:
                layers = self._rdrop_activity_layers = _internals.activity_regularized_layers(self.base_model)
            if layers:
                with _internals.per_pass_activity_loss(layers, m):
                    return self.base_model(inputs, training=training)
        return self.base_model(inputs, training=training)

    def train_step(self, *args, **kwargs):
        # Marks the trace of `fit`'s own train step: only there is the batch tiled.
        with self._rdrop_local.train_step():
            return super().train_step(*args, **kwargs)

    # `evaluate`'s step and its entry points: their logs have no consistency term (see
    # `RunningMean`); `evaluate` also mutes the tracker in its final read of every
    # metric (eager ops per call, ~0.4 ms on JAX's CPU; the entry is dropped anyway).
    test_step = _testing("test_step")
    evaluate = _testing("evaluate")
    test_on_batch = _testing("test_on_batch")

    def make_train_function(self, force=False):
        if self.consistency_every == 1:
            self._rdrop_enabled = True
            return super().make_train_function(force=force)
        if self.train_function is not None and not force:
            return self.train_function
        # Two compiled step functions: with R-Drop, and a plain single pass. The
        # flag is read when each function traces (lazily, at its first call; torch
        # reads it every step). Both wrap the current step, including a wrapper of
        # the schedule callbacks (the step owner builds the variants).
        def enable(on):
            def configure():
                self._rdrop_enabled = on

            return configure

        def build():
            super(RDropModel, self).make_train_function(force=True)
            return self.train_function

        with_rdrop, plain = owner_of(self).variants(build, [enable(True), enable(False)])
        every = self.consistency_every

        def train_function(*args, **kwargs):
            on = self._rdrop_executions % every == 0
            self._rdrop_executions += 1
            self._rdrop_enabled = on
            return (with_rdrop if on else plain)(*args, **kwargs)

        self.train_function = train_function
        return train_function

    # ---------------------------------------------------------------- loss

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not (training and self._rdrop_active()):
            if sample_weight is not None:
                plan_lib.check_sample_weight(sample_weight, y_pred)
            return super().compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
            )
        m = self.passes
        plan = self._rdrop_plan
        key = _internals.compiled_loss_object(self)
        if plan is None or plan.key is not key:
            plan = self._rdrop_plan = _Plan(key, plan_lib.compiled_loss_is_tileable(self))
        # A tiled loss needs only the first pass (for the metrics); `consistency_term` splits
        # the rest if it needs them. A slice is one more op per step on TF's executor.
        passes = split(y_pred, m, 1 if plan.tile_loss else m)
        self._rdrop_local.first_pass = (y_pred, passes[0])  # reused by compute_metrics
        if sample_weight is not None:
            plan_lib.check_sample_weight(sample_weight, passes[0])
        if plan.tile_loss:
            # One call on the tiled batch: exactly the mean of the per-pass losses.
            loss = _internals.call_compiled_loss(self, tile(y, m), y_pred, tile(sample_weight, m))
        else:
            loss = None
            for p in passes:
                v = _internals.call_compiled_loss(self, y, p, sample_weight)
                if v is None:
                    break
                loss = v if loss is None else loss + v
            if loss is not None:
                loss = loss / float(m)
        if plan.terms is None:
            plan.terms = plan_lib.consistency_terms(
                self, self.base_model, passes[0], self.alpha, self.consistency, m
            )
        losses = [] if loss is None else [loss]
        losses.extend(_internals.additional_losses(self))
        xla = backend.consistency.wanted(self)
        consistency = consistency_term(y_pred, passes, sample_weight, plan.terms, m, xla)
        if self.consistency_tracker is not None:
            self.consistency_tracker.update_state(consistency)
        replicas = backend.consistency.num_replicas()
        if replicas != 1:
            # Keras divides the compiled loss by the replica count; do the same here.
            consistency = consistency / float(replicas)
        if not losses:
            if not backend.consistency.MAY_BE_THE_ONLY_LOSS:
                raise ValueError("No loss to compute. Provide a `loss` argument in `compile()`.")
            return consistency
        total = losses[0]
        for v in losses[1:]:
            total = total + v
        if consistency.dtype != total.dtype:  # mixed precision; a same-dtype cast costs a call on torch
            consistency = ops.cast(consistency, total.dtype)
        return total + consistency

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if not self._rdrop_active():
            results = super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)
            tracker = self.consistency_tracker
            if tracker is not None and self._rdrop_local.testing > 0:
                # `evaluate` logs no consistency term. A plain train step (under
                # `consistency_every > 1`) reports the tracker's running mean over the
                # epoch's R-Drop steps, so every epoch logs the same keys.
                results.pop(tracker.name, None)
            return results
        # Score one pass: the first copy of the tiled batch. TF and torch reuse the
        # split made in `compute_loss`; JAX computes metrics outside the traced
        # loss (a new `y_pred`), where XLA merges the repeated slice.
        local = self._rdrop_local
        cached = local.first_pass
        local.first_pass = None
        if cached is not None and cached[0] is y_pred:
            first = cached[1]
        else:
            first = split(y_pred, self.passes, 1)[0]
        return super().compute_metrics(x, y, first, sample_weight=sample_weight)

    # --------------------------------------------------------------- export

    def export(self, filepath, *args, **kwargs):
        """Exports the base model (`self.base_model.export(...)`, same arguments).

        Inference is a single pass of the base model, so that is what is served;
        the R-Drop wrapper only changes training.
        """
        return self.base_model.export(filepath, *args, **kwargs)

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
            "log_consistency": self.log_consistency,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config.pop("functional_construction", None)  # written by earlier versions
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
