"""Deep copies of Sequential / functional models, with their graphs rewired.

- `copy_rewired`: every layer copied from its config (weights copied), the graph
  changed on the way (layers replaced, layers inserted around graph operations);
- `fresh_copy`: the whole model from its own config (a keras-hub backbone from its
  constructor's arguments, so its class is kept), then its weights; for changes that
  leave the graph as it is (layers held by subclassed layers).

Either way the input model is never changed, and the copy computes exactly what it
computes.
"""

import keras

from keras_dropouts import _internals


def fresh_copy(model):
    """A new model built from `model`'s config (without its compile settings), with a
    copy of its weights."""
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    # Unregistered custom classes by name (Keras' own are found by module: a custom
    # name "Add" would shadow the `+` operation `keras.src.ops.numpy.Add`).
    custom = {
        type(obj).__name__: type(obj)
        for obj in [model, *_internals.iter_layers(model)]
        if not _internals.is_keras_builtin(obj)
    }
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


class _CannotCopy(Exception):
    pass


def copy_rewired(model, make_rewrite):
    """A copy of `model` (weights copied) whose graph is changed by the `Rewrite` that
    `make_rewrite(m)` returns for the model `m` it will rewire.

    Each layer is copied from its own config (one graph node per layer in the copy). A
    layer whose config cannot rebuild it on its own (keras-hub's
    `ViTPatchingAndEmbedding`) makes it rewire a `fresh_copy` of the whole model instead.
    """
    pairs = []
    try:
        new = rewire(model, make_rewrite(model), pairs)
    except _CannotCopy:
        fresh = fresh_copy(model)
        return rewire(fresh, make_rewrite(fresh))
    copy_weights(pairs)
    return new


def copy_weights(pairs):
    """Gives each `copy` of `(layer, copy)` in `pairs` the weights of its `layer`."""
    for old, copy in pairs:
        if old.weights:
            copy.set_weights(old.get_weights())


def _copy_layer(layer):
    try:
        return layer.__class__.from_config(layer.get_config())
    except (TypeError, ValueError, NotImplementedError) as error:
        raise _CannotCopy(layer.name) from error


def rewire(model, rewrite, pairs=None):
    """A new Sequential / functional model built from `model`'s layers, changed by
    `rewrite` (a `Rewrite`); nested Sequential / functional models are rewired too.
    With `pairs` (a list), every layer is a copy from its config, and `(layer, copy)`
    is appended to `pairs` (for the caller to copy the weights); without, the new model
    uses `model`'s layers themselves."""

    def clone(layer):
        if _internals.is_graph_model(layer):
            return rewire(layer, rewrite, pairs)
        new = rewrite.replace(layer)
        if new is not None:
            return new
        if pairs is None:
            return layer
        new = _copy_layer(layer)
        if isinstance(layer, keras.layers.Layer):
            pairs.append((layer, new))
        return new

    if isinstance(model, keras.Sequential):
        new = keras.Sequential(name=model.name)
        if model.inputs:
            new.add(keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype))
        for layer in model.layers:
            new.add(clone(layer))
            for extra in rewrite.after(layer):
                new.add(extra)
        return new

    originals = {}  # id(new operation) -> the operation of `model` it stands for

    def clone_op(op):
        new = clone(op)
        originals[id(new)] = op
        return new

    def call(op, *args, **kwargs):
        return rewrite.call(originals.get(id(op), op), op, args, kwargs)

    return keras.models.clone_model(model, clone_function=clone_op, call_function=call)
