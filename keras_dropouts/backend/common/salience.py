"""ProbDropBlock's seed probabilities: normalised feature salience (Zhao et al. 2023).

Written once against the array functions `xp` (docs/architecture.md): `keras.ops`
by default, raw torch calls on torch's eager path.
"""

import math

from keras_dropouts.backend.common import array_ops

# Salience above this, inf and NaN count as the largest salience of their map (over
# the valid centres): an inf activation is the most salient, not a reason never to
# drop a map, and sums over a map stay finite up to 3e8 positions.
SALIENCE_CAP = 1e30


def salience_probabilities(x, gamma, valid, geometry, inverse=False, xp=array_ops.KerasOps):
    """Per-position seed probability proportional to normalised salience.

    Salience is `|x|` (averaged over channels when the mask is shared), with no
    gradient; a non-finite (or above 1e30) salience counts as the largest finite one
    of its map. Over the valid centres of each sample (and channel) it is divided by
    its mean, so `p = clip(gamma * s / mean(s), 0, 1)` has the same expected seed
    count as DropBlock. With `inverse=True` the salience is `max(s) - s`, favouring
    the least salient positions. A map with zero salience falls back to `gamma`, and
    so does everything at rate 1 (gamma 1: every valid centre is a seed).

    Args:
        x: The input.
        gamma: DropBlock's seed rate: a Python float or a float32 scalar tensor.
        valid: Bool, `blocks.valid_positions` (None: every centre of the box).
        geometry: The `BlockGeometry`.
        inverse: Favour the least salient positions.
        xp: The array functions (`array_ops.KerasOps`, or torch's eager ones).

    Returns:
        `p` on the box (static sizes) or the map, or the Python float 1.0 at gamma 1.
    """
    if isinstance(gamma, float) and gamma >= 1.0:
        return 1.0  # every valid centre is a seed
    s = xp.stop_gradient(xp.abs(xp.float32(x)))
    if geometry.channels_first:
        s = xp.moveaxis(s, 1, -1)
    if not geometry.per_channel:
        s = xp.mean(s, axis=-1, keepdims=True)
    if geometry.static:
        s = geometry.box_slice(s)
    axes = tuple(range(1, geometry.n + 1))
    finite = s <= SALIENCE_CAP  # False for inf and NaN
    clean = xp.where(finite, s, 0.0)
    bad = xp.logical_not(finite)
    if valid is not None:
        clean = xp.zero_outside(clean, valid)
        bad = xp.logical_and(bad, valid)
    # One pass over the salience for all three reductions (XLA fuses sibling
    # reductions); the sum of the salience with non-finite values replaced by the
    # largest finite one is sum(clean) + s_max * n_bad.
    s_max = xp.max(clean, axis=axes, keepdims=True)
    total = xp.sum(clean, axis=axes, keepdims=True) + s_max * xp.count(bad, axes)
    if valid is None:  # static sizes, no padding: every centre of the box is valid
        n_valid = float(math.prod(geometry.box))
    else:
        n_valid = xp.count(valid, axes)
    s = xp.where(finite, clean, s_max)
    if inverse:
        s = s_max - s
        total = n_valid * s_max - total
    if valid is not None:
        s = xp.zero_outside(s, valid)
    mean = total / n_valid if valid is None else xp.divide_counts(total, n_valid)
    uniform_p = mean <= 0.0
    if not isinstance(gamma, float):
        uniform_p = xp.logical_or(uniform_p, gamma >= 1.0)
    p = xp.where(uniform_p, gamma, gamma * xp.divide_where_used(s, mean))
    return xp.clip(p, 0.0, 1.0)
