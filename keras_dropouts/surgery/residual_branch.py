"""`insert_drop_path(..., skip_compute=True)`: residual blocks as `StochasticResidual`.

A residual addition whose branch can be cut out of the graph becomes one
`StochasticResidual` wrapping a functional sub-model of the branch (its layers copied
from their configs with their weights and names, the sub-model named
`f"{add.name}_branch"`), so that in training the branch runs only on the samples it
keeps. The layer takes the add's name; a block with a projection shortcut
(`proj(x) + f(x)`) calls it on `[proj(x), x]`, the projection staying in the outer graph.

A branch can be cut out when every layer between the block input `x` (the add's
inputs' nearest common ancestor) and the add is called once, reads only `x` or
tensors of the branch, and feeds only the branch or the add (no side output, no
model output, no nested model). Other residual additions get the ordinary `DropPath`.
"""

import collections

import keras

from keras_dropouts import _internals
from keras_dropouts.layers.stochastic_residual import StochasticResidual
from keras_dropouts.surgery._copy import Rewrite, copy_weights
from keras_dropouts.surgery._residual import block_input, producer

#: The original tensors of a branch that can be cut out of its graph.
Branch = collections.namedtuple("Branch", "block_input output")


class StochasticResiduals:
    """What `insert_drop_path(skip_compute=True)` adds to the `DropPath` rewrite: `wrap`
    it per rewired model; `parts` for the verbose line."""

    def __init__(self, buckets):
        self.buckets = buckets
        self.found = {}  # id(add) -> Branch, or why its branch cannot be cut out

    def wrap(self, rewrite, model, residuals):
        """`rewrite` (the DropPath rewrite; its `plan`: id(add) -> (branch index, rate,
        name)) with every add of `residuals` whose branch can be cut out replaced."""
        self.found = find_branches(model, residuals)
        self.kinds = {id(r.op): r.kind for r in residuals}
        return _Rewrite(rewrite, self.found, self.buckets)

    def parts(self, label):
        """Report parts: the DropPath fallbacks (with why) and the StochasticResidual
        layers, counted per kind of addition (`label`: kind -> words)."""
        wrapped, reasons = collections.Counter(), collections.defaultdict(collections.Counter)
        for key, found in self.found.items():
            if isinstance(found, Branch):
                wrapped[self.kinds[key]] += 1
            else:
                reasons[self.kinds[key]][found] += 1
        parts = []
        for kind, why in reasons.items():
            n = sum(why.values())
            listed = ", ".join(f"{c} {reason}" for reason, c in why.items())
            parts.append(f"{n} DropPath on {n} {label[kind]} (branch not isolated: {listed})")
        parts += [f"{c} StochasticResidual on {c} {label[k]}" for k, c in wrapped.items()]
        return parts


class _Rewrite(Rewrite):
    def __init__(self, fallback, found, buckets):
        self.fallback, self.found, self.buckets = fallback, found, buckets

    def replace(self, layer):
        return self.fallback.replace(layer)

    def after(self, layer):
        return self.fallback.after(layer)

    def call(self, original, op, args, kwargs):
        branch = self.found.get(id(original))
        if not isinstance(branch, Branch):
            return self.fallback.call(original, op, args, kwargs)
        index, rate, _ = self.fallback.plan[id(original)]
        inputs = list(args[0]) if isinstance(op, keras.layers.Add) else list(args)
        shortcut, x = inputs[1 - index], block_input(inputs)
        like = original if isinstance(original, keras.layers.Layer) else producer(branch.output)
        layer = StochasticResidual(
            branch_model(branch, f"{original.name}_branch"), rate, buckets=self.buckets,
            name=original.name, dtype=getattr(like, "dtype_policy", None),
        )
        # Branch and shortcut swapped in the sum: IEEE addition commutes, the output is exact.
        return layer(x if shortcut is x else [shortcut, x])


def find_branches(model, residuals):
    """{id(add): Branch, or a reason} for each residual addition of `residuals` in the
    graph of `model` or of its nested Sequential / functional models."""
    plan = {id(r.op): r.branch for r in residuals}
    found, seen = {}, set()

    def visit(graph):
        if id(graph) in seen:
            return
        seen.add(id(graph))
        calls = _internals.graph_calls(graph)
        uses = _Uses(graph, calls)
        for op, inputs in calls:
            if _internals.is_graph_model(op):
                visit(op)
            elif id(op) in plan:
                found[id(op)] = _cut_out(inputs, plan[id(op)], op, uses)

    visit(model)
    return found


class _Uses:
    """Which graph operations read the outputs of each operation of one graph."""

    def __init__(self, graph, calls):
        self.calls = collections.Counter(id(op) for op, _ in calls)
        self.readers = collections.defaultdict(set)  # id(producing op) -> {id(reading op)}
        for op, inputs in calls:
            for t in inputs:
                self.readers[id(producer(t))].add(id(op))
        self.outputs = {id(producer(t)) for t in graph.outputs}


def _cut_out(inputs, index, add, uses):
    """A `Branch` for input `index` of residual addition `add`, or why there is none."""
    output, shortcut = inputs[index], inputs[1 - index]
    if tuple(output.shape) != tuple(shortcut.shape):
        return "broadcasting"
    start = block_input(inputs)
    ops, stack, seen = set(), [output], set()
    while stack:
        t = stack.pop()
        if t is start or id(t) in seen:
            continue
        seen.add(id(t))
        op, parents = producer(t), _internals.tensor_parents(t)
        if op is None or not parents:
            return "with inputs from outside the block"
        if _internals.is_graph_model(op) or uses.calls[id(op)] != 1:
            return "with shared layers or nested models"
        ops.add(id(op))
        stack.extend(parents)
    allowed = ops | {id(add)}
    if any(uses.readers[k] - allowed or k in uses.outputs for k in ops):
        return "with side outputs"
    return Branch(start, output)


def branch_model(branch, name):
    """A functional model of `branch` (a `Branch` of original tensors): its layers
    copied from their configs with their names and weights, on a new `Input` named
    `f"{name}_input"`."""
    source = keras.Model(branch.block_input, branch.output, name=name)
    pairs = []

    def clone(layer):
        new = layer.__class__.from_config(layer.get_config())
        pairs.append((layer, new))
        return new

    start = branch.block_input
    x = keras.Input(batch_shape=start.shape, dtype=start.dtype, name=f"{name}_input")
    model = keras.models.clone_model(source, input_tensors=x, clone_function=clone)
    copy_weights(pairs)
    return model
