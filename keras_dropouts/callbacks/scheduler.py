"""DropoutScheduler: set dropout rates from a schedule of the optimizer step."""

import functools
import math
import warnings

import keras
import numpy as np

from keras_dropouts.callbacks._assign import RateWriter
from keras_dropouts.callbacks.targets import is_package_layer, select_layers

# A stock-layer schedule that needs more distinct rates than this triggers a warning.
_RETRACE_WARN_THRESHOLD = 8
_UNSET = object()


def _to_float(value):
    if isinstance(value, (int, float)):
        return float(value)
    return float(keras.ops.convert_to_numpy(value))


class DropoutScheduler(keras.callbacks.Callback):
    """Sets the dropout rate of layers from a schedule of the global optimizer step.

    Before every train step (in `on_train_batch_begin`) the callback evaluates
    `schedule(step)`, where `step` is `model.optimizer.iterations` before that step
    (0 for the very first step), and writes the result into the target layers.
    Because the step comes from the optimizer, the schedule stays right with
    `initial_epoch`, after reloading a saved model, and across several `fit` calls.

    - `keras_dropouts` layers hold their rate in a variable read inside the
      compiled step: the new rate applies at the very next optimizer step with no
      retrace. Variables are only written when the rate changes.
    - Stock Keras layers (`Dropout`, `SpatialDropout*`, `GaussianDropout`,
      `AlphaDropout`, e.g. the dropout inside keras-hub backbones) read their rate
      at trace time; when selected explicitly, the callback sets their `rate` and
      retraces the train function, once per distinct set of rates (earlier traces
      are cached and reused). A schedule with many distinct values therefore
      retraces often: the callback warns once and suggests `ScheduledDropout`
      (see `swap_dropout`). A stock layer created with rate 0 has no seed
      generator and cannot be switched on (a `ValueError` says so).

    Granularity: with `steps_per_execution=k > 1` (TF, JAX) callbacks run once per
    execution, so the rate is updated every `k` steps, from the step index of the
    first step of each execution.

    The current rate is added to the epoch logs under `log_name` (so `History`
    and `TensorBoard` record it); with `depth_rule=True` the logged value is the
    base (deepest) rate.

    Args:
        schedule: Callable `schedule(step) -> rate` with rate in [0, 1]; a
            `keras_dropouts.schedules.Schedule` (e.g. `LinearRamp(0.1)`, whose end
            is filled in with the length of training) or any
            `keras.optimizers.schedules.LearningRateSchedule`-like object.
        layers: Which layers to control. None (default): every `keras_dropouts`
            layer in the model, found recursively (nested models, keras-hub
            backbones). Otherwise a layer, layer name, layer class, predicate
            `fn(layer) -> bool`, or a list of those; stock Keras dropout layers
            may be selected this way.
        depth_rule: If True, the i-th of `n` target layers (model order) gets
            `schedule(step) * linspace(0, 1, n)[i]`, i.e. stochastic depth's
            `linspace(0, rate, depth)` rule for DropPath layers.
        steps_per_epoch: Steps per epoch, used to resolve schedules that end "at
            the end of training" and epoch-based cutoffs. Defaults to the value
            `fit` knows (`params["steps"]`); required when it is unknown.
        verbose: 0 (silent) or 1: print a short line when the rate switches
            (from or to 0, and at most one line per epoch for gradual changes).
        log_name: Key of the rate in the epoch logs. Defaults to
            `"dropout_rate"`.

    Example:
    >>> # DropBlock's ramp from 0 to 0.1 over all of training, in one line:
    >>> cb = DropoutScheduler(keras_dropouts.schedules.LinearRamp(0.1))
    >>> model.fit(x, y, epochs=10, callbacks=[cb])
    """

    def __init__(
        self,
        schedule,
        layers=None,
        depth_rule=False,
        steps_per_epoch=None,
        verbose=0,
        log_name="dropout_rate",
    ):
        super().__init__()
        if not callable(schedule):
            raise TypeError(
                "Argument `schedule` must be a callable `schedule(step) -> rate`. "
                f"Received: schedule={schedule!r}"
            )
        if steps_per_epoch is not None and (
            int(steps_per_epoch) != steps_per_epoch or steps_per_epoch < 1
        ):
            raise ValueError(
                "Argument `steps_per_epoch` must be a positive integer or None. "
                f"Received: steps_per_epoch={steps_per_epoch!r}"
            )
        if verbose not in (0, 1, True, False):
            raise ValueError(f"Argument `verbose` must be 0 or 1. Received: verbose={verbose!r}")
        self.schedule = schedule
        self.layers = layers
        self.depth_rule = bool(depth_rule)
        self.steps_per_epoch = steps_per_epoch
        self.verbose = int(verbose)
        self.log_name = log_name
        self.retrace_count = 0
        self.targets = []
        self._writer = None
        self._jax_train_step = _UNSET

    # Hooks for subclasses --------------------------------------------------------------

    def _make_schedule(self, steps_per_epoch, total_steps):
        """Returns the step -> rate callable used during this `fit`."""
        schedule = self.schedule
        if hasattr(schedule, "resolve"):
            if getattr(schedule, "end_step", 0) is None and total_steps is None:
                raise ValueError(self._unknown_steps_message())
            schedule = schedule.resolve(total_steps)
        return schedule

    def _unknown_steps_message(self):
        return (
            f"{type(self).__name__}: the number of steps per epoch is unknown (e.g. a dataset "
            "of unknown length), so epoch-based or end-of-training schedules cannot be "
            "converted to optimizer steps. Pass `steps_per_epoch=` to the callback, or give "
            "the schedule in steps."
        )

    # Callback API ----------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        model = self.model
        self.targets = select_layers(model, self.layers)
        self._package = [is_package_layer(layer) for layer in self.targets]
        n = len(self.targets)
        if self.depth_rule:
            self._scales = [float(s) for s in np.linspace(0.0, 1.0, n)]
        else:
            self._scales = [1.0] * n
        self._current = [float(layer.rate) for layer in self.targets]
        self._stock_idx = [i for i in range(n) if not self._package[i]]
        self._package_idx = [i for i in range(n) if self._package[i]]
        variables = [self.targets[i].rate_variable for i in self._package_idx]
        writer = getattr(self, "_writer", None)
        ids = [id(v) for v in variables]
        if writer is None or writer.model is not model or [id(v) for v in writer.variables] != ids:
            # Reused across `fit` calls (the TF branch compiles a small assign function).
            self._writer = RateWriter(model, variables)
        self._writer_pos = {i: k for k, i in enumerate(self._package_idx)}

        params = self.params or {}
        spe = self.steps_per_epoch or params.get("steps")
        epochs = params.get("epochs")
        total = spe * epochs if (spe and epochs) else None
        self._spe = spe
        self._active_schedule = self._make_schedule(spe, total)

        self._last_base = None
        self._last_logged_epoch = None
        self._epoch = 0
        self._epoch_start_step = self._read_iterations()
        self._fn_cache = {}
        self._jax_train_step = _UNSET
        if self._stock_idx:
            self._fn_cache[self._stock_key(self._current)] = model.train_function
            self._check_stock_can_switch_on(getattr(self._active_schedule, "max_rate", None))
            self._warned_retrace = False
            self._maybe_warn_retraces(total)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start_step = self._read_iterations()

    def on_train_batch_begin(self, batch, logs=None):
        self._apply(self._epoch_start_step + int(batch))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._last_base is not None:
            logs[self.log_name] = self._last_base

    def on_train_end(self, logs=None):
        # The model keeps the train function that matches the final rates.
        self._fn_cache = {}
        self._restore_train_step()

    def _restore_train_step(self):
        model = self._model
        saved, self._jax_train_step = self._jax_train_step, _UNSET
        if model is None or saved is _UNSET:
            return
        if saved is None:
            model.__dict__.pop("train_step", None)
        else:
            model.__dict__["train_step"] = saved

    # Internals --------------------------------------------------------------------------------

    def _read_iterations(self):
        # `self.model` syncs the JAX state, so the value is current.
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations.value))

    def _rate_at(self, step):
        rate = _to_float(self._active_schedule(step))
        if math.isnan(rate) or not 0.0 <= rate <= 1.0:
            raise ValueError(
                f"{type(self).__name__}: schedule({step}) returned {rate!r}; a dropout rate "
                "must be in the range [0, 1]."
            )
        return rate

    def _apply(self, step):
        base = self._rate_at(step)
        if base == self._last_base:
            return
        previous = self._last_base
        rates = [base * s for s in self._scales]
        changed_pkg = [i for i in self._package_idx if rates[i] != self._current[i]]
        if changed_pkg:
            # On JAX the writer either syncs the state first (as `self.model` does,
            # DESIGN.md §2) or writes into the state the next step receives.
            self._writer.write(
                [self._writer_pos[i] for i in changed_pkg], [rates[i] for i in changed_pkg]
            )
            for i in changed_pkg:
                self._current[i] = rates[i]
        if any(rates[i] != self._current[i] for i in self._stock_idx):
            self._switch_stock(rates)
        self._last_base = base
        if self.verbose:
            self._report(step, previous, base)

    def _stock_key(self, rates):
        return tuple(rates[i] for i in self._stock_idx)

    def _check_stock_can_switch_on(self, rate):
        if rate is None or rate <= 0:
            return
        for i in self._stock_idx:
            layer = self.targets[i]
            if self._current[i] == 0 and getattr(layer, "seed_generator", None) is None:
                raise ValueError(
                    f"{type(self).__name__}: layer {layer.name!r} is a stock "
                    f"keras.layers.{type(layer).__name__} built with rate=0; it never created "
                    "a seed generator, so it cannot be switched on during training. Build it "
                    "with a rate > 0, or use keras_dropouts.layers.ScheduledDropout (see "
                    "keras_dropouts.callbacks.swap_dropout)."
                )

    def _switch_stock(self, rates):
        self._check_stock_can_switch_on(max(rates[i] for i in self._stock_idx))
        for i in self._stock_idx:
            self.targets[i].rate = rates[i]
            self._current[i] = rates[i]
        key = self._stock_key(rates)
        model = self._model  # no JAX state sync needed: only the Python function changes
        cached = self._fn_cache.get(key)
        if cached is not None:
            model.train_function = cached
            return
        if keras.backend.backend() == "jax":
            # jax.jit caches traces by function: a new jit of the same bound method
            # `model.train_step` would reuse the trace with the old rate baked in.
            # A fresh wrapper object forces the one retrace this rate needs.
            if self._jax_train_step is _UNSET:
                self._jax_train_step = model.__dict__.get("train_step")
            model.train_step = functools.partial(type(model).train_step, model)
            model.make_train_function(force=True)
        else:
            model.make_train_function(force=True)
        self._fn_cache[key] = model.train_function
        self.retrace_count += 1
        if len(self._fn_cache) > _RETRACE_WARN_THRESHOLD:
            self._warn_retraces()

    def _maybe_warn_retraces(self, total):
        if total is None or not callable(self._active_schedule):
            return
        probe = np.unique(np.linspace(0, max(total - 1, 0), 64).round().astype(int))
        values = {self._rate_at(int(s)) for s in probe}
        if len(values) > _RETRACE_WARN_THRESHOLD:
            self._warn_retraces()

    def _warn_retraces(self):
        if self._warned_retrace:
            return
        self._warned_retrace = True
        names = [self.targets[i].name for i in self._stock_idx][:5]
        warnings.warn(
            f"{type(self).__name__}: the schedule takes many distinct values and targets "
            f"stock Keras dropout layers {names}, whose rate is fixed at trace time: the train "
            "function is retraced once per distinct rate. Use "
            "keras_dropouts.layers.ScheduledDropout (e.g. via "
            "keras_dropouts.callbacks.swap_dropout(model)) to change rates without retracing.",
            stacklevel=2,
        )

    def _report(self, step, previous, base):
        if previous is None:
            return
        switched = (previous == 0) != (base == 0)
        if not switched and self._last_logged_epoch == self._epoch:
            return
        self._last_logged_epoch = self._epoch
        print(
            f"\n{type(self).__name__}: epoch {self._epoch + 1}, step {step}: dropout rate "
            f"{previous:.4g} -> {base:.4g} on {len(self.targets)} layer(s)."
        )


__all__ = ["DropoutScheduler"]
