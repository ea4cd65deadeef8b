"""In-step rate schedules on torch: a few raw torch ops per step (README, Design notes).

Used by the schedule callbacks' torch train-step wrapper: the knots of every layer's
`rate_schedule` stacked once, the rates of all layers from one vector, and the same
vector priming every layer's `1 / (1 - rate)` so 50 layers do not each recompute it.
"""

import torch

from keras_dropouts._compat import tensor_version
from keras_dropouts.backend.torch.scalars import rate_and_scale, remember


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
