"""Scalars derived from a rate, computed once per value of the rate variable.

Cached on the variable's tensor and its in-place version counter (`assign` is an
in-place copy), so a rate changed by a callback or inside the step is picked up,
and an unchanged one costs no kernel.
"""

import keras
import torch

from keras_dropouts._internals import tensor_version

_SCALARS = {}


def per_value(rate, key, fn, device):
    """`fn(rate)` (a tuple of 0-d tensors), computed once per value of `rate`, on `device`
    (the input's: a rate variable on the GPU may meet an input left on the CPU).

    A Keras variable's tensor changes in place on `assign` and bumps its version
    counter, so (tensor, version) identifies the value without reading it (which
    would be a device-to-host sync). Other tensors are computed every call.
    """
    if isinstance(rate, keras.Variable):
        tensor = rate.value
    else:
        return fn(rate.to(device) if isinstance(rate, torch.Tensor) else rate)
    version = tensor_version(tensor)
    if version is None:  # inference tensors have no version
        return fn(tensor.to(device))
    slot = (id(tensor), key, device)
    hit = _SCALARS.get(slot)
    if hit is not None and hit[0] is tensor and hit[1] == version:
        return hit[2]
    value = fn(tensor if tensor.device == device else tensor.to(device))
    remember(slot, tensor, version, value)
    return value


def remember(slot, tensor, version, value):
    """Caches `value` for `tensor` at `version` under `slot` (see `per_value`)."""
    if len(_SCALARS) > 4096:
        _SCALARS.clear()
    _SCALARS[slot] = (tensor, version, value)  # holds `tensor`: its id is not reused


_CONSTANTS = {}


def constant(value, device):
    """A float32 0-d tensor holding `value`, created on `device` once (by a fill, not a
    host-to-device copy)."""
    key = (value, device)
    tensor = _CONSTANTS.get(key)
    if tensor is None:
        if len(_CONSTANTS) > 4096:
            _CONSTANTS.clear()
        tensor = _CONSTANTS[key] = torch.full((), value, dtype=torch.float32, device=device)
    return tensor


@torch.no_grad()
def clean_rate(rate):
    """Float32, clipped to [0, 1], NaN counting as 1 (as `common.dropout.rate_tensor`)."""
    rate = rate.to(torch.float32)
    return torch.where(rate <= 1.0, rate.clamp_min(0.0), 1.0)


@torch.no_grad()
def rate_and_scale(rate):
    """(clean rate, 1 / (1 - rate), 0 at rate 1): `dropout`'s two scalars."""
    rate = clean_rate(rate)
    keep = 1.0 - rate
    return rate, torch.where(keep > 0, 1.0 / keep, 0.0)
