"""The few array functions that maths shared with torch's eager path is written in.

`common` writes such maths once against a namespace `xp` (this `KerasOps` by
default); torch's eager path passes its own raw-torch namespace with the same
names (`backend/torch/array_ops.py`), because each `keras.ops` call costs its
argument conversion on every eager step (docs/architecture.md).
"""

from keras import ops


class KerasOps:
    """`keras.ops` under the names the shared maths uses (any backend, symbolic or not)."""

    float32 = staticmethod(lambda z: ops.cast(z, "float32"))
    softmax = staticmethod(lambda z: ops.softmax(z, axis=-1))
    sigmoid = staticmethod(ops.sigmoid)
    clip = staticmethod(ops.clip)
    log = staticmethod(ops.log)
    roll = staticmethod(lambda v, shift: ops.roll(v, shift, axis=0))
    sum = staticmethod(ops.sum)
    floor = staticmethod(ops.floor)
    minimum = staticmethod(ops.minimum)
    to_index = staticmethod(lambda z: ops.cast(z, "int32"))
    take = staticmethod(ops.take)
    abs = staticmethod(ops.abs)
    stop_gradient = staticmethod(ops.stop_gradient)
    moveaxis = staticmethod(ops.moveaxis)
    mean = staticmethod(ops.mean)
    max = staticmethod(ops.max)
    where = staticmethod(ops.where)
    logical_not = staticmethod(ops.logical_not)
    logical_and = staticmethod(ops.logical_and)
    logical_or = staticmethod(ops.logical_or)

    @staticmethod
    def zero_outside(t, mask):
        """`t` where the bool `mask` is True, else 0 (`t` finite)."""
        return ops.where(mask, t, 0.0)

    @staticmethod
    def count(mask, axis):
        """Float32 number of True values of `mask` over `axis` (kept as size-1 axes)."""
        return ops.sum(ops.cast(mask, "float32"), axis=axis, keepdims=True)

    @staticmethod
    def divide_counts(total, count):
        """`total / count`, 0 where the count is 0."""
        return ops.divide_no_nan(total, count)

    @staticmethod
    def divide_where_used(a, b):
        """`a / b` where `b != 0`; the caller selects another value where `b == 0`
        (divide_no_nan keeps NaN out of the graph there)."""
        return ops.divide_no_nan(a, b)
