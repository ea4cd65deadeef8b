"""`insert_drop_path`: stochastic depth on every residual branch of a functional model."""

import collections

import keras

from keras_dropouts._checks import check_bool, check_choice, check_rate
from keras_dropouts.layers.drop_path import DropPath
from keras_dropouts.ops.stochastic_residual import DEFAULT_BUCKETS, check_buckets
from keras_dropouts.schedules import DEPTH_RULES, depth_factors
from keras_dropouts.surgery._common import check_model, report
from keras_dropouts.surgery._copy import Rewrite, copy_rewired
from keras_dropouts.surgery._opaque import named, own_drop_paths, subclassed_blocks
from keras_dropouts.surgery._residual import Scan, producer
from keras_dropouts.surgery.residual_branch import StochasticResiduals


class _InsertDropPath(Rewrite):
    def __init__(self, plan):
        self.plan = plan  # id(original add) -> (branch index, rate, name)

    def call(self, original, op, args, kwargs):
        entry = self.plan.get(id(original))
        if entry is None:
            return op(*args, **kwargs)
        index, rate, name = entry
        if isinstance(op, keras.layers.Add):  # one argument: the list of inputs
            inputs = list(args[0])
            inputs[index] = _drop(rate, name, op, inputs[index])
            return op(inputs, *args[1:], **kwargs)
        args = list(args)  # `x + y`: the two inputs are the arguments
        args[index] = _drop(rate, name, producer(args[index]), args[index])
        return op(*args, **kwargs)


def _drop(rate, name, like, x):
    """`DropPath(rate)(x)` with the dtype policy of layer `like` (the global one if none)."""
    return DropPath(rate, name=name, dtype=getattr(like, "dtype_policy", None))(x)


def insert_drop_path(model, rate, depth_rule="linear", verbose=True, skip_compute=False, buckets=DEFAULT_BUCKETS):
    """Returns a copy of a functional `model` with stochastic depth on its residual blocks.

    Every residual addition of the graph (a two-input `keras.layers.Add`, or `x + y` /
    `keras.ops.add` as in `keras.applications.ConvNeXt*`, whose inputs meet: `x + f(x)`
    or `proj(x) + f(x)`) gets a `DropPath` named `f"{add.name}_drop_path"` on its branch,
    never on the shortcut (the input with fewer nodes from the inputs' nearest common
    ancestor); nested models are searched too. Additions whose inputs do not meet, or
    whose branch already ends in a drop-path layer (`swap_dropout` converts those), are
    left alone. The `i`-th of `n` additions (shallow to deep) gets
    `rate * keras_dropouts.schedules.depth_factors(n, depth_rule, stages)[i]`. `model` is
    not changed; the copy has copies of its weights and computes exactly what `model`
    computes at inference. Additions inside a subclassed layer's `call` (keras-hub's ViT
    and BERT blocks) are not graph nodes: with none in the graph, a `ValueError` names
    those layers (and the model's own drop-path layers, which `swap_dropout` converts).

    Args:
        model: A built functional `keras.Model`.
        rate: Float in [0, 1], the drop rate of the deepest block.
        depth_rule: `"constant"` (every block `rate`), `"linear"` (the stochastic depth
            paper: `rate * (i + 1) / n`) or `"stagewise"` (stage `k` of `S` gets
            `rate * (k + 1) / S`; a stage: consecutive blocks with one shortcut shape).
        verbose: Print one line with the number of layers inserted and their rates.
        skip_compute: With True, each block whose branch can be cut out of the graph
            becomes one `StochasticResidual` named after its add, wrapping a copy of the
            branch (`f"{add.name}_branch"`), so the branch runs only on the kept samples
            (see `keras_dropouts.surgery.residual_branch`); the other blocks get a
            `DropPath`, counted with the reason in the verbose line.
        buckets: Int >= 1, the `StochasticResidual` layers' `buckets`.

    Returns:
        A new, uncompiled functional `keras.Model`.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: for a bad `rate` or `depth_rule`, a Sequential or subclassed model, or
            a model with no residual addition in its graph.

    Example:
    >>> model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)
    >>> new = insert_drop_path(model, 0.1)
    insert_drop_path: 16 DropPath on 16 residual Add (linear, rates 0.00625 to 0.1)
    """
    rate, depth_rule, verbose, branches = _check_arguments(model, rate, depth_rule, verbose, skip_compute, buckets)
    scan = Scan(model)
    if not scan.residuals:
        raise _no_residual(model, scan)
    stages = [tuple(r.shortcut.shape) for r in scan.residuals]
    factors = depth_factors(len(scan.residuals), depth_rule, stages=stages)

    def make_rewrite(m):
        residuals = scan.residuals if m is model else Scan(m).residuals
        plan = {id(r.op): (r.branch, rate * f, f"{r.op.name}_drop_path") for r, f in zip(residuals, factors)}
        rewrite = _InsertDropPath(plan)
        return branches.wrap(rewrite, m, residuals) if branches else rewrite

    new = copy_rewired(model, make_rewrite)
    if verbose:
        report("insert_drop_path", _report_parts(scan, depth_rule, rate, factors, branches))
    return new


def _check_arguments(model, rate, depth_rule, verbose, skip_compute, buckets):
    """`insert_drop_path`'s arguments, checked: `(rate, depth_rule, verbose, branches)`,
    `branches` the `StochasticResiduals` builder with `skip_compute=True`, else None."""
    check_model(model, "insert_drop_path")
    rate = check_rate(rate, "rate")
    depth_rule = check_choice(depth_rule, "depth_rule", DEPTH_RULES)
    verbose = check_bool(verbose, "verbose")
    buckets = check_buckets(buckets)
    branches = StochasticResiduals(buckets) if check_bool(skip_compute, "skip_compute") else None
    if isinstance(model, keras.Sequential):
        raise ValueError(
            f"insert_drop_path needs a functional model; {model.name!r} is Sequential (a "
            "Sequential model has no residual addition)."
        )
    return rate, depth_rule, verbose, branches


def _report_parts(scan, depth_rule, rate, factors, branches=None):
    """The parts of the `verbose=True` line: inserted layers by kind of addition (the
    last with the rule and the range of rates), then what was left alone."""
    label = {"Add": "residual Add", "+": "residual `+`"}
    if branches:
        parts = branches.parts(label)
    else:
        kinds = collections.Counter(r.kind for r in scan.residuals)
        parts = [f"{c} DropPath on {c} {label[k]}" for k, c in kinds.items()]
    parts[-1] += f" ({depth_rule}, rates {rate * min(factors):.4g} to {rate * max(factors):.4g})"
    if scan.with_drop_path:
        parts.append(f"{len(scan.with_drop_path)} with a drop path already")
    if scan.skipped:
        parts.append(f"{scan.skipped} other additions skipped")
    return parts


def _no_residual(model, scan):
    message = (
        f"insert_drop_path found no residual addition in the graph of model {model.name!r} "
        f"(a two-input keras.layers.Add or `+` whose inputs share an ancestor; "
        f"{scan.skipped} other additions skipped)."
    )
    if scan.with_drop_path:
        message += (
            f" {len(scan.with_drop_path)} residual additions already have a drop path on "
            "their branch: convert it with keras_dropouts.surgery.swap_dropout(model)."
        )
    blocks = subclassed_blocks(model)
    if blocks:
        message += (
            f" Residual additions inside the `call` of subclassed layers cannot be rewired: "
            f"{named(blocks)}."
        )
        own = own_drop_paths(model)
        if own:
            message += (
                f" The model has its own drop-path layers ({named(own)}): use "
                "keras_dropouts.surgery.swap_dropout(model) and schedule them with the "
                "callbacks (layers=DropPath)."
            )
        else:
            message += " Build such blocks with keras_dropouts.layers.DropPath on the branch."
    return ValueError(message)
