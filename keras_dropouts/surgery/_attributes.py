"""Converting layers held as attributes of subclassed layers (after `copy_model`).

A subclassed layer (keras-hub's `TransformerEncoder`, a ViT block) calls its dropout
layers from its own `call`, so they are not graph nodes; they are reached through the
layer's attributes (and lists of layers), and replaced in the copy. Each replacement is
recorded as a path from the model: `["layer", name]` per graph level (`get_layer`),
then `["attr", name]` or `["item", name, index]` per attribute, so that a saved model
can redo it (`SurgeryModel.from_config`).
"""

from keras_dropouts import _internals


def _slot_step(name, index):
    return ["attr", name] if index is None else ["item", name, index]


def swap_attributes(model, convert):
    """Replaces, in place, every layer held by a non-graph layer of `model` (at any
    depth, nested models included) for which `convert(layer)` returns a new layer.
    Returns `[(path, new_layer)]`."""
    swaps = []
    seen = set()

    def visit_owner(owner, path):
        if id(owner) in seen:
            return
        seen.add(id(owner))
        for name, index, sub in _internals.sublayer_slots(owner):
            new = convert(sub)
            step = path + [_slot_step(name, index)]
            if new is None:
                if not _internals.is_graph_model(sub):
                    visit_owner(sub, step)
                continue
            _internals.replace_sublayer(owner, name, index, sub, new)
            swaps.append((step, new))

    def visit_graph(graph, path):
        for layer in graph.layers:
            step = path + [["layer", layer.name]]
            if _internals.is_graph_model(layer):
                visit_graph(layer, step)
            else:
                visit_owner(layer, step)

    visit_graph(model, [])
    return swaps


def follow(model, path):
    """The owner, attribute name, index and layer at the end of `path` in `model`."""
    owner = model
    for step in path[:-1]:
        owner = _step(owner, step)
    last = path[-1]
    if last[0] == "layer":
        raise ValueError(f"Invalid surgery path {path!r}: it must end with an attribute.")
    index = last[2] if last[0] == "item" else None
    return owner, last[1], index, _step(owner, last)


def _step(owner, step):
    kind = step[0]
    if kind == "layer":
        return owner.get_layer(step[1])
    if kind == "attr":
        return getattr(owner, step[1])
    if kind == "item":
        return getattr(owner, step[1])[step[2]]
    raise ValueError(f"Invalid surgery path step {step!r}.")


def redo_swap(model, path, layer):
    """Puts `layer` at `path` in `model` (as `swap_attributes` did)."""
    owner, name, index, old = follow(model, path)
    _internals.replace_sublayer(owner, name, index, old, layer)
