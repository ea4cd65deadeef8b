"""The three ways a scheduled rate reaches a layer during `fit`, behind one interface.

- `InStepRates`: package layers; the rate is computed inside the compiled train
  step from the optimizer's step (built-in schedules and traceable callables).
- `HostWrites`: package layers under a schedule that cannot be traced; the rate is
  written from the host before every batch in which it changes.
- `StockRetrace`: stock Keras layers, whose rate is a Python float read at trace
  time; the train function is retraced once per distinct set of rates (cached).

Each path drives `layers` with `base * scale` (one scale per layer) and answers
`apply(base)` (host paths only: before a batch, `base` the schedule's value),
`retraces` and `rollback()` (puts back the rates of before the `fit`, except where
the user has set one since). See docs/architecture.md ("How a rate travels").
"""

import warnings

import keras
import numpy as np

from keras_dropouts._internals import optimizer_step_counter
from keras_dropouts.backend import variables as backend_variables
from keras_dropouts.callbacks import _in_step
from keras_dropouts.callbacks._assign import RateWriter
from keras_dropouts.callbacks.targets import set_stock_rate
from keras_dropouts.layers.base import rate_writes, read_rates
from keras_dropouts.schedules import Schedule

# A stock-layer schedule that needs more distinct rates than this triggers a warning.
RETRACE_WARN_THRESHOLD = 8


class RatePath:
    """Base: the layers a path drives, their factors, their rates before the `fit`."""

    evaluation = None  # "in_step" or "host" for package layers; None for stock layers
    host = False  # True where `apply` must run before batches

    def __init__(self, owner, layers, scales):
        self.owner = owner  # the callback, named in warnings and errors
        self.layers = list(layers)
        self.scales = list(scales)
        self.before = read_rates(self.layers)
        self.writes = [rate_writes(layer) for layer in self.layers]
        self.current = list(self.before)
        self.retraces = 0

    def apply(self, base):
        """Sets the layers' rates to `base * scale` (host paths)."""

    def release(self):
        """Drops what the path kept for the length of a `fit` (cached functions)."""

    def rollback(self):
        """Puts back the rates of before the `fit` where the user has not set one since."""
        for layer, rate, writes in zip(self.layers, self.before, self.writes):
            if rate_writes(layer) == writes:
                backend_variables.write(layer.rate_variable, rate)


class InStepRates(RatePath):
    """Package layers whose rate the compiled train step computes itself."""

    evaluation = "in_step"

    @classmethod
    def install(cls, owner, hub, schedule, layers, scales):
        """Installs `schedule` into the step; None (with a warning) if it cannot be traced."""
        path = cls(owner, layers, scales)
        if isinstance(schedule, Schedule):
            a, b, v0, v1 = schedule.knots()
            by_scale = _in_step.group_by_scale(path.layers, path.scales)
            for s, group in by_scale.items():
                # The step reads the first layer's knots; the others read its rate.
                knots = np.asarray([a, b, v0 * s, v1 * s], "float32")
                backend_variables.write(group[0].rate_schedule_variable, knots)
            hub.add_knots(list(by_scale.values()))
            return path
        counter, _ = optimizer_step_counter(hub.model.optimizer)
        reason = _in_step.traceable(schedule, keras.backend.standardize_dtype(counter.dtype))
        if reason is not None:
            warnings.warn(
                f"{type(owner).__name__}: the schedule {schedule!r} cannot be evaluated "
                f"inside the compiled train step ({reason}), so its rates are written "
                "from the host before every batch, which is slow on accelerators. Build "
                "it from `keras.ops` (no Python `if` on the step), or use "
                "`keras_dropouts.schedules`.",
                stacklevel=3,
            )
            return None
        hub.add_fn(schedule, path.layers, path.scales)
        return path


class HostWrites(RatePath):
    """Package layers whose rate is written from the host before a batch."""

    evaluation = "host"
    host = True

    def __init__(self, owner, model, layers, scales):
        super().__init__(owner, layers, scales)
        self.writer = RateWriter(model, [layer.rate_variable for layer in self.layers])

    def apply(self, base):
        rates = [base * s for s in self.scales]
        changed = [k for k, r in enumerate(rates) if r != self.current[k]]
        if changed:
            # On JAX the writer syncs the state first (see docs/architecture.md).
            self.writer.write(changed, [rates[k] for k in changed])
            for k in changed:
                self.current[k] = rates[k]


class StockRetrace(RatePath):
    """Stock Keras layers: rates set from the host, the train function retraced."""

    host = True

    def __init__(self, owner, hub, layers, scales):
        super().__init__(owner, layers, scales)
        self.hub = hub
        self.functions = {tuple(self.current): hub.model.train_function}
        self.warned = False

    def check_can_switch_on(self, rate):
        """Raises if `rate > 0` must reach a stock layer built with rate 0 (no seed generator)."""
        if rate is None or rate <= 0:
            return
        for layer, current in zip(self.layers, self.current):
            if current == 0 and getattr(layer, "seed_generator", None) is None:
                raise ValueError(
                    f"{type(self.owner).__name__}: layer {layer.name!r} is a stock "
                    f"keras.layers.{type(layer).__name__} built with rate=0; it never created "
                    "a seed generator, so it cannot be switched on during training. Build it "
                    "with a rate > 0, or use keras_dropouts.layers.ScheduledDropout (see "
                    "keras_dropouts.surgery.swap_dropout)."
                )

    def apply(self, base):
        rates = [base * s for s in self.scales]
        if rates == self.current:
            return
        self.check_can_switch_on(max(rates))
        for layer, rate in zip(self.layers, rates):
            set_stock_rate(layer, rate)
        self.current = rates
        model = self.hub.model  # no JAX state sync needed: only the Python function changes
        cached = self.functions.get(tuple(rates))
        if cached is not None:
            model.train_function = cached
            return
        self.hub.refresh()
        self.functions[tuple(rates)] = model.train_function
        self.retraces += 1
        if len(self.functions) > RETRACE_WARN_THRESHOLD:
            self.warn_retraces()

    def warn_retraces(self):
        if self.warned:
            return
        self.warned = True
        names = [layer.name for layer in self.layers][:5]
        warnings.warn(
            f"{type(self.owner).__name__}: the schedule takes many distinct values and targets "
            f"stock Keras dropout layers {names}, whose rate is fixed at trace time: the train "
            "function is retraced once per distinct rate. Use "
            "keras_dropouts.layers.ScheduledDropout (e.g. via "
            "keras_dropouts.surgery.swap_dropout(model)) to change rates without retracing.",
            stacklevel=3,
        )

    def release(self):
        self.functions = {}

    def rollback(self):
        for layer, rate, current in zip(self.layers, self.before, self.current):
            if layer.rate == current:  # still the rate this path set
                layer.rate = rate
