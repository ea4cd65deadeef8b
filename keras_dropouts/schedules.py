"""Rate schedules: functions of the optimizer step, on the host or inside a compiled step.

A schedule maps the global optimizer step (the value of
`model.optimizer.iterations` *before* the step runs, i.e. 0 for the first step)
to a drop rate in [0, 1]. Every schedule here accepts either a Python number
(returns a Python float) or a scalar tensor (returns a float32 tensor), so the
callbacks in `keras_dropouts.callbacks` evaluate it *inside* the compiled train
step, from the optimizer's step counter, with no host work per step.

All built-in schedules are one family, "two knots": `v0` before step `a`, `v1`
from step `b` on, linear in between (a jump when `a == b`). `Schedule.knots()`
returns `(a, b, v0, v1)`; the callbacks keep those four numbers in each target
layer's `rate_schedule` variable, so a new schedule or a second `fit` changes
variable values, never the compiled step.

Conventions at the boundaries (checked exactly by the tests):

- `Early(rate, cutoff_step, "constant")`: `rate` for `step < cutoff_step`, then 0.
- `Early(rate, cutoff_step, "linear")`: `rate * (1 - step / cutoff_step)` for
  `step < cutoff_step`, then 0 (so `rate` at step 0 and exactly 0 at the cutoff).
- `Late(rate, start_step, "constant")`: 0 for `step < start_step`, then `rate`.
- `Late(rate, start_step, "linear", end_step)`: 0 up to `start_step`, then a
  linear rise reaching `rate` at `end_step` and staying there.
- `LinearRamp(end_rate, start_rate=0, start_step=0, end_step)`: `start_rate`
  up to `start_step`, linear in between, `end_rate` from `end_step` on.

An `end_step=None` means "the end of training": the callbacks fill it in from
`epochs * steps_per_epoch` when `fit` starts (see `Schedule.resolve`). Inside the
compiled step the step is a float32, exact up to 2**24 (16.7 million) steps.

`depth_factors(n, depth_rule)` gives per-block factors of one rate (the rules are
`DEPTH_RULES`: `"constant"`, `"linear"`, `"stagewise"`), used by
`keras_dropouts.surgery.insert_drop_path`.
"""

import numbers

import keras
import numpy as np
from keras import ops

from keras_dropouts._checks import (
    check_choice,
    check_int,
    check_number,
    check_rate,
    invalid,
    to_python_scalar,
)

MODES = ("constant", "linear")


def _check_step(step, name, allow_none=False):
    return check_int(step, name, 0, allow_none=allow_none)


def _check_span(start_step, end_step, start_name="start_step", end_name="end_step"):
    if end_step is not None and end_step < start_step:
        raise ValueError(
            f"Invalid value received for argument `{end_name}`. Expected an integer >= "
            f"`{start_name}` ({start_step}). Received: {end_name}={end_step!r}"
        )


def _check_mode(mode):
    return check_choice(mode, "mode", MODES)


def is_host_step(step):
    """True for a Python / NumPy number (host evaluation), False for a tensor."""
    return isinstance(step, (numbers.Number, np.number)) and not isinstance(step, bool)


def two_knots(step, a, b, v0, v1):
    """`v0` for `step < a`, `v1` for `step >= b`, linear in between.

    With `a == b` it is a step function (`v0` before `a`, `v1` from it on). On a
    Python number it returns a Python float; on a tensor (any shape, `a`, `b`,
    `v0`, `v1` broadcastable to it) a float32 tensor, with no Python branch on the
    step's value, so it traces once under `jit` / `tf.function`.

    Args:
        step: The optimizer step: a Python number (returns a Python float) or a
            scalar tensor (returns a float32 tensor, traced once).
        a: First knot: the step up to which the value is `v0`.
        b: Second knot (`b >= a`): the step from which the value is `v1`.
        v0: Value before step `a`.
        v1: Value from step `b` on.

    Example:
    >>> two_knots(5, 0, 10, 0.0, 0.1)
    0.05
    """
    if is_host_step(step):
        if step < a:
            return float(v0)
        if step >= b:
            return float(v1)
        return float(v0 + (v1 - v0) * (step - a) / (b - a))
    s = ops.cast(step, "float32")
    a, b, v0, v1 = (ops.cast(t, "float32") for t in (a, b, v0, v1))
    ramp = v0 + (v1 - v0) * (s - a) / ops.maximum(b - a, 1.0)
    return ops.where(s >= b, v1, ops.where(s < a, v0, ramp))


def _check_host_step(step):
    if is_host_step(step):
        check_number(step, "step", min_value=0)


# Function forms ---------------------------------------------------------------------------


def constant_rate(step, rate):
    """Returns `rate` at every step (a float32 tensor when `step` is a tensor).

    Args:
        step: The optimizer step: a Python number (returns a Python float) or a
            scalar tensor (returns a float32 tensor, traced once).
        rate: Float in [0, 1], the rate at every step.

    Example:
    >>> constant_rate(10, 0.1)
    0.1
    """
    return Constant(rate)(step)


def linear_ramp(step, end_rate, end_step, start_rate=0.0, start_step=0):
    """Linear interpolation from `start_rate` at `start_step` to `end_rate` at `end_step`.

    Constant `start_rate` before `start_step` and `end_rate` from `end_step` on.

    Args:
        step: The optimizer step: a Python number (returns a Python float) or a
            scalar tensor (returns a float32 tensor, traced once).
        end_rate: Float in [0, 1], the rate from `end_step` on.
        end_step: Int >= `start_step`, the step at which `end_rate` is reached.
        start_rate: Float in [0, 1], the rate up to `start_step`.
        start_step: Int >= 0, the step at which the ramp starts.

    Example:
    >>> linear_ramp(50, 0.1, end_step=100)
    0.05
    """
    return LinearRamp(end_rate, start_rate, start_step, end_step)(step)


def early_rate(step, rate, cutoff_step, mode="constant"):
    """Early dropout (Liu et al. 2023): `rate` before `cutoff_step`, 0 from it on.

    With `mode="linear"` the rate decreases linearly from `rate` at step 0 to 0 at
    `cutoff_step`.

    Args:
        step: The optimizer step: a Python number (returns a Python float) or a
            scalar tensor (returns a float32 tensor, traced once).
        rate: Float in [0, 1], the rate at step 0.
        cutoff_step: Int >= 0, the first step without dropout.
        mode: `"constant"` (keep `rate` until the cutoff) or `"linear"` (decrease
            it linearly to 0 at the cutoff).

    Example:
    >>> early_rate(99, 0.1, 100), early_rate(100, 0.1, 100)
    (0.1, 0.0)
    """
    return Early(rate, cutoff_step, mode)(step)


def late_rate(step, rate, start_step, mode="constant", end_step=None):
    """Late dropout (Liu et al. 2023): 0 before `start_step`, `rate` from it on.

    With `mode="linear"` the rate rises linearly from 0 at `start_step` to `rate`
    at `end_step` (required for the linear mode).

    Args:
        step: The optimizer step: a Python number (returns a Python float) or a
            scalar tensor (returns a float32 tensor, traced once).
        rate: Float in [0, 1], the rate once dropout is on.
        start_step: Int >= 0, the first step with dropout.
        mode: `"constant"` (`rate` from `start_step` on) or `"linear"` (rise from 0
            at `start_step` to `rate` at `end_step`).
        end_step: Int >= `start_step`, where the linear rise reaches `rate`
            (required for `mode="linear"`, ignored otherwise).

    Example:
    >>> late_rate(99, 0.1, 100), late_rate(100, 0.1, 100)
    (0.0, 0.1)
    """
    return Late(rate, start_step, mode, end_step)(step)


# Serialisable schedule objects ---------------------------------------------------------------


class Schedule:
    """Base class of the rate schedules: `schedule(step) -> rate`.

    Subclasses implement `knots()` (the two-knot form `(a, b, v0, v1)`, see the
    module docstring) and `get_config`. Schedules whose length depends on the
    length of training accept `end_step=None` and are completed by the callbacks
    through `resolve(total_steps)`.

    Example:
    >>> class Halfway(Schedule):
    ...     def __init__(self, rate, step):
    ...         self.rate, self.step = rate, step
    ...     def knots(self):
    ...         return (self.step, self.step, 0.0, self.rate)
    ...     def get_config(self):
    ...         return {"rate": self.rate, "step": self.step}
    >>> Halfway(0.1, 100)(99), Halfway(0.1, 100)(100)
    (0.0, 0.1)
    """

    def knots(self):
        """`(a, b, v0, v1)`: `v0` before step `a`, `v1` from step `b`, linear between."""
        raise NotImplementedError

    def __call__(self, step):
        _check_host_step(step)
        return two_knots(step, *self.knots())

    @property
    def max_rate(self):
        """Upper bound of the rate over all steps (used to validate targets early)."""
        return None

    def needs_end(self):
        """True if this schedule's `end_step` is None and must be set by `resolve`."""
        return False

    def resolve(self, total_steps):
        """Returns a copy with `end_step=None` replaced by `total_steps`."""
        if total_steps is None or not self.needs_end():
            return self
        config = self.get_config()
        config["end_step"] = max(int(total_steps), self.start_step)
        return type(self)(**config)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))


@keras.saving.register_keras_serializable(package="keras_dropouts")
class Constant(Schedule):
    """The same rate at every step.

    Args:
        rate: Float in [0, 1].

    Example:
    >>> Constant(0.1)(1000)
    0.1
    """

    def __init__(self, rate):
        self.rate = check_rate(rate, "rate")

    def knots(self):
        return (0.0, 0.0, self.rate, self.rate)

    @property
    def max_rate(self):
        return self.rate

    def get_config(self):
        return {"rate": self.rate}


@keras.saving.register_keras_serializable(package="keras_dropouts")
class LinearRamp(Schedule):
    """Linear ramp from `start_rate` to `end_rate` (DropBlock's schedule).

    DropBlock (Ghiasi et al. 2018) and ProbDropBlock ramp the rate linearly from 0
    to the target over all of training: `LinearRamp(0.1)` inside a
    `DropoutScheduler` does exactly that, with the end of training filled in when
    `fit` starts.

    Args:
        end_rate: Float in [0, 1], the rate reached at `end_step`.
        start_rate: Float in [0, 1], the rate up to `start_step`. Defaults to 0.
        start_step: Int >= 0, where the ramp starts. Defaults to 0.
        end_step: Int >= `start_step`, where the ramp ends, or None for "the end of
            training" (resolved by the callbacks).

    Example:
    >>> LinearRamp(0.1, end_step=100)(50)
    0.05
    """

    def __init__(self, end_rate, start_rate=0.0, start_step=0, end_step=None):
        self.end_rate = check_rate(end_rate, "end_rate")
        self.start_rate = check_rate(start_rate, "start_rate")
        self.start_step = _check_step(start_step, "start_step")
        self.end_step = _check_step(end_step, "end_step", allow_none=True)
        _check_span(self.start_step, self.end_step)

    def knots(self):
        if self.end_step is None:
            raise ValueError(
                "LinearRamp(end_step=None) ramps until the end of training: use it inside "
                "`keras_dropouts.callbacks.DropoutScheduler`, or pass `end_step`."
            )
        return (self.start_step, self.end_step, self.start_rate, self.end_rate)

    @property
    def max_rate(self):
        return max(self.start_rate, self.end_rate)

    def needs_end(self):
        return self.end_step is None

    def get_config(self):
        return {
            "end_rate": self.end_rate,
            "start_rate": self.start_rate,
            "start_step": self.start_step,
            "end_step": self.end_step,
        }


@keras.saving.register_keras_serializable(package="keras_dropouts")
class Early(Schedule):
    """Early dropout schedule (Liu et al. 2023, "Dropout Reduces Underfitting").

    Args:
        rate: Float in [0, 1], the rate at step 0.
        cutoff_step: Int >= 0, the first step without dropout.
        mode: `"constant"` (rate until the cutoff, then 0) or `"linear"` (from
            `rate` linearly down to 0 at the cutoff).

    Example:
    >>> s = Early(0.1, cutoff_step=100, mode="linear")
    >>> s(0), s(50), s(100)
    (0.1, 0.05, 0.0)
    """

    def __init__(self, rate, cutoff_step, mode="constant"):
        self.rate = check_rate(rate, "rate")
        self.cutoff_step = _check_step(cutoff_step, "cutoff_step")
        self.mode = _check_mode(mode)

    def knots(self):
        start = 0 if self.mode == "linear" else self.cutoff_step
        return (start, self.cutoff_step, self.rate, 0.0)

    @property
    def max_rate(self):
        return self.rate if self.cutoff_step > 0 else 0.0

    def get_config(self):
        return {"rate": self.rate, "cutoff_step": self.cutoff_step, "mode": self.mode}


@keras.saving.register_keras_serializable(package="keras_dropouts")
class Late(Schedule):
    """Late dropout schedule (Liu et al. 2023): no dropout until `start_step`.

    Args:
        rate: Float in [0, 1], the rate from `start_step` on (constant mode) or
            reached at `end_step` (linear mode).
        start_step: Int >= 0, the first step with dropout.
        mode: `"constant"` or `"linear"` (a linear rise from 0 at `start_step` to
            `rate` at `end_step`).
        end_step: Int >= `start_step`, end of the linear rise, or None for "the end
            of training" (resolved by the callbacks). Ignored in constant mode.

    Example:
    >>> s = Late(0.4, start_step=100)
    >>> s(99), s(100)
    (0.0, 0.4)
    """

    def __init__(self, rate, start_step, mode="constant", end_step=None):
        self.rate = check_rate(rate, "rate")
        self.start_step = _check_step(start_step, "start_step")
        self.mode = _check_mode(mode)
        self.end_step = _check_step(end_step, "end_step", allow_none=True)
        _check_span(self.start_step, self.end_step)

    def knots(self):
        if self.mode == "constant":
            return (self.start_step, self.start_step, 0.0, self.rate)
        if self.end_step is None:
            raise ValueError(
                "Late(mode='linear', end_step=None) rises until the end of training: use it "
                "inside a keras_dropouts callback, or pass `end_step`."
            )
        return (self.start_step, self.end_step, 0.0, self.rate)

    @property
    def max_rate(self):
        return self.rate

    def needs_end(self):
        return self.mode == "linear" and self.end_step is None

    def get_config(self):
        return {
            "rate": self.rate,
            "start_step": self.start_step,
            "mode": self.mode,
            "end_step": self.end_step,
        }


def check_schedule_value(value, where):
    """Validates one host value returned by a user schedule; returns it as a float."""
    if hasattr(value, "shape") and not is_host_step(value):
        if tuple(value.shape) != ():
            raise ValueError(
                f"{where} returned a tensor of shape {tuple(value.shape)}; a schedule must "
                "return a scalar rate in [0, 1]."
            )
        value = to_python_scalar(value)
    try:
        return check_rate(value, "rate")
    except ValueError:
        raise invalid(where, "a scalar rate between 0 and 1", value) from None


DEPTH_RULES = ("constant", "linear", "stagewise", "linspace")
"""The per-block rules of `depth_factors`: `"constant"`, `"linear"`, `"stagewise"` and `"linspace"`."""


def depth_factors(n, depth_rule="linear", stages=None):
    """Per-block factors of a drop rate, shallow to deep: block `i` gets `rate * factors[i]`.

    - `"constant"`: every factor is 1.
    - `"linear"`: the stochastic depth paper's rule (Huang et al. 2016, eq. 4,
      `p_l = 1 - l / L * (1 - p_L)` as a keep probability): the `i`-th of `n` blocks
      (0-based) gets `(i + 1) / n`, so the first block drops `rate / n` and the last
      `rate`.
    - `"linspace"`: timm's and Keras' ConvNeXt rule, `linspace(0, 1, n)`: the first
      block gets 0 (`depth_rule=True` of the callbacks).
    - `"stagewise"`: one factor per stage, linear over the stages: every block of the
      `k`-th of `S` stages (0-based) gets `(k + 1) / S`. `stages` gives each block's stage
      label (blocks of one stage are consecutive).

    Args:
        n: Number of blocks, an integer >= 0.
        depth_rule: `"constant"`, `"linear"`, `"stagewise"` or `"linspace"`.
        stages: For `"stagewise"`, a sequence of `n` hashable stage labels, consecutive
            blocks with equal labels forming one stage. Ignored by the other rules.

    Returns:
        A list of `n` Python floats in [0, 1] (in (0, 1] but for `"linspace"`).

    Raises:
        ValueError: for a bad `n` or `depth_rule`, or `"stagewise"` without `n` stages.

    Example:
    >>> depth_factors(4, "linear")
    [0.25, 0.5, 0.75, 1.0]
    >>> depth_factors(4, "stagewise", stages=["a", "a", "b", "b"])
    [0.5, 0.5, 1.0, 1.0]
    """
    n = check_int(n, "n", 0)
    depth_rule = check_choice(depth_rule, "depth_rule", DEPTH_RULES)
    if depth_rule == "constant":
        return [1.0] * n
    if depth_rule == "linear":
        return [(i + 1) / n for i in range(n)]
    if depth_rule == "linspace":
        return [float(v) for v in np.linspace(0.0, 1.0, n)]
    if stages is None or len(stages) != n:
        raise invalid("stages", f"a sequence of {n} stage labels for depth_rule='stagewise'", stages)
    index = []
    for i, label in enumerate(stages):
        if i == 0:
            index.append(0)
        else:
            index.append(index[-1] + (label != stages[i - 1]))
    count = (index[-1] + 1) if index else 0
    return [(k + 1) / count for k in index]


__all__ = [
    "DEPTH_RULES",
    "Constant",
    "Early",
    "Late",
    "LinearRamp",
    "Schedule",
    "constant_rate",
    "depth_factors",
    "early_rate",
    "late_rate",
    "linear_ramp",
    "two_knots",
]
