"""DropBlock's seed rate `gamma`: Ghiasi et al.'s formula and the exact one.

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
through gamma. Every backend (and torch's eager path) uses the functions here.
"""

import functools

import numpy as np
from keras import ops

from keras_dropouts.backend.common import array_ops

GRID = 1024  # table resolution: rates k / 1024


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
    rates = np.arange(GRID + 1, dtype=np.float64) / GRID
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


def _key(sizes, blocks):
    return tuple(int(s) for s in sizes), tuple(int(b) for b in blocks)


def exact_gamma_value(rate, sizes, blocks):
    """`exact_gamma` for a Python rate, on the host: a Python float, no tensor ops."""
    rate = min(max(float(rate), 0.0), 1.0)
    table = gamma_table(*_key(sizes, blocks))
    pos = rate * GRID
    i0 = min(int(np.floor(pos)), GRID - 1)
    frac = pos - i0
    return float(table[i0] * (1.0 - frac) + table[i0 + 1] * frac)


def interpolate(table, rate, xp=array_ops.KerasOps):
    """The table at `rate` (a float32 scalar tensor in [0, 1]), linearly interpolated.

    Args:
        table: The `gamma_table` as a tensor of the backend `xp` works on.
        rate: Float32 scalar tensor, already clipped to [0, 1].
        xp: The array functions (`array_ops.KerasOps`, or torch's eager ones).

    Returns:
        A float32 scalar tensor; exact at the table points (rate 1 gives gamma 1).
    """
    pos = rate * float(GRID)
    i0 = xp.minimum(xp.floor(pos), float(GRID - 1))
    frac = pos - i0
    i0 = xp.to_index(i0)
    return xp.take(table, i0) * (1.0 - frac) + xp.take(table, i0 + 1) * frac


_TENSORS = {}


def exact_gamma(rate, sizes, blocks, constant=ops.convert_to_tensor):
    """Seed rate whose expected dropped fraction equals `rate` (tensor, float32).

    Args:
        rate: Scalar rate in [0, 1], Python number or tensor.
        sizes: Static spatial sizes (tuple of ints).
        blocks: Block sizes, one per axis (clipped to the sizes).
        constant: Makes the table a tensor that outlives any trace (a backend's
            choice, see docs/architecture.md); called once per shape.

    Returns:
        A float32 scalar tensor.
    """
    key = _key(sizes, blocks)
    # Converted once per shape: a per-call host-to-device copy would dominate small calls.
    table = _TENSORS.get(key)
    if table is None:
        table = _TENSORS[key] = constant(gamma_table(*key))
    return interpolate(table, ops.clip(ops.cast(rate, "float32"), 0.0, 1.0))


def paper_gamma(rate, sizes, blocks):
    """Ghiasi et al.'s seed rate, `rate * prod(S) / (prod(b) * prod(S - b + 1))`, unclipped.

    Args:
        rate: A Python number or a float32 tensor (of any framework: only `*` and `/`).
        sizes: Spatial sizes: Python ints or float32 scalar tensors.
        blocks: Block sizes clipped to the sizes, as `sizes`.

    Returns:
        The seed rate, of `rate`'s kind; above 1 near rate 1 (callers clip it).
    """
    gamma = rate
    for s, b in zip(sizes, blocks):
        gamma = gamma * s / (b * (s - b + 1.0))
    return gamma
