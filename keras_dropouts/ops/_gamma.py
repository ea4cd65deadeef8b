"""DropBlock's seed rate `gamma`, corrected for overlapping blocks.

Ghiasi et al.'s formula `gamma = rate / prod(b) * prod(S) / prod(S - b + 1)` counts
every seed's block as new units, so overlapping blocks make the dropped fraction
fall short of `rate` (0.179 at rate 0.2 on 56x56 maps with block 7). Exactly: a
unit at position `p` is covered by `n(p)` valid centres (a product of per-axis
counts, since blocks are boxes and valid centres a box grid), each a seed with
probability `gamma`, so

    P(kept at p) = (1 - gamma) ** n(p),   E[dropped] = 1 - mean_p (1 - gamma) ** n(p).

For each static map/block shape we solve `E[dropped] = rate` on the host (float64
bisection over the histogram of `n(p)`, at 1025 rates in [0, 1]) once, cache the
table, and interpolate it inside the step: `rate` stays a tensor that may change
every step, and the per-call cost is a handful of scalar ops. No gradient flows
through gamma.
"""

import functools

import keras
import numpy as np
from keras import ops

_GRID = 1024  # table resolution: rates k / 1024


def coverage_counts(size, block):
    """For each position on one axis, how many valid block centres cover it."""
    block = min(block, size)
    first, last = block // 2, size - 1 - (block - 1) // 2  # valid centres
    p = np.arange(size)
    # A centre c covers [c - block // 2, c + (block - 1) // 2].
    lo = np.maximum(p - (block - 1) // 2, first)
    hi = np.minimum(p + block // 2, last)
    return np.maximum(hi - lo + 1, 0)


def count_histogram(sizes, blocks):
    """Distinct values of `n(p)` over the map and the fraction of positions with each."""
    n = np.ones((1,), np.int64)
    for size, block in zip(sizes, blocks):
        n = np.multiply.outer(n, coverage_counts(size, block)).ravel()
    values, counts = np.unique(n, return_counts=True)
    return values, counts / counts.sum()


def dropped_fraction(gamma, sizes, blocks):
    """Expected dropped fraction for seed rate `gamma` (NumPy, float64)."""
    values, weights = count_histogram(sizes, blocks)
    gamma = np.asarray(gamma, np.float64)[..., None]
    return 1.0 - np.sum(weights * (1.0 - gamma) ** values, axis=-1)


@functools.lru_cache(maxsize=256)
def gamma_table(sizes, blocks):
    """float32 gammas for rates `k / 1024`, k = 0..1024, solving `E[dropped] = rate`."""
    values, weights = count_histogram(sizes, blocks)
    rates = np.arange(_GRID + 1, dtype=np.float64) / _GRID
    lo, hi = np.zeros_like(rates), np.ones_like(rates)
    for _ in range(60):  # E[dropped] is increasing in gamma: bisection to float64 precision
        mid = (lo + hi) / 2
        dropped = 1.0 - np.sum(weights * (1.0 - mid[:, None]) ** values, axis=-1)
        below = dropped < rates
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    table = (lo + hi) / 2
    table[0], table[-1] = 0.0, 1.0
    return table.astype(np.float32)


_TENSORS = {}


def _table_tensor(sizes, blocks):
    # Converted once per shape: a per-call host-to-device copy would dominate small calls.
    key = (sizes, blocks)
    tensor = _TENSORS.get(key)
    if tensor is None:
        table = gamma_table(sizes, blocks)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            with tf.init_scope():  # an eager constant, even when first used while tracing
                tensor = tf.constant(table)
        elif keras.backend.backend() == "jax":
            import jax

            with jax.ensure_compile_time_eval():  # a concrete array, never a tracer
                tensor = jax.numpy.asarray(table)
        else:
            tensor = ops.convert_to_tensor(table)
        _TENSORS[key] = tensor
    return tensor


def exact_gamma_value(rate, sizes, blocks):
    """`exact_gamma` for a Python rate, on the host: a Python float, no tensor ops."""
    rate = min(max(float(rate), 0.0), 1.0)
    table = gamma_table(tuple(int(s) for s in sizes), tuple(int(b) for b in blocks))
    pos = rate * _GRID
    i0 = min(int(np.floor(pos)), _GRID - 1)
    frac = pos - i0
    return float(table[i0] * (1.0 - frac) + table[i0 + 1] * frac)


def exact_gamma(rate, sizes, blocks):
    """Seed rate whose expected dropped fraction equals `rate` (tensor, float32).

    Args:
        rate: Scalar rate in [0, 1], Python number or tensor.
        sizes: Static spatial sizes (tuple of ints).
        blocks: Block sizes, one per axis (clipped to the sizes).
    """
    table = _table_tensor(tuple(int(s) for s in sizes), tuple(int(b) for b in blocks))
    x = ops.clip(ops.cast(rate, "float32"), 0.0, 1.0) * float(_GRID)
    i0 = ops.minimum(ops.floor(x), float(_GRID - 1))
    frac = x - i0
    i0 = ops.cast(i0, "int32")
    g0 = ops.take(table, i0)
    g1 = ops.take(table, i0 + 1)
    # Exact at the table points: rate 1 gives gamma 1 (every valid centre a seed).
    return g0 * (1.0 - frac) + g1 * frac
