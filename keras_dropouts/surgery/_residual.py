"""Finding residual additions in a functional graph (nested models included).

A residual addition is a two-input `keras.layers.Add` or `x + y` / `keras.ops.add`
graph operation whose inputs meet: `x + f(x)` or `proj(x) + f(x)`. The branch is the
input with more graph nodes from the inputs' nearest common ancestor, the shortcut the
other one.
"""

import collections

import keras

from keras_dropouts import _internals
from keras_dropouts.layers.drop_path import DropPath

Residual = collections.namedtuple("Residual", "op branch shortcut kind")


def _distances(tensor):
    """{id(t): (t, fewest graph nodes from t to `tensor`)} for `tensor` and its ancestors."""
    out = {id(tensor): (tensor, 0)}
    queue = collections.deque([tensor])
    while queue:
        t = queue.popleft()
        d = out[id(t)][1]
        for parent in _internals.tensor_parents(t):
            if id(parent) not in out:
                out[id(parent)] = (parent, d + 1)
                queue.append(parent)
    return out


def branch_index(inputs):
    """Which input of a two-input add is the residual branch, or None if not residual.

    The two inputs' nearest common ancestor `c` (the one with the fewest nodes to both)
    is where the block starts; the shortcut is the input fewer nodes from `c` (0 for an
    identity shortcut, `c` itself; a projection shortcut such as ResNet's 1x1 conv +
    batch norm is shorter than the branch). Equal lengths or no common ancestor: None.
    """
    found = _nearest_common(inputs)
    if found is None:
        return None
    _, a, b = found
    if a == b:
        return None
    return 1 if a < b else 0


def block_input(inputs):
    """The two inputs' nearest common ancestor (the tensor a residual block starts
    from: the shortcut itself for an identity shortcut), or None."""
    found = _nearest_common(inputs)
    return None if found is None else found[0]


def _nearest_common(inputs):
    """(tensor, nodes to inputs[0], nodes to inputs[1]) for the common ancestor of the two
    inputs with the fewest nodes to both, or None if they have none."""
    da, db = _distances(inputs[0]), _distances(inputs[1])
    common = [k for k in da if k in db]
    if not common:
        return None
    c = min(common, key=lambda k: (da[k][1] + db[k][1], da[k][1]))
    return da[c][0], da[c][1], db[c][1]


def _kind(op):
    if isinstance(op, keras.layers.Add):
        return "Add"
    if _internals.is_ops_add(op):
        return "+"
    return None


def _is_drop_path(op):
    return isinstance(op, DropPath) or type(op) in _internals.foreign_drop_path_types()


def producer(tensor):
    """The graph operation that produced KerasTensor `tensor` (None for an input)."""
    return _internals.tensor_producer(tensor)


class Scan:
    """The residual additions of a model, shallow to deep, and what was left alone."""

    def __init__(self, model):
        self.residuals = []  # [Residual]
        self.skipped = 0  # additions that are not residual (or called more than once)
        self.with_drop_path = []  # [Residual] whose branch ends in a drop path already
        self._visit(model, set())

    def _visit(self, graph, seen):
        if id(graph) in seen:
            return
        seen.add(id(graph))
        calls = _internals.graph_calls(graph)
        count = collections.Counter(id(op) for op, _ in calls)
        for op, inputs in calls:
            if _internals.is_graph_model(op):
                self._visit(op, seen)
                continue
            kind = _kind(op)
            if kind is None:
                continue
            index = branch_index(inputs) if count[id(op)] == 1 and len(inputs) == 2 else None
            if index is None:
                self.skipped += 1
                continue
            residual = Residual(op, index, inputs[1 - index], kind)
            if _is_drop_path(producer(inputs[index])):
                self.with_drop_path.append(residual)
            else:
                self.residuals.append(residual)

    def every_residual(self):
        """All residual additions, with a drop path on their branch or not."""
        return self.residuals + self.with_drop_path
