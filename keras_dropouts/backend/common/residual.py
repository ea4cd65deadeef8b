"""Stochastic residual with compute skipping: the branch runs on a static-size subset.

`x + drop_path(branch(x))` where the branch is evaluated only on the samples it
keeps (docs/architecture.md, "Compute-skipping stochastic depth"). The number kept
is one of a few static sizes, the buckets `0 = s_0 < s_1 < ... < s_K = B`; every
bucket is compiled in the one trace and the step picks one with a `switch`, so a
rate that changes inside the compiled step never retraces.

Sampling (DINOv2's fixed-size subset, with randomised rounding between buckets):
the step wants `B * (1 - rate)` samples; with `s_j <= B (1 - rate) <= s_(j+1)` it
takes bucket `j + 1` with probability `(B (1 - rate) - s_j) / (s_(j+1) - s_j)`,
else bucket `j`, then a uniformly random subset of that size, scaled by `B / s`.
Every sample is then kept with probability exactly `1 - rate`, and given the bucket
the subset's scaled sum is unbiased, so `E[y] = x + branch(x)` for any bucket set;
the expected compute is `B (1 - rate)` samples however coarse the buckets are.

Data parallelism (`shards` > 1, JAX's `DataParallel`): the batch is split into its
`shards` device shards, `(shards, B / shards, ...)`, and each shard keeps its own
subset of one common size (the bucket of `B / shards`), so rows are gathered and
scattered back within a shard and never cross devices. The same two facts hold per
shard: each sample is kept with probability `1 - rate`, scaled by `(B / shards) / s`.
"""

import keras
import numpy as np
from keras import ops

from keras_dropouts.backend.common import dropout, noise


def bucket_sizes(batch, buckets):
    """The subset sizes `ceil(j * batch / buckets)`, j = 0..buckets, without repeats
    (a batch smaller than the bucket count has `batch + 1` buckets)."""
    return sorted({-(-j * batch // buckets) for j in range(buckets + 1)})


def bucket_index(sizes, batch, rate, u):
    """Index of the bucket to use: randomised rounding of `batch * (1 - rate)` to the
    two sizes around it, by the uniform draw `u` (see the module docstring)."""
    table = ops.convert_to_tensor(np.asarray(sizes, "float32"))
    last = len(sizes) - 1
    target = (1.0 - rate) * float(batch)
    lo = ops.sum(ops.cast(table[1:] <= target, "int32"))
    hi = ops.minimum(lo + 1, last)
    low, high = ops.take(table, lo), ops.take(table, hi)
    up = ops.divide_no_nan(target - low, high - low)
    return lo + ops.cast(u < up, "int32")


def _scaled(out, scale, dtype):
    """`out * scale` in float32 (float64 for float64), cast to the residual's dtype."""
    return ops.cast(ops.cast(out, dropout.compute_dtype(dtype)) * scale, dtype)


def _gather(x, perm, size):
    """The rows `perm[:, :size]` of each shard of `x` (perm: (shards, B / shards)),
    as one batch `(shards * size, ...)`; with one shard, a plain `take`."""
    shards, per = ops.shape(perm)
    if shards == 1:
        return ops.take(x, perm[0, :size], axis=0)
    tail = tuple(x.shape[1:])
    rows = ops.reshape(perm[:, :size], (shards, size) + (1,) * len(tail))
    picked = ops.take_along_axis(ops.reshape(x, (shards, per) + tail), rows, axis=1)
    return ops.reshape(picked, (shards * size,) + tail)


def _scatter(out, inverse, size):
    """`out` (`(shards * size, ...)`, shard-major) back in batch order, zeros for the
    rows not kept (inverse: (shards, B / shards), the inverse permutations)."""
    shards, per = ops.shape(inverse)
    tail = tuple(out.shape[1:])
    out = ops.reshape(out, (shards, size) + tail)
    pad = ops.zeros((shards, per - size) + tail, out.dtype)
    full = ops.concatenate([out, pad], axis=1)
    if shards == 1:
        return ops.take(full[0], inverse[0], axis=0)
    rows = ops.reshape(inverse, (shards, per) + (1,) * len(tail))
    return ops.reshape(ops.take_along_axis(full, rows, axis=1), (shards * per,) + tail)


def bucket_fns(s, branch, sizes, per, perm, inverse):
    """One function of `(shortcut, x)` per bucket:
    `shortcut + scattered(branch(each shard's subset) * per / size)`, `per` the shard
    size (the batch with one shard); `s` gives the dtype."""
    dtype = keras.backend.standardize_dtype(s.dtype)

    def shortcut(s, x):
        return s

    def full(s, x):
        return ops.add(s, ops.cast(branch(x), dtype))

    def subset(size):
        def run(s, x):
            out = _scaled(branch(_gather(x, perm, size)), per / size, dtype)
            return ops.add(s, _scatter(out, inverse, size))

        return run

    middle = [subset(size) for size in sizes[1:-1]]
    return [shortcut, *middle, full]


def scoped_run(fn, operands, mapping, written):
    """`(fn(*operands), the values of the variables `written` after it)`, the variables of
    `mapping` (pairs) read from their mapped values in a `keras.StatelessScope`: how JAX
    and TensorFlow run a bucket whose state writes they carry out of the switch."""
    if not mapping:
        return fn(*operands), []
    with keras.StatelessScope(state_mapping=mapping) as scope:
        y = fn(*operands)
    return y, [scope.get_current_value(v) for v in written]


def switch(index, fns, operands, variables):
    """`keras.ops.switch(index, fns, *operands)`; `variables` (the branch's state) are
    only needed where a backend must carry their writes out of the switch itself (JAX,
    TensorFlow)."""
    del variables
    return ops.switch(index, fns, *operands)


def stochastic_residual(
    x, branch, rate, seed, buckets, variables=(), uniform=noise.uniform, switch=switch, shortcut=None, shards=1
):
    """The compute-skipping residual on checked arguments.

    Args:
        x: A floating tensor, batch first (batch >= 1): the branch's input.
        branch: Callable `x -> tensor of the shortcut's shape`, applied to a batch subset.
        rate: A checked Python float or a scalar tensor / variable.
        seed: A `keras.random.SeedGenerator`, an int or None.
        buckets: Int >= 1, the number of subset sizes above 0.
        variables: The branch's variables (JAX carries their writes out of the switch).
        uniform: The backend's noise draw; switch: the backend's `switch`.
        shortcut: The tensor the branch is added to (None: `x` itself); a projection
            shortcut of a block whose branch and shortcut both start from `x`.
        shards: The number of data-parallel batch shards (each draws its own subset;
            1 where the batch does not split evenly).

    Returns:
        A tensor of the shortcut's shape and dtype.

    A batch whose size is unknown at trace time (TensorFlow retraces a last partial
    batch with an unknown size, and XLA cannot compile the subset sizes then) runs
    `masked`: the whole branch, then per-sample `drop_path`.
    """
    s = x if shortcut is None else shortcut
    batch = ops.shape(x)[0]
    rate = ops.cast(dropout.rate_tensor(rate), "float32")
    if not isinstance(batch, int):
        return masked(x, branch, rate, seed, uniform, shortcut)
    shards = shards if shards > 1 and batch % shards == 0 else 1
    per = batch // shards
    sizes = bucket_sizes(per, buckets)
    ranks, u = _draws(batch, shards, seed, uniform)
    perm = ops.argsort(ranks, axis=-1)
    inverse = ops.argsort(perm, axis=-1)
    index = bucket_index(sizes, per, rate, u)
    return switch(index, bucket_fns(s, branch, sizes, per, perm, inverse), (s, x), variables)


def _draws(batch, shards, seed, uniform):
    """`(shards, batch / shards)` uniforms ranking each shard's samples, and the one
    uniform that rounds the subset size. With shards, two draws: a slice of one draw
    would cut across the shards (moving data between devices), and the size draw stays
    replicated; its element `batch` is not one of the ranking draw's."""
    if shards == 1:
        draw = uniform((batch + 1,), seed)
        return ops.reshape(draw[:batch], (1, batch)), draw[batch]
    return uniform((shards, batch // shards), seed), uniform((batch + 1,), seed)[batch]


def masked(x, branch, rate, seed, uniform=noise.uniform, shortcut=None):
    """`shortcut + drop_path(branch(x))` computed for the whole batch (per-sample
    draws); the shortcut is `x` by default."""
    s = x if shortcut is None else shortcut
    out = ops.cast(branch(x), s.dtype)
    shape = (ops.shape(x)[0],) + (1,) * (len(out.shape) - 1)
    keep = uniform(shape, seed) >= rate
    return ops.add(s, dropout.scale_kept(out, keep, dropout.keep_scale(rate)))
