"""R-Drop's batch tiling: how the `passes` copies of a batch are laid out, and the split back.

This module is the one place that knows the layout. The copies are interleaved
along axis 0: with `m` passes, row `m * i + k` of the tiled batch is pass `k` of
sample `i` (`x0, x0, x1, x1, ...` for two passes), so `group` views a tiled tensor
as `(B, m, ...)` with a plain reshape and the passes of one sample stay on the same
rows. That matters under a batch-sharded `keras.distribution` mesh: each shard tiles
its own rows and the consistency term never moves a pass to another device (a
concatenation `[x; x]` puts a sample's two passes on different shards; see
docs/guides/scaling.md).
"""

import keras
from keras import ops

from keras_dropouts import _internals


def is_nested(x):
    """`keras.tree.is_nested`, answered without the tree utilities for a tensor (on torch
    they cost ~10 us per call, and the step asks several times)."""
    return not ops.is_tensor(x) and keras.tree.is_nested(x)


def tile_tensor(t, m):
    """`t` with each row repeated `m` times in place along axis 0 (`x0, x0, x1, x1, ...`)."""
    return ops.repeat(t, m, axis=0)


def tile(structure, m):
    """Each tensor of `structure` tiled `m` times along axis 0 (None stays None)."""
    if structure is None:
        return None
    if not is_nested(structure):
        return tile_tensor(structure, m)
    return keras.tree.map_structure(lambda t: t if t is None else tile_tensor(t, m), structure)


def group(t, m):
    """A tiled tensor `(m * B, ...)` viewed as `(B, m, ...)`: pass `k` of sample `i` at
    `[i, k]`. A batch size unknown at trace time is inferred (-1); other unknown axes
    are read from the tensor's dynamic shape."""
    inner = tuple(t.shape[1:])
    if any(d is None for d in inner):
        inner = tuple(ops.shape(t)[1:])
    return ops.reshape(t, (-1, m) + inner)


def split_tensor(t, m, count=None):
    """The first `count` (default `m`) of the `m` passes held in the tiled tensor `t`,
    each carrying its part of `t`'s Keras mask."""
    count = m if count is None else count
    grouped = group(t, m)
    parts = [grouped[:, k] for k in range(count)]
    mask = _internals.get_keras_mask(t)
    if mask is not None:
        for part, part_mask in zip(parts, split_tensor(mask, m, count)):
            _internals.set_keras_mask(part, part_mask)
    return parts


def split(y_pred, m, count=None):
    """The first `count` (default: all `m`) single-pass structures of a tiled prediction."""
    count = m if count is None else count
    if not is_nested(y_pred):
        return split_tensor(y_pred, m, count)
    chunks = [[] for _ in range(count)]
    for t in keras.tree.flatten(y_pred):
        for k, part in enumerate(split_tensor(t, m, count)):
            chunks[k].append(part)
    return [keras.tree.pack_sequence_as(y_pred, c) for c in chunks]


def resolve(path, structure):
    """`structure[path[0]][path[1]]...`."""
    for p in path:
        structure = structure[p]
    return structure
