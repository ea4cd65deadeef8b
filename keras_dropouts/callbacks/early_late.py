"""EarlyDropout and LateDropout (Liu et al. 2023, "Dropout Reduces Underfitting")."""

from keras_dropouts import schedules
from keras_dropouts._checks import check_number, check_rate
from keras_dropouts.callbacks.scheduler import DropoutScheduler


def _exactly_one(epoch_name, epoch, step_name, step):
    if (epoch is None) == (step is None):
        raise ValueError(
            f"Pass exactly one of `{epoch_name}` and `{step_name}`. "
            f"Received: {epoch_name}={epoch!r}, {step_name}={step!r}"
        )


def _check_epoch(value, name):
    if value is None:
        return None
    return check_number(value, name, min_value=0)


def _to_step(epochs, steps_per_epoch):
    return round(epochs * steps_per_epoch)


class _EpochScheduler(DropoutScheduler):
    """Shared set-up: an optional absolute rate, or each layer's own (`rate=None`)."""

    def __init__(self, rate, layers, kwargs):
        if "relative" in kwargs:
            raise TypeError(
                f"{type(self).__name__} has no `relative` argument: pass `rate=None` to keep "
                "each layer's own rate."
            )
        self.rate = None if rate is None else check_rate(rate, "rate")
        super().__init__(self._schedule_for, layers=layers, relative=rate is None, **kwargs)

    @property
    def _peak(self):
        # With rate=None the schedule is a factor of each layer's configured rate.
        return 1.0 if self.rate is None else self.rate

    def _schedule_for(self, step):  # placeholder; replaced in `_make_schedule`
        raise RuntimeError(f"{type(self).__name__}'s schedule is built when `fit` starts.")


class EarlyDropout(_EpochScheduler):
    """Early dropout: dropout only in the first epochs of training.

    Liu et al. 2023 show that dropout applied only early in training reduces
    underfitting of small models (ViT-T: rate 0.1, linear, cutoff after 50 of 300
    epochs). The rate is computed inside the compiled step at every optimizer step:

    - `mode="constant"`: `rate` for steps `< cutoff`, then 0.
    - `mode="linear"`: `rate * (1 - step / cutoff)` before the cutoff, then 0.

    where `cutoff = cutoff_epoch * steps_per_epoch` (or `cutoff_step`) and `step`
    is `model.optimizer.iterations`, so the schedule survives `initial_epoch` and
    reloading. With `rate=None` ("the model's dropout, only early"), each target
    keeps the rate it was built with until the cutoff (or decays linearly from
    it), then 0; the log then records the factor (1 -> 0). See
    `DropoutScheduler` for targets, stock layers and logging.

    Args:
        rate: Float in [0, 1], the early rate, or None for each layer's own rate.
        cutoff_epoch: Number >= 0 (may be fractional): how many epochs are trained
            with dropout, so `Epoch cutoff_epoch + 1` in `fit`'s progress lines is
            the first one without. Give either this or `cutoff_step`.
        mode: `"constant"` or `"linear"`.
        layers: Target selection, see `DropoutScheduler` (default: every
            `keras_dropouts` layer in the model).
        cutoff_step: Int >= 0, the first optimizer step without dropout.
        **kwargs: `depth_rule`, `steps_per_epoch`, `verbose`, `log_name` of
            `DropoutScheduler`. The log key defaults to a key derived from `layers`
            as in `DropoutScheduler` (e.g. `"drop_path_rate"` for
            `layers=DropPath`, `"<name>_rate"` for a layer name), else
            `"early_dropout_rate"`.

    Example:
    >>> cb = EarlyDropout(0.1, cutoff_epoch=50, mode="linear")
    >>> model.fit(x, y, epochs=300, callbacks=[cb])
    """

    _log_prefix = "early_dropout"

    def __init__(
        self, rate, cutoff_epoch=None, mode="constant", layers=None, cutoff_step=None, **kwargs
    ):
        self.mode = schedules._check_mode(mode)
        _exactly_one("cutoff_epoch", cutoff_epoch, "cutoff_step", cutoff_step)
        self.cutoff_epoch = _check_epoch(cutoff_epoch, "cutoff_epoch")
        self.cutoff_step = schedules._check_step(cutoff_step, "cutoff_step", allow_none=True)
        super().__init__(rate, layers, kwargs)

    def _make_schedule(self, steps_per_epoch, total_steps):
        cutoff = self.cutoff_step
        if cutoff is None:
            if not steps_per_epoch:
                raise ValueError(self._unknown_steps_message())
            cutoff = _to_step(self.cutoff_epoch, steps_per_epoch)
        return schedules.Early(self._peak, cutoff, self.mode)


class LateDropout(_EpochScheduler):
    """Late dropout: no dropout in the first epochs, then `rate`.

    Liu et al. 2023 use it against overfitting (late stochastic depth for ViT-B:
    rate 0.4, constant, from epoch 50). With `depth_rule=True` and DropPath targets
    the per-block rates follow `linspace(0, rate, depth)`. With `rate=None` ("the
    model's dropout, only late") each target is 0 until the start, then the rate
    it was built with.

    - `mode="constant"`: 0 for steps `< start`, then `rate`.
    - `mode="linear"`: 0 up to `start`, then a linear rise reaching `rate` at the
      end of training (or at `end_epoch` / `end_step`).

    Args:
        rate: Float in [0, 1], the late rate, or None for each layer's own rate.
        start_epoch: Number >= 0 (may be fractional): how many epochs are trained
            without dropout, so `Epoch start_epoch + 1` in `fit`'s progress lines is
            the first one with it. Give either this or `start_step`.
        mode: `"constant"` or `"linear"`.
        layers: Target selection, see `DropoutScheduler`.
        start_step: Int >= 0, the first optimizer step with dropout.
        end_epoch: End of the linear rise in epochs, >= `start_epoch` (default: end
            of training).
        end_step: End of the linear rise in steps, >= `start_step`.
        **kwargs: `depth_rule`, `steps_per_epoch`, `verbose`, `log_name` of
            `DropoutScheduler`. The log key defaults to a key derived from `layers`
            as in `DropoutScheduler` (e.g. `"drop_path_rate"` for
            `layers=DropPath`, `"<name>_rate"` for a layer name), else
            `"late_dropout_rate"`.

    Example:
    >>> cb = LateDropout(0.4, start_epoch=50, layers=DropPath, depth_rule=True)
    """

    _log_prefix = "late_dropout"

    def __init__(
        self,
        rate,
        start_epoch=None,
        mode="constant",
        layers=None,
        start_step=None,
        end_epoch=None,
        end_step=None,
        **kwargs,
    ):
        self.mode = schedules._check_mode(mode)
        _exactly_one("start_epoch", start_epoch, "start_step", start_step)
        if end_epoch is not None and end_step is not None:
            raise ValueError("Pass at most one of `end_epoch` and `end_step`.")
        self.start_epoch = _check_epoch(start_epoch, "start_epoch")
        self.start_step = schedules._check_step(start_step, "start_step", allow_none=True)
        self.end_epoch = _check_epoch(end_epoch, "end_epoch")
        self.end_step = schedules._check_step(end_step, "end_step", allow_none=True)
        if self.start_epoch is not None and self.end_epoch is not None:
            schedules._check_span(self.start_epoch, self.end_epoch, "start_epoch", "end_epoch")
        if self.start_step is not None and self.end_step is not None:
            schedules._check_span(self.start_step, self.end_step)
        super().__init__(rate, layers, kwargs)

    def _make_schedule(self, steps_per_epoch, total_steps):
        linear = self.mode == "linear"
        needs_spe = self.start_step is None or (linear and self.end_epoch is not None)
        needs_total = linear and self.end_epoch is None and self.end_step is None
        if (needs_spe and not steps_per_epoch) or (needs_total and total_steps is None):
            raise ValueError(self._unknown_steps_message())
        start = self.start_step
        if start is None:
            start = _to_step(self.start_epoch, steps_per_epoch)
        end = self.end_step
        if linear and end is None:
            end = total_steps
            if self.end_epoch is not None:
                end = _to_step(self.end_epoch, steps_per_epoch)
        if end is not None:
            # Only an end taken from the length of training may fall before the start.
            end = max(end, start)
        return schedules.Late(self._peak, start, self.mode, end_step=end)


__all__ = ["EarlyDropout", "LateDropout"]
