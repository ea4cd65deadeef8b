"""The torch branch of RDropModel's per-step work: torch's own functions.

torch runs the train step eagerly, so each `keras.ops` call costs its argument
conversion and dtype checks on every step (about 10 us each on a CPU, as much as
the arithmetic on small outputs), and a Keras `Variable.assign_add` several of
them. Two things RDropModel adds to every step use torch directly instead:

* the ops of the tiled consistency term (`_consistency.tiled` takes them from
  `OPS` for torch tensors; the values are those of the `keras.ops` path);
* the running mean of the logged `consistency_loss`: an in-place add to the
  metric's two variables (what `assign_add` does, less the checks).

Both work inside `torch.compile` too (dynamo traces them as any torch code).
"""

import torch

from keras_dropouts import _compat


def handles(z):
    """True for a concrete torch tensor (not a Keras symbolic tensor)."""
    return isinstance(z, torch.Tensor)


class OPS:
    float32 = staticmethod(lambda z: z if z.dtype == torch.float32 else z.float())
    softmax = staticmethod(lambda z: torch.softmax(z, dim=-1))
    sigmoid = staticmethod(torch.sigmoid)
    clip = staticmethod(torch.clamp)
    log = staticmethod(torch.log)
    roll = staticmethod(lambda v, shift: torch.roll(v, shift, dims=0))
    sum = staticmethod(torch.sum)


def add_to_running_mean(state, value):
    """`state += [value, 1]` in place; False (nothing done) where Keras' own
    `assign_add` must run: inside a `StatelessScope` (updates are collected, not
    applied), or where `.value` is not the variable's own tensor (an autocast copy)."""
    if not isinstance(value, torch.Tensor) or _compat.in_stateless_scope():
        return False
    s = state.value
    if not isinstance(s, torch.nn.Parameter):
        return False
    # In place on a tensor that does not require grad, from a detached value: autograd
    # records nothing (no `torch.no_grad()` context needed, which costs more than the add).
    # Two adds on views: fewer dispatched ops than building `[value, 1]` (stack + ones).
    value = value.detach()
    if value.dtype != s.dtype:
        value = value.to(s.dtype)
    s[0].add_(value)
    s[1].add_(1.0)
    return True


def running_mean(state):
    s = state.value
    return s[0] / torch.clamp(s[1], min=1.0)
