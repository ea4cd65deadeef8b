"""Stochastic depth that computes the residual branch only for the samples it keeps."""

import keras

from keras_dropouts import _checks
from keras_dropouts import backend

#: Default number of subset sizes above 0 (the buckets are `ceil(j * B / 8)`).
DEFAULT_BUCKETS = 8


def stochastic_residual(x, branch, rate, seed=None, buckets=DEFAULT_BUCKETS, variables=None, shortcut=None):
    """`x + drop_path(branch(x))`, with `branch` evaluated only on a subset of the batch.

    The expected output equals the residual block's, `x + branch(x)`, and each
    sample's branch is dropped with probability `rate`, as with `drop_path`; but the
    dropped samples cost nothing. The subset has one of `buckets + 1` static sizes
    `ceil(j * B / buckets)`, j = 0..buckets (B the batch size); all of them are in the
    one trace and the step chooses one with `keras.ops.switch`, so `rate` may be a
    tensor that changes inside a compiled step without a retrace.

    Sampling: a fixed-size random subset, as DINOv2's
    `drop_add_residual_stochastic_depth`, with randomised rounding between the two
    sizes around `B * (1 - rate)`; the subset's branch outputs are scaled by
    `B / size`. Each sample is then kept with probability exactly `1 - rate`, and
    the output is unbiased whatever the buckets, with an expected `B * (1 - rate)`
    samples computed however coarse they are (docs/architecture.md says why not
    Bernoulli draws). Unlike `drop_path` the kept count is not binomial. Under JAX
    data parallelism each batch shard draws its own subset (no rows cross devices).

    Rate 0 is exactly `x + branch(x)` (the whole batch, no gather, scale 1); rate 1
    is exactly `x` (the branch does not run).

    A branch with batch statistics (BatchNorm in training) sees only the subset, and
    its statistics and moving averages are the subset's (none in a shortcut-only step).

    Args:
        x: Floating-point tensor, batch first; the result has its dtype.
        branch: Callable taking a batch of `x`'s trailing shape and returning a
            tensor of the same shape (a Keras layer or model, or a function).
        rate: Python number in [0, 1], or a scalar tensor / variable (clipped to
            [0, 1] inside the step).
        seed: A `keras.random.SeedGenerator`, an int or None.
        buckets: Int >= 1, how many non-zero subset sizes are compiled (each one
            traces the branch once; compile time grows with it).
        variables: The variables `branch` may write (defaults to `branch.variables`
            for a Keras layer), carried out of the switch on JAX and TensorFlow (where
            only a Keras-layer branch recomputes its forward pass in the backward).
        shortcut: Optional tensor added instead of `x` (`x`'s batch size, the branch
            output's shape): a projection shortcut, `proj(x) + drop_path(branch(x))`.

    Returns:
        A tensor of the shortcut's (`x`'s) shape and dtype.

    Raises:
        TypeError: if `x` (or `shortcut`) is not floating point.
        ValueError: for an `x` of rank 0, or a bad `branch`, `rate`, `seed`, `buckets` or
            `shortcut`.

    Example:
    >>> mlp = keras.Sequential([keras.layers.Dense(16, "gelu"), keras.layers.Dense(8)])
    >>> x = keras.ops.ones((32, 10, 8))
    >>> y = stochastic_residual(x, mlp, 0.3, seed=1)
    """
    x, rate, seed, buckets = _check_arguments(x, branch, rate, seed, buckets)
    shortcut = None if shortcut is None else check_shortcut(shortcut, x)
    if variables is None:
        variables = branch_variables(branch, x.shape)
    if x.shape[0] == 0:  # static: an empty batch has nothing to compute
        return x if shortcut is None else shortcut
    return backend.residual.stochastic_residual(x, branch, rate, seed, buckets, list(variables), shortcut=shortcut)


def _check_arguments(x, branch, rate, seed, buckets):
    """`stochastic_residual`'s arguments, checked: `(x, rate, seed, buckets)`."""
    x = _checks.to_float_tensor(x, "x", "stochastic_residual")
    _checks.check_input_rank(x, "x", min_rank=1, layout="(batch first)", owner="stochastic_residual")
    if not callable(branch):
        raise _checks.invalid("branch", "a callable (a Keras layer or a function)", branch)
    rate = _checks.check_rate_or_tensor(rate)
    seed = _checks.check_seed_argument(seed)
    return x, rate, seed, check_buckets(buckets)


def check_shortcut(shortcut, x):
    """A floating tensor, batch first, with `x`'s (static) batch size."""
    shortcut = _checks.to_float_tensor(shortcut, "shortcut", "stochastic_residual")
    _checks.check_input_rank(shortcut, "shortcut", min_rank=1, layout="(batch first)", owner="stochastic_residual")
    a, b = shortcut.shape[0], x.shape[0]
    if a is not None and b is not None and a != b:
        raise ValueError(
            "Invalid value received for argument `shortcut`. Expected a tensor with the batch size "
            f"of `x` ({b}). Received: shortcut.shape={tuple(shortcut.shape)}"
        )
    return shortcut


def check_buckets(buckets):
    return _checks.check_int(buckets, "buckets", min_value=1)


def branch_variables(branch, input_shape):
    """The variables of a Keras-layer branch, built first for `input_shape` (variables
    cannot be created inside a `switch`); none for a plain function."""
    if not isinstance(branch, keras.layers.Layer):
        return []
    if not branch.built:
        branch.build(input_shape)
    return branch.variables
