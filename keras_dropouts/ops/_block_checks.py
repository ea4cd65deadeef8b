"""The argument checks of the DropBlock-style ops and layers (the masks: `backend.blocks`)."""

import keras
from keras import backend, ops

from keras_dropouts import _checks


_SPATIAL = {1: "steps", 2: "height, width", 3: "depth, height, width"}


def normalize_data_format(data_format):
    """`data_format` ("channels_last", "channels_first" or None: Keras' default)."""
    _checks.check_choice(data_format, "data_format", ("channels_last", "channels_first", None))
    return data_format or backend.image_data_format()


def normalize_block_size(block_size, n, x=None):
    """`block_size` as a tuple of `n` positive ints (an int is used on every axis).

    Integral floats (3.0) are accepted; bools, strings and fractional sizes are not.
    With the input `x`, a tuple of the wrong length also names the input's shape.
    """
    expected = f"a positive integer or a tuple of {n} positive integers"
    if x is not None:
        expected += f" (one per spatial axis of the input of shape {_checks.shape_of(x)})"
    if _checks.is_number(block_size):
        sizes = (block_size,) * n
    elif isinstance(block_size, (tuple, list)):
        sizes = tuple(block_size)
    else:
        raise _checks.invalid("block_size", expected, block_size)
    if len(sizes) != n:
        raise _checks.invalid("block_size", expected, block_size)
    try:
        return tuple(_checks.check_int(b, "block_size", min_value=1) for b in sizes)
    except ValueError:
        raise _checks.invalid("block_size", expected, block_size) from None


def check_block_input(x, owner, name="x"):
    """`x` as a floating tensor of rank 3, 4 or 5."""
    x = _checks.to_float_tensor(x, name, owner)
    _checks.check_input_rank(
        x, name, (3, 4, 5), layout="(batch, 1 to 3 spatial axes, channels)", owner=owner
    )
    return x


def layout(n):
    return f"(batch, {_SPATIAL[n]}, channels)"


def check_arguments(x, rate, block_size, seed, data_format, per_channel, mask, owner):
    """Checks the public arguments of a block op; returns them normalised."""
    x = check_block_input(x, owner)
    n = len(x.shape) - 2
    block_size = normalize_block_size(block_size, n, x)
    data_format = normalize_data_format(data_format)
    per_channel = _checks.check_bool(per_channel, "per_channel")
    rate = _checks.check_rate_or_tensor(rate)
    seed = _checks.check_seed_argument(seed)
    mask = check_padding_mask(mask, x, data_format)
    return x, rate, block_size, seed, data_format, per_channel, mask


def check_padding_mask(mask, x, data_format):
    """A (batch, steps) padding mask for a 1D input, as a tensor; None stays None."""
    if mask is None:
        return None
    n = len(x.shape) - 2
    if n != 1:
        raise _checks.invalid_tensor(
            "mask", "None: a padding mask is only supported for 1D inputs "
            f"(batch, steps, channels), and the input has shape {_checks.shape_of(x)}", mask,
        )
    mask = ops.convert_to_tensor(mask) if not isinstance(mask, keras.KerasTensor) else mask
    shape = _checks.shape_of(x)
    steps = shape[2] if data_format == "channels_first" else shape[1]
    expected = (shape[0], steps)
    got = _checks.shape_of(mask)
    if len(got) != 2 or any(a is not None and b is not None and a != b
                            for a, b in zip(got, expected)):
        raise ValueError(
            "Invalid value received for argument `mask`. Expected a (batch, steps) padding "
            f"mask of shape {expected} for the input of shape {shape}. "
            f"Received: mask.shape={got}"
        )
    return mask


def is_empty(x):
    """True when a static dimension of `x` is 0: there is nothing to drop."""
    return any(s == 0 for s in x.shape)


GAMMA_MODES = ("exact", "paper")


def check_gamma(gamma):
    """`gamma`: "exact" (the seed rate whose expected dropped fraction is `rate`) or
    "paper" (Ghiasi et al.'s formula, which ignores overlapping blocks)."""
    return _checks.check_choice(gamma, "gamma", GAMMA_MODES)
