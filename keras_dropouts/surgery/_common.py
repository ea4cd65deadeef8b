"""Argument checks and the one-line report shared by the surgery functions."""

import keras

from keras_dropouts import _internals


def check_model(model, fn):
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"Invalid value received for argument `model`. Expected a keras.Model. "
            f"Received: model={type(model).__name__}"
        )
    if not _internals.is_graph_model(model):
        raise ValueError(
            f"{fn} supports Sequential and functional models; {model.name!r} is a subclassed "
            "model (its `call` cannot be rewired). Use keras_dropouts layers in its definition."
        )


def report(fn, parts):
    """Prints `fn: part, part, ...` (one line), or `fn: nothing to change`."""
    print(f"{fn}: " + (", ".join(parts) if parts else "nothing to change"))


def graph_layers(model):
    """Every layer of `model`'s graph and of its nested graph models (not inside
    subclassed layers), each once, in model order."""
    out, seen = [], set()

    def visit(graph):
        for layer in graph.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if _internals.is_graph_model(layer):
                visit(layer)
            else:
                out.append(layer)

    visit(model)
    return out
