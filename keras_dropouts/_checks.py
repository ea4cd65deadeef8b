"""Argument checks shared by the public layers, ops, schedules, callbacks and models.

Every message follows Keras' style, names the argument and what is allowed:
"Invalid value received for argument `x`. Expected ... Received: x=...".
Python numbers are checked for type (bool and strings are rejected, NumPy scalars
are accepted), finiteness and range.
"""

import math
import numbers

import keras
import numpy as np


def invalid(name, expected, value):
    """The ValueError raised for a bad argument value."""
    return ValueError(
        f"Invalid value received for argument `{name}`. Expected {expected}. "
        f"Received: {name}={value!r}"
    )


def is_number(value):
    """True for Python / NumPy real numbers (and 0-d NumPy arrays), False for bools."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and np.issubdtype(value.dtype, np.number) and not np.issubdtype(
            value.dtype, np.complexfloating
        )
    return isinstance(value, numbers.Real)


def check_rate(rate, name="rate"):
    """Returns `rate` as a Python float in [0, 1], or raises a ValueError naming `name`.

    Python / NumPy numbers, and (as `keras.layers.Dropout` takes them) concrete 0-d
    backend tensors and variables of a real dtype: `torch.tensor(0.3)`, a `jax.numpy`
    scalar, a `tf.constant`. Bool tensors, non-scalars and symbolic tensors (no
    value) are rejected.
    """
    expected = "a float value between 0 and 1"
    if is_number(rate):
        value = float(rate)
    elif is_tensor_like(rate) and not isinstance(rate, (np.ndarray, np.generic)):
        value = concrete_real_scalar(rate)
        if value is None:
            raise invalid_tensor(name, expected, rate)
    else:
        raise invalid(name, expected, rate)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise invalid(name, expected, rate)
    return value


def concrete_real_scalar(x):
    """The value of a concrete 0-d tensor / variable of an int or float dtype, as a
    Python float; None for anything else (other shapes or dtypes, symbolic tensors)."""
    if isinstance(x, keras.KerasTensor):
        return None
    try:
        shape = shape_of(x)
        dtype = keras.backend.standardize_dtype(x.dtype)
    except Exception:  # an object with a `shape` and a `dtype` of another kind
        return None
    if shape != () or not (keras.backend.is_float_dtype(dtype) or keras.backend.is_int_dtype(dtype)):
        return None
    try:
        return float(to_python_scalar(x))
    except Exception:  # a symbolic tensor (a TF graph tensor, a JAX tracer) has no value
        return None


def check_number(value, name, min_value=None, max_value=None, allow_inf=False):
    """Returns `value` as a float within [min_value, max_value] (finite unless `allow_inf`)."""
    if min_value is not None and max_value is not None:
        expected = f"a number between {min_value} and {max_value}"
    elif min_value is not None:
        expected = f"a number >= {min_value}"
    elif max_value is not None:
        expected = f"a number <= {max_value}"
    else:
        expected = "a number"
    if not allow_inf:
        expected = "a finite " + expected[2:]
    if not is_number(value):
        raise invalid(name, expected, value)
    out = float(value)
    if math.isnan(out) or (not allow_inf and math.isinf(out)):
        raise invalid(name, expected, value)
    if (min_value is not None and out < min_value) or (max_value is not None and out > max_value):
        raise invalid(name, expected, value)
    return out


def check_int(value, name, min_value=0, allow_none=False):
    """Returns `value` as an int >= `min_value` (integral floats such as 3.0 are accepted)."""
    if value is None and allow_none:
        return None
    expected = f"an integer >= {min_value}" + (" or None" if allow_none else "")
    if not is_number(value):
        raise invalid(name, expected, value)
    as_float = float(value)
    if not math.isfinite(as_float) or as_float != int(as_float) or int(as_float) < min_value:
        raise invalid(name, expected, value)
    return int(as_float)


def check_no_float_sizes(value, name, expected):
    """Raises a ValueError naming `name` if `value`, or an entry of a tuple / list
    `value`, is a float (also an integral one such as 3.0): Keras' convolution and
    pooling layers take integer sizes only. Other bad values are left to the caller."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    for v in items:
        if is_number(v) and not isinstance(v, numbers.Integral):
            if not (isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.integer)):
                raise invalid(name, expected, value)


def check_bool(value, name):
    """Returns `value` if it is a Python / NumPy bool, else raises (no truthiness of strings)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise invalid(name, "a boolean (True or False)", value)


def check_choice(value, name, choices):
    """Returns `value` if it is one of `choices`."""
    if isinstance(value, str) or value is None:
        if value in choices:
            return value
    raise invalid(name, f"one of {tuple(choices)}", value)


def check_seed(seed, name="seed"):
    """Returns `seed` if it is None or an int (not a bool)."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (numbers.Integral,)):
        raise invalid(name, "an integer or None", seed)
    return int(seed)


# ----------------------------------------------------------------- tensors and shapes
# Everything below looks only at Python values and static shapes / dtypes, so it costs
# nothing inside compiled steps and never reads a tensor's values.


def describe(value):
    """Short text for a value in a message: tensors by shape and dtype, not by content."""
    if is_tensor_like(value) and not is_number(value):
        dtype = getattr(value, "dtype", None)
        try:
            dtype = keras.backend.standardize_dtype(dtype)
        except Exception:  # pragma: no cover - exotic dtype objects
            pass
        return f"<{type(value).__name__} shape={shape_of(value)} dtype={dtype}>"
    return repr(value)


def invalid_tensor(name, expected, value):
    """Like `invalid`, for a tensor argument (described by shape and dtype)."""
    return ValueError(
        f"Invalid value received for argument `{name}`. Expected {expected}. "
        f"Received: {name}={describe(value)}"
    )


def is_tensor_like(value):
    """True for anything with a shape and a dtype: tensors, variables, NumPy arrays."""
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _static_size(s):
    """A static axis size as an int, or None when it is unknown. A symbolic size (JAX's
    shape polymorphism in `model.export()`: `batch`) has no value to check: None."""
    if s is None:
        return None
    try:
        return int(s)
    except Exception:  # e.g. jax's InconclusiveDimensionOperation
        return None


def shape_of(x):
    """The static shape of `x` as a tuple (None for unknown or symbolic sizes)."""
    shape = x.shape
    if shape is None:  # pragma: no cover - TF tensors of unknown rank
        return None
    return tuple(_static_size(s) for s in shape)


def to_python_scalar(x):
    """A concrete 0-d tensor, variable or NumPy value as a Python bool, int or float
    (by its dtype).

    Reads the value with `bool()` / `int()` / `float()` of a backend tensor:
    `keras.ops.convert_to_numpy` calls `np.array(x)`, which NumPy 2 answers with a
    `DeprecationWarning` for TensorFlow and torch tensors ("`__array__`
    implementation doesn't accept a copy keyword"). Raises for a symbolic tensor.
    """
    if isinstance(x, (np.ndarray, np.generic)):
        return x.item()
    dtype = keras.backend.standardize_dtype(x.dtype)
    # A backend tensor; also for a `tf.distribute` variable, which has no `float()` and
    # which `convert_to_tensor` returns as is.
    x = keras.ops.copy(x)
    if dtype == "bool":
        return bool(x)
    if keras.backend.is_int_dtype(dtype):
        return int(x)
    return float(x)


def check_seed_argument(seed, name="seed"):
    """Ops' `seed`: None, a `keras.random.SeedGenerator` or a seed tensor as is; any
    other value must be an int (`check_seed`)."""
    if seed is None or isinstance(seed, keras.random.SeedGenerator) or is_tensor_like(seed):
        return seed
    return check_seed(seed, name)


def check_rate_or_tensor(rate, name="rate"):
    """Ops' `rate`: a Python / NumPy number is checked by `check_rate`; a scalar tensor
    or variable (e.g. a rate read inside a compiled step) is returned unchecked."""
    if is_number(rate) or not is_tensor_like(rate):
        return check_rate(rate, name)
    expected = "a float value between 0 and 1, or a scalar (0-d) tensor"
    shape = shape_of(rate)
    if shape != ():
        raise invalid_tensor(name, expected, rate)
    dtype = keras.backend.standardize_dtype(rate.dtype)
    if not (keras.backend.is_float_dtype(dtype) or keras.backend.is_int_dtype(dtype)):
        raise invalid_tensor(name, expected, rate)
    return rate


def to_float_tensor(x, name="x", owner=None):
    """Converts `x` (tensor, NumPy array, nested list) to a tensor and requires a floating
    dtype: kept units are rescaled, which integers and booleans cannot represent.

    `keras.ops.convert_to_tensor` places the result on Keras' default device, as every
    `keras.ops` function does with its inputs (torch moves a CPU tensor to the GPU).
    """
    if not isinstance(x, keras.KerasTensor):
        x = keras.ops.convert_to_tensor(x)
    check_float_dtype(x, name, owner)
    return x


def check_float_dtype(x, name="x", owner=None):
    """Raises a TypeError naming `name` unless `x` has a floating dtype."""
    dtype = keras.backend.standardize_dtype(x.dtype)
    if not keras.backend.is_float_dtype(dtype):
        where = f" of {owner}" if owner else ""
        raise TypeError(
            f"Invalid dtype received for argument `{name}`{where}. Expected a floating-point "
            "tensor (float16, bfloat16, float32 or float64): kept units are rescaled, which "
            f"an integer or boolean tensor cannot hold. Received: {name}.dtype={dtype}"
        )
    return dtype


def check_input_rank(x, name, ranks=None, min_rank=None, layout="", owner=None):
    """Raises a ValueError naming `name`, the expected rank(s) and the received shape
    unless the rank of `x` is one of `ranks` (or at least `min_rank`)."""
    shape = shape_of(x)
    rank = len(shape)
    if (ranks is not None and rank in ranks) or (min_rank is not None and rank >= min_rank):
        return rank
    where = f" of {owner}" if owner else ""
    if ranks is None:
        expected = f"rank >= {min_rank}"
    elif len(ranks) == 1:
        expected = f"rank {ranks[0]}"
    else:
        expected = "rank " + ", ".join(str(r) for r in ranks[:-1]) + f" or {ranks[-1]}"
    layout = f" {layout}" if layout else ""
    raise ValueError(
        f"Invalid input received for argument `{name}`{where}. Expected a tensor of "
        f"{expected}{layout}. Received: {name}.shape={shape} (rank {rank})"
    )


def check_noise_shape(noise_shape):
    """`keras.layers.Dropout`'s `noise_shape` check, with its exact messages.

    Returns None or a tuple of positive ints and Nones. Unlike Keras, NumPy integers
    are accepted and bools (which Python counts as ints) are rejected.
    """
    if noise_shape is None:
        return None
    if isinstance(noise_shape, str):
        raise ValueError(
            "Invalid value received for argument `noise_shape`. "
            "Expected a tuple or list of integers. "
            f"Received: noise_shape={noise_shape}"
        )
    if not isinstance(noise_shape, tuple):
        try:
            noise_shape = tuple(noise_shape)
        except TypeError:
            raise ValueError(
                "Invalid value received for argument `noise_shape`. "
                "Expected an iterable of integers (e.g., a tuple or list). "
                f"Received: noise_shape={noise_shape}"
            ) from None
    out = []
    for i, dim in enumerate(noise_shape):
        if dim is not None:
            if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, numbers.Integral):
                raise ValueError(
                    "Invalid value received for argument `noise_shape`. "
                    "Expected all elements to be integers or None. "
                    f"Received element at index {i}: {dim} (type: {type(dim).__name__})"
                )
            if dim <= 0:
                raise ValueError(
                    "Invalid value received for argument `noise_shape`. "
                    "Expected all dimensions to be positive integers or None. "
                    f"Received negative or zero value at index {i}: {dim}"
                )
            dim = int(dim)
        out.append(dim)
    return tuple(out)


def check_noise_shape_for(noise_shape, x, name="noise_shape"):
    """Checks a validated `noise_shape` against the static shape of the input `x`: same
    rank, and every entry None, 1 or the input's size on that axis (when known)."""
    shape = shape_of(x)
    if len(noise_shape) != len(shape) or not lines_up(noise_shape, shape, ones_broadcast=True):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected a shape of the input's "
            f"rank ({len(shape)}) whose entries are None, 1 or the input's size on that "
            f"axis, for an input of shape {shape}. Received: {name}={noise_shape}"
        )
    return noise_shape


def lines_up(shape, target, ones_broadcast):
    """Whether `shape`, aligned with `target` from the first axis, fits it: its trailing
    1s dropped (all of them with `ones_broadcast`, else down to one axis), it is no
    longer than `target` and agrees with it on every axis it has. Unknown sizes agree
    with anything, and with `ones_broadcast` a 1 does too (it broadcasts).

    Args:
        shape: A static shape (ints and Nones).
        target: The static shape it must fit.
        ones_broadcast: Whether a size 1 fits any size.

    Returns:
        A bool.
    """
    core = tuple(shape)
    keep = 0 if ones_broadcast else 1
    while len(core) > keep and core[-1] == 1:
        core = core[:-1]
    return len(core) <= len(target) and all(
        s is None or t is None or s == t or (ones_broadcast and s == 1)
        for s, t in zip(core, target)
    )


def check_same_shape(a, b, name_a, name_b):
    """Raises a ValueError naming both arguments unless their static shapes agree
    (unknown sizes agree with anything)."""
    sa, sb = shape_of(a), shape_of(b)
    if len(sa) != len(sb) or any(
        x is not None and y is not None and x != y for x, y in zip(sa, sb)
    ):
        raise ValueError(
            f"Invalid value received for argument `{name_b}`. Expected a tensor of the same "
            f"shape as `{name_a}`. Received: {name_a}.shape={sa}, {name_b}.shape={sb}"
        )
