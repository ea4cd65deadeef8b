"""`insert_drop_block`: DropBlock after chosen layers and on the skip connections of the
residual blocks they close (Ghiasi et al. 2018)."""

import keras

from keras_dropouts import _internals
from keras_dropouts._checks import check_bool, check_rate, invalid
from keras_dropouts.layers.drop_block import DropBlock1D, DropBlock2D, DropBlock3D
from keras_dropouts.surgery._common import check_model, graph_layers, report
from keras_dropouts.surgery._copy import Rewrite, copy_rewired
from keras_dropouts.surgery._residual import Scan, producer

_BY_RANK = {3: DropBlock1D, 4: DropBlock2D, 5: DropBlock3D}


def _selector(after, model):
    """`after` as a predicate `layer -> bool`, checking names against the model."""
    if callable(after) and not isinstance(after, (str, list, tuple)):
        return after
    names = [after] if isinstance(after, str) else after
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
        raise invalid("after", "a non-empty list of layer names or a callable `layer -> bool`", after)
    known = {layer.name for layer in graph_layers(model)}
    missing = [n for n in names if n not in known]
    if missing:
        raise invalid("after", f"names of layers of model {model.name!r}; not found: {missing}", after)
    wanted = set(names)
    return lambda layer: layer.name in wanted


class _InsertDropBlock(Rewrite):
    def __init__(self, rate, block_size, chosen, skips):
        self.rate, self.block_size = rate, block_size
        self.chosen = chosen  # ids of the layers to follow with a DropBlock
        self.skips = skips  # id(residual add) -> (shortcut index, name)
        self.made = {}  # id(original) -> DropBlock (one per layer, shared by its calls)
        self.counts = {}

    def _block(self, key, name, like, rank, where):
        if key not in self.made:
            cls = _BY_RANK.get(rank)
            if cls is None:
                raise ValueError(
                    f"insert_drop_block: the output of layer {getattr(like, 'name', name)!r} has rank {rank}; "
                    "DropBlock needs rank 3, 4 or 5 (1D, 2D or 3D feature maps with channels). "
                    "Choose other layers with `after`."
                )
            self.made[key] = cls(
                self.rate, self.block_size, data_format=getattr(like, "data_format", None),
                name=name, dtype=getattr(like, "dtype_policy", None),
            )
            label = f"{cls.__name__} {where}"
            self.counts[label] = self.counts.get(label, 0) + 1
        return self.made[key]

    def call(self, original, op, args, kwargs):
        skip = self.skips.get(id(original))
        if skip is not None:
            index, name = skip
            args = list(args)
            if isinstance(op, keras.layers.Add):
                inputs = list(args[0])
                inputs[index] = self._skip(name, inputs[index])
                args[0] = inputs
            else:
                args[index] = self._skip(name, args[index])
        out = op(*args, **kwargs)
        if id(original) in self.chosen:
            block = self._block(id(original), f"{original.name}_drop_block", original, len(out.shape), "after")
            out = block(out)
        return out

    def _skip(self, name, x):
        return self._block(name, name, producer(x), len(x.shape), "on skip connections")(x)

    def after(self, layer):
        if id(layer) not in self.chosen:
            return []
        rank = len(layer.output.shape)
        return [self._block(id(layer), f"{layer.name}_drop_block", layer, rank, "after")]


def _check_block_size(rate, block_size):
    """Raises the DropBlock layers' own error for a bad `block_size`."""
    rank = len(block_size) if isinstance(block_size, (list, tuple)) else 2
    if rank not in (1, 2, 3):
        raise invalid("block_size", "a positive integer or a tuple of 1, 2 or 3 positive integers", block_size)
    _BY_RANK[rank + 2](rate, block_size)


def _closes(layer_calls, residual_ids):
    """The residual addition the chosen layer closes: itself, or the addition its one
    input comes straight from (ResNet's `*_add` -> `*_out` activation)."""
    op, inputs = layer_calls
    if id(op) in residual_ids:
        return op
    if len(inputs) == 1:
        parent = producer(inputs[0])
        if id(parent) in residual_ids:
            return parent
    return None


def _graph_calls_deep(model):
    out, seen = [], set()

    def visit(graph):
        if id(graph) in seen:
            return
        seen.add(id(graph))
        for op, inputs in _internals.graph_calls(graph):
            if _internals.is_graph_model(op):
                visit(op)
            else:
                out.append((op, inputs))

    visit(model)
    return out


def insert_drop_block(model, rate, block_size, after, skip_connections=True, verbose=True):
    """Returns a copy of `model` with DropBlock after chosen layers, as Ghiasi et al. 2018.

    A `DropBlock1D`, `DropBlock2D` or `DropBlock3D` (by the rank of the tensor: 3, 4 or
    5) named `f"{layer.name}_drop_block"` follows every chosen layer; with
    `skip_connections=True` (the paper's placement), when a chosen layer closes a
    residual block (it is the block's residual addition, or takes that addition's output
    as its one input, like ResNet's `*_out` activation), one more DropBlock named
    `f"{add.name}_skip_drop_block"` goes on the block's skip connection (the shortcut
    input of the addition). Residual additions are found as by `insert_drop_path`
    (`keras.layers.Add` or `+`, nested models included). The paper uses DropBlock on
    ResNet-50's groups 3 and 4 with `block_size=7` and a rate ramped linearly from 0
    over training (`DropoutScheduler(LinearRamp(rate), layers=DropBlock2D)`).

    The input model is not changed; the new model's layers are copies with copies of its
    weights, and DropBlock is the identity at inference, so the new model's predictions
    equal the original's exactly.

    Args:
        model: A built Sequential or functional `keras.Model`.
        rate: Float in [0, 1], the DropBlock rate.
        block_size: Int or tuple, the block size (see `DropBlock2D`).
        after: A list of layer names (of the model or its nested models), or a callable
            `layer -> bool` choosing the layers to follow with a DropBlock.
        skip_connections: Also put DropBlock on the skip connections of the residual
            blocks the chosen layers close.
        verbose: Print one line counting each kind of change.

    Returns:
        A new, uncompiled `keras.Model`.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: for a bad `rate`, `block_size` or `after` (unknown names, nothing
            chosen), a chosen layer whose output is not rank 3, 4 or 5, or a subclassed
            model.

    Example:
    >>> model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)
    >>> stages_3_4 = lambda layer: layer.name.startswith(("conv4_", "conv5_")) and layer.name.endswith("_out")
    >>> new = insert_drop_block(model, 0.1, 3, after=stages_3_4)
    insert_drop_block: 9 DropBlock2D after, 9 DropBlock2D on skip connections
    """
    rate, skip_connections, verbose = _check_arguments(model, rate, block_size, skip_connections, verbose)
    select = _selector(after, model)
    made = []

    def make_rewrite(m):
        calls = _graph_calls_deep(m)
        chosen = _chosen(calls, select, model, after)
        skips = _skips(m, calls, chosen) if skip_connections else {}
        made.append(_InsertDropBlock(rate, block_size, set(chosen), skips))
        return made[-1]

    new = copy_rewired(model, make_rewrite)
    if verbose:
        report("insert_drop_block", _report_parts(made[-1]))
    return new


def _check_arguments(model, rate, block_size, skip_connections, verbose):
    """`insert_drop_block`'s arguments but `after`, checked: `(rate, skip_connections,
    verbose)`."""
    check_model(model, "insert_drop_block")
    rate = check_rate(rate, "rate")
    _check_block_size(rate, block_size)
    return rate, check_bool(skip_connections, "skip_connections"), check_bool(verbose, "verbose")


def _chosen(calls, select, model, after):
    """`id(layer) -> layer` for the layers among `calls` that `select` chooses; a
    `ValueError` naming `after` if none is."""
    chosen = {id(op): op for op, _ in calls if isinstance(op, keras.layers.Layer) and select(op)}
    if not chosen:
        raise invalid("after", f"a choice of at least one layer of model {model.name!r}", after)
    return chosen


def _skips(model, calls, chosen):
    """`id(addition) -> (shortcut index, name)` for each residual addition of `model`
    that a chosen layer closes (none in a Sequential model)."""
    if isinstance(model, keras.Sequential):
        return {}
    residuals = {id(r.op): r for r in Scan(model).every_residual()}
    skips = {}
    for call in calls:
        if id(call[0]) in chosen:
            add = _closes(call, residuals)
            if add is not None:
                skips[id(add)] = (1 - residuals[id(add)].branch, f"{add.name}_skip_drop_block")
    return skips


def _report_parts(rewrite):
    """The parts of the `verbose=True` line, one per kind of DropBlock inserted: "after"
    before "on skip connections", as the docstring's example reads."""
    counts = sorted(rewrite.counts.items(), key=lambda item: "skip" in item[0])
    return [f"{n} {label}" for label, n in counts]
