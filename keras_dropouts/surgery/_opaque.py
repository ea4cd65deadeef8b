"""What surgery cannot reach: subclassed layers, whose `call` is not a graph."""

from keras_dropouts import _internals
from keras_dropouts.layers.drop_path import DropPath
from keras_dropouts.surgery._common import graph_layers


def subclassed_blocks(model):
    """Names of the graph's layers that are subclassed (not Keras' own) and hold other
    layers: their `call` may add residuals that no graph shows (keras-hub ViT / BERT
    blocks)."""
    return [
        layer.name
        for layer in graph_layers(model)
        if not _internals.is_keras_builtin(layer) and _internals.sublayer_slots(layer)
    ]


def own_drop_paths(model):
    """Names of the drop-path layers the model has anywhere (ours or foreign)."""
    foreign = _internals.foreign_drop_path_types()
    return [
        layer.name
        for layer in _internals.iter_layers(model)
        if isinstance(layer, DropPath) or type(layer) in foreign
    ]


def named(names, limit=4):
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
