"""Raw torch functions under `common.array_ops.KerasOps`' names (torch's eager path)."""

import torch


class TorchOps:
    """The shared maths' array functions, one torch call each (no argument conversion)."""

    float32 = staticmethod(lambda z: z if z.dtype == torch.float32 else z.float())
    softmax = staticmethod(lambda z: torch.softmax(z, dim=-1))
    sigmoid = staticmethod(torch.sigmoid)
    clip = staticmethod(torch.clamp)
    log = staticmethod(torch.log)
    roll = staticmethod(lambda v, shift: torch.roll(v, shift, dims=0))
    abs = staticmethod(torch.abs)
    stop_gradient = staticmethod(torch.Tensor.detach)
    moveaxis = staticmethod(torch.movedim)
    where = staticmethod(torch.where)
    logical_not = staticmethod(torch.logical_not)
    logical_and = staticmethod(torch.logical_and)
    logical_or = staticmethod(torch.logical_or)

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
        """`t` where the bool `mask` is True, else 0 (`t` finite): one multiply kernel."""
        return t * mask

    @staticmethod
    def count(mask, axis):
        """Float32 number of True values of `mask` over `axis` (kept as size-1 axes)."""
        return torch.sum(mask, dim=axis, keepdim=True, dtype=torch.float32)

    @staticmethod
    def divide_counts(total, count):
        """`total / count`, 0 where the count (>= 0) is 0."""
        return torch.where(count > 0, total / count.clamp_min(1.0), 0.0)

    @staticmethod
    def divide_where_used(a, b):
        """`a / b`: the caller selects another value where `b == 0` (one kernel)."""
        return a / b
    floor = staticmethod(torch.floor)
    minimum = staticmethod(torch.clamp_max)
    to_index = staticmethod(lambda z: z.to(torch.int64))
    # `take`, not `table[i]`: indexing with a 0-d tensor reads it on the host (a sync).
    take = staticmethod(torch.take)
