"""Deep copies of Sequential / functional models, and rewiring a copy's graph.

A surgery first makes a fresh copy of the input model (`fresh_copy`: the whole model
from its config, then its weights), analyses the copy and changes it: layers held by
subclassed layers in place, the graph by `rewire`, which builds a new graph from the
copy's layers. So the input model is never changed, and the result computes exactly
what it computes. A model is copied from its own config (a keras-hub backbone from its
constructor arguments), because some layers' configs cannot rebuild them on their own.
"""

import keras

from keras_dropouts import _internals


def fresh_copy(model):
    """A new model built from `model`'s config (without its compile settings), with a
    copy of its weights."""
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    custom = {type(layer).__name__: type(layer) for layer in _internals.iter_layers(model)}
    custom[type(model).__name__] = type(model)
    with keras.saving.custom_object_scope(custom):
        new = keras.saving.deserialize_keras_object(config)
    new.set_weights(model.get_weights())
    return new


class Rewrite:
    """What `rewire` changes; the defaults keep the graph as it is."""

    def replace(self, layer):
        """A layer to use instead of `layer`, or None to keep it."""
        return None

    def call(self, original, op, args, kwargs):
        """Calls `op` (graph operation `original` or its replacement) on the new inputs."""
        return op(*args, **kwargs)

    def after(self, layer):
        """Layers to append after `layer` in a Sequential model."""
        return []


def rewire(model, rewrite):
    """A new Sequential / functional model with `model`'s layers (not copies), changed by
    `rewrite` (a `Rewrite`); nested Sequential / functional models are rewired too."""

    def clone(layer):
        if _internals.is_graph_model(layer):
            return rewire(layer, rewrite)
        new = rewrite.replace(layer)
        return layer if new is None else new

    if isinstance(model, keras.Sequential):
        new = keras.Sequential(name=model.name)
        if model.inputs:
            new.add(keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype))
        for layer in model.layers:
            new.add(clone(layer))
            for extra in rewrite.after(layer):
                new.add(extra)
        return new

    originals = {}  # id(replacement) -> the operation it replaces

    def clone_op(op):
        new = clone(op)
        originals[id(new)] = op
        return new

    def call(op, *args, **kwargs):
        return rewrite.call(originals.get(id(op), op), op, args, kwargs)

    return keras.models.clone_model(model, clone_function=clone_op, call_function=call)
