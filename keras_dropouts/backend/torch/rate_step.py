"""In-step rate schedules on torch: a few raw torch ops per step (docs/architecture.md).

The step is eager: on-device arithmetic and one batched copy into the leaders' rate
variables, no value ever goes to the host. The knots of every leader's
`rate_schedule` are stacked once, the rates come as one vector, and the same vector
primes every leader's `1 / (1 - rate)`.
"""

import torch

from keras_dropouts._internals import foreach_copy, optimizer_step_counter, tensor_version
from keras_dropouts.backend.common.rate_step import scalar_shape  # noqa: F401
from keras_dropouts.backend.torch.scalars import rate_and_scale, remember


def make_step(model, original, rates):
    """The wrapped step (see `backend/common/rate_step.py`)."""
    counter, every = optimizer_step_counter(model.optimizer)
    knot_vars = [layer.rate_schedule_variable for layer in rates.knot_leaders]
    assign = _assigner(rates.variables)
    if rates.fn_groups:

        def train_step(*args, **kwargs):
            assign(rates.as_vector(counter.value // every, [v.value for v in knot_vars]))
            return original(*args, **kwargs)

        return train_step
    # Built-in schedules only: raw torch ops on a cached stack of the knots
    # (the generic ops cost ~0.5 ms a step in eager dispatch).
    stack = KnotStack()

    def train_step(*args, **kwargs):
        knots = stack([v.value for v in knot_vars])
        assign(two_knot_rates(counter.value // every, knots))
        return original(*args, **kwargs)

    return train_step


def _assigner(variables):
    """Returns `assign(vector)`: `variables[k] = vector[k]` on the device, in one batched
    copy, priming the dropout branch's per-value cache of (rate, 1 / keep) with the same
    vector, so that the layers do not each recompute their scale every step."""

    @torch.no_grad()
    def assign(vector):
        targets = [v.value for v in variables]
        foreach_copy(torch, targets, list(torch.unbind(vector.to(targets[0].dtype), 0)))
        prime_dropout_scalars(targets, vector)

    return assign


def prime_dropout_scalars(tensors, rates):
    """Caches `dropout`'s (rate, scale) for rate variables' tensors just written with
    `rates` (one per tensor), computed for all of them at once."""
    rate, scale = rate_and_scale(rates)
    for tensor, r, s in zip(tensors, torch.unbind(rate), torch.unbind(scale)):
        version = tensor_version(tensor)
        if version is not None:
            remember((id(tensor), "dropout", tensor.device), tensor, version, (r, s))


class KnotStack:
    """The (n, 4) stack of layers' `rate_schedule` tensors, restacked only when one of
    them was replaced or written (their version counters say so, no value is read)."""

    def __init__(self):
        self._key = None
        self._stacked = None
        self._tensors = []

    def __call__(self, tensors):
        key = tuple((id(t), tensor_version(t)) for t in tensors)
        if key != self._key:
            with torch.no_grad():
                self._stacked = torch.stack([t.to(torch.float32) for t in tensors])
            self._tensors = list(tensors)  # holds them: their ids are not reused
            self._key = key
        return self._stacked


@torch.no_grad()
def two_knot_rates(step, knots):
    """`schedules.two_knots` for every row `(a, b, v0, v1)` of `knots` at `step`, NaN
    counting as 0 and clipped to [0, 1], in a few eager kernels."""
    s = step.to(torch.float32)
    a, b, v0, v1 = knots.unbind(1)
    ramp = v0 + (v1 - v0) * (s - a) / torch.clamp(b - a, min=1.0)
    rates = torch.where(s >= b, v1, torch.where(s < a, v0, ramp))
    return torch.nan_to_num(rates, nan=0.0).clamp(0.0, 1.0)
