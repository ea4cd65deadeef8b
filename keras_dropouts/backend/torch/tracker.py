"""The running-mean tracker on torch: two in-place adds on the metric's variable.

A Keras `Variable.assign_add` costs several dispatched ops a step; this is what it
does, less the checks.
"""

import torch

from keras_dropouts import _internals
from keras_dropouts.backend.common import tracker as common


def update(state, value):
    """`state += [value, 1]` in place; Keras' own `assign_add` (`common`) where that
    must run: inside a `StatelessScope` (updates are collected, not applied), or where
    `.value` is not the variable's own tensor (an autocast copy)."""
    s = state.value
    if (not isinstance(value, torch.Tensor) or _internals.in_stateless_scope()
            or not isinstance(s, torch.nn.Parameter)):
        common.update(state, value)
        return
    # In place on a tensor that does not require grad, from a detached value: autograd
    # records nothing (no `torch.no_grad()` context needed, which costs more than the add).
    # Two adds on views: fewer dispatched ops than building `[value, 1]` (stack + ones).
    value = value.detach()
    if value.dtype != s.dtype:
        value = value.to(s.dtype)
    s[0].add_(value)
    s[1].add_(1.0)


def result(state):
    """`total / max(count, 1)` of the state variable."""
    s = state.value
    return s[0] / torch.clamp(s[1], min=1.0)
