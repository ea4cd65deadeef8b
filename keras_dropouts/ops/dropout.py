"""Inverted dropout whose rate may be a tensor (no Python branch on its value)."""

from keras_dropouts import _checks
from keras_dropouts import backend


def dropout(x, rate, noise_shape=None, seed=None):
    """Drops entries of `x` with probability `rate` and scales the rest by 1/(1-rate).

    Unlike `keras.random.dropout`, `rate` may be a traced scalar (e.g. a variable
    read inside a compiled train step), so changing it never needs a retrace.
    Noise is drawn and compared in float32; kept entries are rescaled in float32
    (float64 for float64 inputs) and cast back; dropped entries are exactly 0.

    Args:
        x: Floating-point tensor (or NumPy array / nested list of floats).
        rate: The fraction of entries dropped: a Python number in [0, 1] (checked),
            or a scalar tensor / variable (clipped to [0, 1] inside the step).
        noise_shape: Shape of the mask, with the rank of `x`, each entry None (taken
            from `x`), 1 (mask shared along that axis) or the size of `x` there.
            Defaults to the shape of `x`.
        seed: A `keras.random.SeedGenerator`, an int or None.

    Returns:
        A tensor of the shape and dtype of `x`.

    Raises:
        TypeError: if `x` is not floating point.
        ValueError: for a bad `rate` or `noise_shape`.

    Example:
    >>> y = dropout(keras.ops.ones((2, 3)), 0.5, seed=1)
    """
    x = _checks.to_float_tensor(x, "x", "dropout")
    rate = _checks.check_rate_or_tensor(rate)
    if noise_shape is not None:
        noise_shape = _checks.check_noise_shape_for(_checks.check_noise_shape(noise_shape), x)
    seed = _checks.check_seed_argument(seed)
    return _dropout(x, rate, noise_shape, seed)


def drop_path(x, rate, seed=None, mode="row", scale_by_keep=True):
    """Stochastic depth: zeroes whole samples of `x` with probability `rate`.

    Each sample along axis 0 is kept or dropped as one piece (`mode="row"`), or the
    whole batch at once (`mode="batch"`, torchvision's `stochastic_depth` mode), and
    kept samples are scaled by 1/(1-rate). Apply it to the output of a residual branch.

    Args:
        x: Floating-point tensor of rank >= 1, batch first.
        rate: Python number in [0, 1], or a scalar tensor (clipped to [0, 1]).
        seed: A `keras.random.SeedGenerator`, an int or None.
        mode: `"row"` (one draw per sample) or `"batch"` (one draw for the batch).
        scale_by_keep: True scales kept samples by 1/(1-rate) (expectation kept);
            False leaves them as they are (timm's `scale_by_keep=False`).

    Example:
    >>> y = drop_path(keras.ops.ones((4, 8, 8, 3)), 0.25, seed=1)
    >>> y = drop_path(keras.ops.ones((4, 16)), 0.25, seed=1, mode="batch")
    """
    x = _checks.to_float_tensor(x, "x", "drop_path")
    check_drop_path_rank(x, "x", "drop_path")
    rate = _checks.check_rate_or_tensor(rate)
    seed = _checks.check_seed_argument(seed)
    mode = check_drop_path_mode(mode)
    scale_by_keep = _checks.check_bool(scale_by_keep, "scale_by_keep")
    return _dropout(x, rate, path_noise_shape(x, mode), seed, scale_by_keep)


#: The `mode`s of `drop_path` / `DropPath`.
DROP_PATH_MODES = ("row", "batch")


def check_drop_path_mode(mode):
    return _checks.check_choice(mode, "mode", DROP_PATH_MODES)


def check_drop_path_rank(x, name, owner):
    _checks.check_input_rank(x, name, min_rank=1, layout="(batch first)", owner=owner)


def path_noise_shape(x, mode="row"):
    """The mask shape of `drop_path`: one draw per sample, or one for the batch."""
    first = None if mode == "row" else 1
    return (first,) + (1,) * (len(x.shape) - 1)


def _dropout(x, rate, noise_shape, seed, scale_by_keep=True):
    """The op on checked arguments (layers call this directly)."""
    if any(s == 0 for s in x.shape):  # static: an empty tensor has nothing to drop
        return x
    return backend.dropout.dropout(x, rate, noise_shape, seed, scale_by_keep)
