"""DropoutScheduler: dropout rates from a schedule of the optimizer step."""

import re

import keras
import numpy as np

from keras_dropouts._checks import check_bool, check_int, invalid, to_python_scalar
from keras_dropouts._internals import fit_dataset_cardinality, layer_input_shape, optimizer_step_counter
from keras_dropouts.callbacks import _in_step
from keras_dropouts.callbacks.rate_paths import (
    RETRACE_WARN_THRESHOLD,
    HostWrites,
    InStepRates,
    StockRetrace,
)
from keras_dropouts.callbacks.targets import configured_rate, is_package_layer, select_layers
from keras_dropouts.schedules import DEPTH_RULES, check_schedule_value, depth_factors
# Host checks of a schedule's range at `fit` start use this many steps.
_PROBES = 65


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class DropoutScheduler(keras.callbacks.Callback):
    """Sets the dropout rate of layers from a schedule of the global optimizer step.

    The rate of every `keras_dropouts` layer under the schedule is computed
    **inside the compiled train step**, from the optimizer's step counter: when
    `fit` starts, the callback installs the schedule once (built-in schedules as
    four numbers in each layer's `rate_schedule` variable) and wraps the model's
    `train_step`; no rate is written from the host during training and the batch
    hooks do nothing for these layers. The rate is therefore right at every step,
    also with `steps_per_execution > 1`, and a later `fit` with another schedule
    reuses the compiled step. `step` is `model.optimizer.iterations` before the
    step (0 for the very first step), so the schedule stays right with
    `initial_epoch`, after reloading a saved model, and across several `fit`
    calls, as learning-rate schedules do.

    - A user callable is traced into the step when it works on a scalar tensor
      (built on `keras.ops`, like a `LearningRateSchedule`); one that cannot be
      traced (e.g. a Python `if` on the step) is evaluated on the host before
      every batch instead, with a one-time warning that names the reason.
    - Stock Keras layers (`Dropout`, `SpatialDropout*`, `GaussianDropout`,
      `AlphaDropout`, e.g. inside keras-hub backbones) read their rate at trace
      time; when selected explicitly, the callback sets their `rate` from the
      host and retraces the train function once per distinct set of rates
      (earlier traces are reused), warning once when that would be often. A stock
      layer built with rate 0 has no seed generator and cannot be switched on (a
      `ValueError` says so); use `ScheduledDropout` (see `keras_dropouts.surgery.swap_dropout`).

    A layer may be driven by one schedule only: two callbacks that target the
    same layer, or log under the same key, raise a `ValueError` when `fit` starts.
    Values of a schedule are checked on the host when `fit` starts (at 65 steps
    spread over the run); inside the step they are clipped to [0, 1].

    The rate is added to the epoch logs under `log_name` (so `History` and
    `TensorBoard` record it), read back from the layers after the epoch's last
    step: the schedule's value (the base rate with `depth_rule`, the factor with
    `relative=True`).

    Args:
        schedule: Callable `schedule(step) -> rate` with rate in [0, 1]; a
            `keras_dropouts.schedules.Schedule` (e.g. `LinearRamp(0.1)`, whose end
            is filled in with the length of training) or any callable, e.g. a
            `keras.optimizers.schedules.LearningRateSchedule`.
        layers: Which layers to control. None (default): every `keras_dropouts`
            layer in the model, found recursively (nested models, keras-hub
            backbones). Otherwise a layer, layer name, layer class, predicate
            `fn(layer) -> bool`, or a list of those; stock Keras dropout layers
            may be selected this way.
        depth_rule: Per-layer factors of the rate over the `n` target layers (model
            order, shallow to deep), from `keras_dropouts.schedules.depth_factors`
            (the rule `insert_drop_path` uses): False (default: every layer
            `schedule(step)`); True or `"linspace"` (the i-th gets
            `schedule(step) * linspace(0, 1, n)[i]`, stochastic depth's
            `linspace(0, rate, depth)` as in timm); `"linear"` (`(i + 1) / n`, the
            stochastic depth paper); `"constant"`; or `"stagewise"` (one factor per
            stage, a stage being consecutive targets whose inputs have one shape).
        steps_per_epoch: Steps per epoch, used to resolve schedules that end "at
            the end of training" and epoch-based cutoffs. Defaults to the value
            `fit` knows (`params["steps"]`), or, under a multi-process
            distribution that shards a `tf.data` input, the number of batches of
            the dataset before sharding; required when neither is known.
        verbose: 0 (silent) or 1: at the end of an epoch in which the rate
            changed, print one line (epochs numbered as `fit` prints them).
        log_name: Key of the rate in the logs. Defaults to a key derived from the
            targets (`"<name>_rate"` for `layers="<name>"`, `"drop_path_rate"` for
            `layers=DropPath`) or else from the callback (`"dropout_rate"`,
            `"early_dropout_rate"`, `"late_dropout_rate"`).
        relative: If True, each target's rate is `schedule(step)` times the rate
            the layer was built with (its configured rate), so layers with
            different rates keep their proportions. A stock Keras layer's config
            (what `model.save` writes) keeps its configured rate while it holds
            a scheduled one, so a reloaded model is scaled from the same rate.

    Example:
    >>> # DropBlock's ramp from 0 to 0.1 over all of training, in one line:
    >>> cb = DropoutScheduler(keras_dropouts.schedules.LinearRamp(0.1))
    >>> model.fit(x, y, epochs=10, callbacks=[cb])
    """

    _log_prefix = "dropout"

    def __init__(
        self,
        schedule,
        layers=None,
        depth_rule=False,
        steps_per_epoch=None,
        verbose=0,
        log_name=None,
        relative=False,
    ):
        super().__init__()
        if not callable(schedule):
            raise TypeError(
                "Argument `schedule` must be a callable `schedule(step) -> rate`. "
                f"Received: schedule={schedule!r}"
            )
        self.schedule = schedule
        self.layers = layers
        self.depth_rule = _check_depth_rule(depth_rule)
        self.steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch", 1, allow_none=True)
        if isinstance(verbose, str) or verbose not in (0, 1):
            raise invalid("verbose", "0 or 1", verbose)
        self.verbose = int(verbose)
        if log_name is not None and (not isinstance(log_name, str) or not log_name):
            raise invalid("log_name", "a non-empty string or None", log_name)
        self.log_name = log_name
        self.relative = check_bool(relative, "relative")
        self.retrace_count = 0
        self.targets = []
        self._scales = []
        self._paths = []  # the rate paths of the current `fit` (see rate_paths.py)
        self._active_schedule = None
        self._last_base = None
        self._last_logged = None
        self._epoch_start_step = 0

    @property
    def log_key(self):
        """The key of this callback's rate in the logs."""
        if self.log_name is not None:
            return self.log_name
        spec = self.layers
        if isinstance(spec, str):
            return f"{spec}_rate"
        if isinstance(spec, type):
            return f"{_snake(spec.__name__)}_rate"
        if isinstance(spec, keras.layers.Layer):
            return f"{spec.name}_rate"
        return f"{self._log_prefix}_rate"

    # Hooks for subclasses --------------------------------------------------------------

    def _make_schedule(self, steps_per_epoch, total_steps):
        """Returns the step -> rate callable used during this `fit`."""
        schedule = self.schedule
        if hasattr(schedule, "resolve"):
            if getattr(schedule, "end_step", 0) is None and total_steps is None:
                raise ValueError(self._unknown_steps_message())
            schedule = schedule.resolve(total_steps)
        return schedule

    def _base_scales(self):
        """Per-target factors before the depth rule (the configured rates if relative)."""
        if self.relative:
            return [configured_rate(layer) for layer in self.targets]
        return [1.0] * len(self.targets)

    def _steps_per_epoch(self, model, params):
        """The callback's `steps_per_epoch`, else what `fit` knows, else the length of the
        `tf.data` input before a multi-process distribution sharded it (the sharded
        dataset's length is unknown to TF, though every process runs one step per global
        batch); None where none is known."""
        return self.steps_per_epoch or params.get("steps") or fit_dataset_cardinality(model)

    def _unknown_steps_message(self):
        return (
            f"{type(self).__name__}: the number of steps per epoch is unknown (e.g. a dataset "
            "of unknown length), so epoch-based or end-of-training schedules cannot be "
            "converted to optimizer steps. Pass `steps_per_epoch=` to the callback, or give "
            "the schedule in steps."
        )

    # Callback API ----------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        model = self.model  # syncs the JAX state
        hub = _in_step.hub_for(model)
        hub.begin(self)
        try:
            self._begin(model, hub)
        except BaseException:
            hub.abort()  # `fit` stops here and calls no `on_train_end`
            raise

    @property
    def evaluation(self):
        """`"in_step"` or `"host"`: how the package layers get their rates in this `fit`
        (None before `fit`, or without package layers)."""
        return next((p.evaluation for p in self._paths if p.evaluation), None)

    def _begin(self, model, hub):
        self.targets = select_layers(model, self.layers)
        hub.claim(self, self.targets, self.log_key)
        depth = _depth(self.targets, self.depth_rule)
        self._scales = [float(b * d) for b, d in zip(self._base_scales(), depth)]

        params = self.params or {}
        spe = self._steps_per_epoch(model, params)
        epochs = params.get("epochs")
        total = spe * epochs if (spe and epochs) else None
        self._active_schedule = self._make_schedule(spe, total)
        start = self._read_iterations()
        # One host pass over the run: validates every value and counts the distinct
        # rates (the stock-layer path retraces once per distinct rate).
        probed = self._check_range(start, total)
        self._paths = self._make_paths(model, hub)
        for path in self._paths:
            hub.on_abort(path.rollback)
            if isinstance(path, StockRetrace):
                path.check_can_switch_on(getattr(self._active_schedule, "max_rate", None))
                if total is not None and len(probed) > RETRACE_WARN_THRESHOLD:
                    path.warn_retraces()
        self._last_base = None
        self._last_logged = self._rate_at(start)
        self._epoch_start_step = start

    def _make_paths(self, model, hub):
        """One rate path for the package layers (in the step, or host writes when the
        schedule cannot be traced) and one for the stock layers."""
        package = [(layer, s) for layer, s in zip(self.targets, self._scales) if is_package_layer(layer)]
        stock = [(layer, s) for layer, s in zip(self.targets, self._scales) if not is_package_layer(layer)]
        paths = []
        if package:
            layers, scales = zip(*package)
            path = InStepRates.install(self, hub, self._active_schedule, layers, scales)
            paths.append(path if path is not None else HostWrites(self, model, layers, scales))
        if stock:
            layers, scales = zip(*stock)
            paths.append(StockRetrace(self, hub, layers, scales))
        return paths

    def _host_paths(self):
        return [p for p in self._paths if p.host]

    def on_epoch_begin(self, epoch, logs=None):
        if self._host_paths():
            self._epoch_start_step = self._read_iterations()

    def on_train_batch_begin(self, batch, logs=None):
        paths = self._host_paths()
        if paths:
            base = self._rate_at(self._epoch_start_step + int(batch))
            if base != self._last_base:
                for path in paths:
                    path.apply(base)
                self._last_base = base

    def on_epoch_end(self, epoch, logs=None):
        rate = self._logged_rate()
        if rate is None:
            return
        if logs is not None:
            logs[self.log_key] = rate
        if self.verbose and self._last_logged is not None and rate != self._last_logged:
            print(
                f"\n{type(self).__name__}: Epoch {epoch + 1}: {self.log_key} "
                f"{self._last_logged:.4g} -> {rate:.4g} on {len(self.targets)} layer(s)."
            )
        self._last_logged = rate

    def on_train_end(self, logs=None):
        retraces = sum(p.retraces for p in self._paths)
        self.retrace_count += retraces
        # The model keeps the train function that matches stock layers' final rates.
        _in_step.hub_for(self._model).end(keep_function=retraces == 0)
        for path in self._paths:
            path.release()

    # Internals --------------------------------------------------------------------------------

    def _logged_rate(self):
        """The schedule's current value, read back from the layer with the largest factor."""
        if not self.targets:
            return None
        k = int(np.argmax(self._scales))
        scale = self._scales[k]
        if scale == 0:
            return 0.0
        _ = self.model  # syncs the JAX state
        return self.targets[k].rate / scale

    def _read_iterations(self):
        # `self.model` syncs the JAX state, so the value is current. A scalar read, not
        # `convert_to_numpy` (NumPy 2 warns on TF / torch tensors, see `to_python_scalar`).
        counter, every = optimizer_step_counter(self.model.optimizer)
        return int(to_python_scalar(counter.value)) // every

    def _rate_at(self, step):
        value = self._active_schedule(step)
        try:
            return check_schedule_value(value, "rate")
        except ValueError:
            raise ValueError(
                f"{type(self).__name__}: schedule({step}) returned {value!r}; a dropout rate "
                "must be a scalar in the range [0, 1]."
            ) from None

    def _check_range(self, start, total):
        if total is None:
            probe = [start]
        else:
            probe = np.unique(np.linspace(start, max(start, total - 1), _PROBES).round())
        return {self._rate_at(int(step)) for step in probe}


def _check_depth_rule(depth_rule):
    if isinstance(depth_rule, (bool, np.bool_)):
        return bool(depth_rule)
    if isinstance(depth_rule, str) and depth_rule in DEPTH_RULES:
        return depth_rule
    raise invalid("depth_rule", f"True, False or one of {DEPTH_RULES}", depth_rule)


def _depth(targets, depth_rule):
    """Per-target depth factors (`schedules.depth_factors`; True is `"linspace"`)."""
    if depth_rule is False:
        return [1.0] * len(targets)
    rule = "linspace" if depth_rule is True else depth_rule
    stages = None
    if rule == "stagewise":
        stages = [layer_input_shape(layer) for layer in targets]
        unknown = [layer.name for layer, shape in zip(targets, stages) if shape is None]
        if unknown:
            raise ValueError(
                "depth_rule='stagewise' groups the target layers by the shape of their "
                f"inputs, which is unknown for {unknown} (layers never called, or called "
                "on several shapes). Use depth_rule='linear' or 'linspace'."
            )
    return depth_factors(len(targets), rule, stages=stages)

__all__ = ["DropoutScheduler"]
