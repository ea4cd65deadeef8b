"""The few array functions that maths shared with torch's eager path is written in.

`common` writes such maths once against a namespace `xp` (this `KerasOps` by
default); torch's eager path passes its own raw-torch namespace with the same
names (`backend/torch/array_ops.py`), because each `keras.ops` call costs its
argument conversion on every eager step (docs/architecture.md). Both are subclasses
of `ArrayOps`, which lists the names once.
"""

from keras import ops

# Every function of a namespace. Most are the framework's own function of that name
# (`keras.ops.sum`, `torch.where`); the four last ones are the shared maths' own:
#   zero_outside(t, mask): `t` where the bool `mask` is True, else 0 (`t` finite);
#   count(mask, axis): float32 number of True values over `axis` (kept as size-1 axes);
#   divide_counts(total, count): `total / count`, 0 where the count (>= 0) is 0;
#   divide_where_used(a, b): `a / b` where `b != 0`; the caller selects another value
#       where `b == 0`.
NAMES = (
    "abs", "clip", "exp", "float32", "floor", "log", "logical_and", "logical_not", "logical_or",
    "max", "mean", "minimum", "moveaxis", "roll", "sigmoid", "softmax", "stop_gradient",
    "sum", "take", "to_index", "where",
    "zero_outside", "count", "divide_counts", "divide_where_used",
)


class ArrayOps:
    """Base of the array namespaces: a subclass names its framework
    (`class KerasOps(ArrayOps, framework=keras.ops)`) and defines only what that
    framework spells differently; every other name of `NAMES` becomes the framework's
    function of the same name. A name that is neither fails at import."""

    def __init_subclass__(cls, framework, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in NAMES:
            if hasattr(cls, name):
                continue
            if not hasattr(framework, name):
                raise TypeError(
                    f"{cls.__name__} must define `{name}`: {framework.__name__} has no "
                    "function of that name."
                )
            setattr(cls, name, staticmethod(getattr(framework, name)))


class KerasOps(ArrayOps, framework=ops):
    """`keras.ops` under the names the shared maths uses (any backend, symbolic or not)."""

    float32 = staticmethod(lambda z: ops.cast(z, "float32"))
    softmax = staticmethod(lambda z: ops.softmax(z, axis=-1))
    roll = staticmethod(lambda v, shift: ops.roll(v, shift, axis=0))
    to_index = staticmethod(lambda z: ops.cast(z, "int32"))

    @staticmethod
    def zero_outside(t, mask):
        return ops.where(mask, t, 0.0)

    @staticmethod
    def count(mask, axis):
        return ops.sum(ops.cast(mask, "float32"), axis=axis, keepdims=True)

    @staticmethod
    def divide_counts(total, count):
        return ops.divide_no_nan(total, count)

    # divide_no_nan keeps NaN out of the graph where `b == 0`.
    divide_where_used = divide_counts
