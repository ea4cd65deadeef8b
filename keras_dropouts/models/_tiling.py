"""R-Drop's batch tiling: `passes` copies of a batch along axis 0, and the split back."""

import keras
from keras import ops

from keras_dropouts import _internals


def is_nested(x):
    """`keras.tree.is_nested`, answered without the tree utilities for a tensor (on torch
    they cost ~10 us per call, and the step asks several times)."""
    return not ops.is_tensor(x) and keras.tree.is_nested(x)


def tile(structure, m):
    """Each tensor of `structure` repeated `m` times along axis 0 (None stays None)."""
    if structure is None:
        return None
    if not is_nested(structure):
        return ops.concatenate([structure] * m, axis=0)
    return keras.tree.map_structure(lambda t: t if t is None else ops.concatenate([t] * m, axis=0), structure)


def split_tensor(t, m, count=None):
    """The first `count` (default `m`) of `m` equal parts of `t` along axis 0, each
    carrying its part of `t`'s Keras mask."""
    count = m if count is None else count
    n = t.shape[0]
    if n is None:
        parts = ops.split(t, m, axis=0)[:count]
    else:
        b = n // m
        parts = [t[k * b:(k + 1) * b] for k in range(count)]
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
