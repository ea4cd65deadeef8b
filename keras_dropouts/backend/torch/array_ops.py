"""Raw torch functions under `common.array_ops`' names (torch's eager path)."""

import torch

from keras_dropouts.backend.common.array_ops import ArrayOps


class TorchOps(ArrayOps, framework=torch):
    """The shared maths' array functions, one torch call each (no argument conversion)."""

    float32 = staticmethod(lambda z: z if z.dtype == torch.float32 else z.float())
    softmax = staticmethod(lambda z: torch.softmax(z, dim=-1))
    clip = staticmethod(torch.clamp)
    roll = staticmethod(lambda v, shift: torch.roll(v, shift, dims=0))
    stop_gradient = staticmethod(torch.Tensor.detach)
    moveaxis = staticmethod(torch.movedim)
    minimum = staticmethod(torch.clamp_max)
    to_index = staticmethod(lambda z: z.to(torch.int64))
    # `take` is torch's own, not `table[i]`: indexing with a 0-d tensor reads it on the
    # host (a sync).

    @staticmethod
    def sum(z, axis=None, keepdims=False):
        return torch.sum(z) if axis is None else torch.sum(z, dim=axis, keepdim=keepdims)

    @staticmethod
    def mean(z, axis, keepdims=False):
        return torch.mean(z, dim=axis, keepdim=keepdims)

    @staticmethod
    def max(z, axis, keepdims=False):
        return torch.amax(z, dim=axis, keepdim=keepdims)

    @staticmethod
    def zero_outside(t, mask):
        return t * mask  # one multiply kernel

    @staticmethod
    def count(mask, axis):
        return torch.sum(mask, dim=axis, keepdim=True, dtype=torch.float32)

    @staticmethod
    def divide_counts(total, count):
        return torch.where(count > 0, total / count.clamp_min(1.0), 0.0)

    @staticmethod
    def divide_where_used(a, b):
        return a / b  # one kernel
