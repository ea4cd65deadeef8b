"""Every use of Keras' and torch's internals in keras-dropouts, one small function each.

Keras 3 has no public accessor for a few things this package needs (a tensor's
Keras mask, the losses a `compile()` resolved per output, a model's nested
layers, an instance's own attributes); torch keeps a tensor's version counter and
its batched copy private. Each such use is a function here, with a branch per
supported version and a comment naming the versions it serves. Supported: Keras
3.8 through 3.15 (CI tests 3.8.0, the lower bound in pyproject.toml, and the newest).

Nothing else in the package may import `keras.src` or read a private Keras or torch
attribute; add a function here instead (docs/architecture.md).
"""

import contextlib
import re
import threading

import keras

KERAS_VERSION = tuple(int(v) for v in re.match(r"(\d+)\.(\d+)", keras.__version__).groups())


# ------------------------------------------------------------------ tensor masks

# Keras 3.8 - 3.15: the mask helpers live in `keras.src.backend.common.masking`
# (Keras <= 3.7 stored the mask in a `_keras_mask` attribute; not supported).
from keras.src.backend.common.masking import get_keras_mask as _get_keras_mask  # noqa: E402
from keras.src.backend.common.masking import set_keras_mask as _set_keras_mask  # noqa: E402


def get_keras_mask(x):
    """The Keras (padding) mask attached to tensor `x`, or None."""
    return _get_keras_mask(x)


def set_keras_mask(x, mask):
    """Attaches `mask` to tensor `x` as its Keras mask (as layers with masking do)."""
    _set_keras_mask(x, mask)


# ------------------------------------------------------------------------ scopes


# Keras 3.8 - 3.15: `keras.src.backend.common.stateless_scope`.
from keras.src.backend.common.stateless_scope import in_stateless_scope as _in_scope  # noqa: E402


def in_stateless_scope():
    """Whether a `keras.StatelessScope` is active (variable updates are collected, not applied)."""
    return _in_scope()


# Keras 3.8 - 3.15: a layer call's context (its `training` flag, which the layers it
# calls inherit) is the global attribute "current_call_ctx" of
# `keras.src.backend.common.global_state`, set by the outermost layer call.
from keras.src.backend.common import global_state as _global_state  # noqa: E402


def current_call_context():
    """The context of the layer call in progress (what nested calls inherit), or None."""
    return _global_state.get_global_attribute("current_call_ctx")


@contextlib.contextmanager
def call_context(context):
    """Re-enters `context` (from `current_call_context`) for a computation that runs after
    the call that made it has returned: a gradient that recomputes a forward pass, whose
    layers must see the forward pass's `training` flag."""
    previous = current_call_context()
    _global_state.set_global_attribute("current_call_ctx", context)
    try:
        yield
    finally:
        _global_state.set_global_attribute("current_call_ctx", previous)


def foreach_copy(torch, targets, sources):
    """`targets[k].copy_(sources[k])` for torch tensors (`torch`: the torch module), as
    one batched kernel where torch has one (`torch._foreach_copy_`, torch >= 2.1; a
    loop of copies otherwise)."""
    batched = getattr(torch, "_foreach_copy_", None)
    if batched is not None:
        batched(targets, sources)
        return
    for t, src in zip(targets, sources):
        t.copy_(src)


def tensor_version(tensor):
    """A torch tensor's in-place version counter (bumped by every in-place write), or
    None where it has none (inference tensors). torch has no public accessor."""
    try:
        return tensor._version
    except (RuntimeError, AttributeError):
        return None


# ------------------------------------------------------------------------ layers

# Keras 3.8 - 3.15: the class of functional models (not exported).
from keras.src.models.functional import Functional  # noqa: E402


def iter_layers(model):
    """All sub-layers of `model`, depth first, in model order, each once.

    Recurses into nested models, keras-hub backbones and any layer that tracks
    sub-layers (Keras 3.8 - 3.15: `Layer._layers`; models list theirs in
    `model.layers`, functional ones in graph order, so for a stack of residual
    blocks the DropPath layers come out shallow to deep).
    """
    seen = set()
    out = []

    def visit(layer):
        children = layer.layers if isinstance(layer, keras.Model) else (getattr(layer, "_layers", None) or [])
        for sub in list(children):
            if id(sub) not in seen:
                seen.add(id(sub))
                out.append(sub)
                visit(sub)

    visit(model)
    return out


def is_graph_model(model):
    """True for Sequential and functional models (a graph of layers that can be cloned
    with other layers), False for subclassed ones (Keras 3.8 - 3.15: `Functional`)."""
    return isinstance(model, (keras.Sequential, Functional))


# ------------------------------------------------------------------------ losses


def compiled_losses(model):
    """The losses `compile()` resolved per output, once the compiled loss is built.

    Returns a list of `(path, loss_fn)`: `path` indexes the prediction structure
    (as `CompileLoss` does) and `loss_fn` is a `keras.losses.Loss`. Empty before
    the first call of the compiled loss, or without a compiled loss.
    """
    # Keras 3.8 - 3.15: `Trainer._compile_loss` is a `CompileLoss` whose
    # `_flat_losses` holds `(path, loss_fn, loss_weight, name)` tuples.
    compile_loss = getattr(model, "_compile_loss", None)
    flat = getattr(compile_loss, "_flat_losses", None) or []
    return [(entry[0], entry[1]) for entry in flat]


def compiled_loss_structure(model):
    """The prediction structure the compiled loss was built for (or None)."""
    # Keras 3.8 - 3.15: `CompileLoss._y_pred_build_structure`.
    return getattr(getattr(model, "_compile_loss", None), "_y_pred_build_structure", None)


def compiled_loss_object(model):
    """The object `compile()` made for its loss (None without a loss); new per `compile()`.

    Keras 3.8 - 3.15: `Trainer._compile_loss`.
    """
    return getattr(model, "_compile_loss", None)


def has_compiled_loss(model):
    """Whether `compile()` was given a loss."""
    return compiled_loss_object(model) is not None


def call_compiled_loss(model, y, y_pred, sample_weight):
    """The compiled loss (weighted sum over outputs), or None without one.

    Keras 3.8 - 3.15: `Trainer._compile_loss(y, y_pred, sample_weight)`; this is
    the first half of `Trainer.compute_loss`.
    """
    compile_loss = model._compile_loss
    if compile_loss is None:
        return None
    return compile_loss(y, y_pred, sample_weight)


def additional_losses(model):
    """The `add_loss` / regularisation terms of the current step, each a scalar.

    Keras 3.8 - 3.15: the second half of `Trainer.compute_loss`,
    `Trainer._aggregate_additional_loss` over `model.losses`.
    """
    return [model._aggregate_additional_loss(loss) for loss in model.losses]


def loss_function(loss_fn):
    """`(name, kwargs)` of the function a `keras.losses.Loss` wraps.

    Keras 3.8 - 3.15: built-in losses are `LossFunctionWrapper`s with the
    function in `.fn` and its keyword arguments (`from_logits`, ...) in
    `._fn_kwargs`. Other `Loss` subclasses give their class name and `{}`.
    """
    fn = getattr(loss_fn, "fn", None)
    if fn is not None and hasattr(fn, "__name__"):
        name = fn.__name__
    elif hasattr(loss_fn, "__name__"):
        name = loss_fn.__name__
    else:
        name = type(loss_fn).__name__
    kwargs = dict(getattr(loss_fn, "_fn_kwargs", None) or {})
    return name, kwargs, (fn if fn is not None else loss_fn)


# ---------------------------------------------------------- activity regularisation

# Keras 3.14 - 3.15 divide an activity-regulariser loss by the batch size of the
# layer's output. Keras 3.8 - 3.13 add it summed over the batch, so on a batch
# tiled `passes` times it counts `passes` times what one pass on the batch counts.
ACTIVITY_LOSS_IS_BATCH_MEAN = KERAS_VERSION >= (3, 14)


class _PerPassActivityRegularizer:
    """Divides an activity regulariser's batch sum by the number of copies."""

    def __init__(self, regularizer, passes):
        self.regularizer = regularizer
        self.passes = passes

    def __call__(self, x):
        return self.regularizer(x) / self.passes


_swap_lock = threading.Lock()
_swapped = {}  # id(layer) -> [depth, original regulariser]


def activity_regularized_layers(model):
    """Layers of `model` whose activity regularisation needs `per_pass_activity_loss`."""
    if ACTIVITY_LOSS_IS_BATCH_MEAN:
        return []
    return [
        layer
        for layer in [model, *iter_layers(model)]
        if getattr(layer, "activity_regularizer", None) is not None
    ]


@contextlib.contextmanager
def per_pass_activity_loss(layers, passes):
    """Within the block, `layers` add their activity loss as the mean over `passes` copies.

    For Keras 3.8 - 3.13 (see `ACTIVITY_LOSS_IS_BATCH_MEAN`); `layers` comes from
    `activity_regularized_layers` and is empty on Keras >= 3.14, where this is a
    no-op. Re-entrant and safe when replica threads (tf.distribute) enter at once.
    """
    if not layers:
        yield
        return
    with _swap_lock:
        for layer in layers:
            entry = _swapped.get(id(layer))
            if entry is None:
                original = layer.activity_regularizer
                _swapped[id(layer)] = [1, original]
                object.__setattr__(
                    layer, "activity_regularizer", _PerPassActivityRegularizer(original, passes)
                )
            else:
                entry[0] += 1
    try:
        yield
    finally:
        with _swap_lock:
            for layer in layers:
                entry = _swapped[id(layer)]
                entry[0] -= 1
                if entry[0] == 0:
                    object.__setattr__(layer, "activity_regularizer", entry[1])
                    del _swapped[id(layer)]


# --------------------------------------------------------------- optimizer steps


def optimizer_step_counter(optimizer):
    """`(variable, every)`: the optimizer's update count is `variable // every`.

    `optimizer.iterations` is that count, but not always a variable, nor always the
    one that moves:
    - Keras 3.8: `LossScaleOptimizer.iterations` is the wrapper's own counter, which
      never increments (the inner optimizer's does); Keras 3.9+ returns the inner one.
      We follow `inner_optimizer` on every version.
    - Keras 3.8 - 3.15: with `gradient_accumulation_steps=k`, `iterations` is the
      tensor `_iterations // k`, not a variable; the variable is `_iterations`.
    """
    while hasattr(optimizer, "inner_optimizer"):
        optimizer = optimizer.inner_optimizer
    every = getattr(optimizer, "gradient_accumulation_steps", None) or 1
    variable = optimizer._iterations if every > 1 else optimizer.iterations
    return variable, int(every)


# ------------------------------------------------------------- fit's input length

# Keras 3.8 - 3.15 (every backend's trainer): `fit` keeps the `EpochIterator` it
# iterates over in its local `epoch_iterator` (Keras keeps no other reference to it while
# the callbacks' `on_train_begin` runs); the iterator's `data_adapter` for a `tf.data`
# input is a `TFDatasetAdapter`, whose `_dataset` is the dataset after
# `distribution.distribute_dataset`. With a multi-process distribution that auto-shards,
# Keras 3.15 wraps the user's dataset as `rebatch -> shard -> prefetch` (Keras 3.8:
# `rebatch -> _AutoShardDataset -> prefetch`). Each keeps its input in `_input_dataset`
# (TF 2.x private API).
_FIT_FRAMES = 12  # fit -> CallbackList.on_train_begin -> callback hooks: a few frames up
# The wrappers, outermost first (type names: TF 2.16 - 2.21); `rebatch` normalises its
# input by a `map` (same length) and a `_RestructuredDataset`.
_SHARDING_WRAPPERS = (
    ("_PrefetchDataset", "PrefetchDataset"),
    ("_ShardDataset", "ShardDataset", "_AutoShardDataset"),
    ("_RebatchDataset",),
    ("_RestructuredDataset",),
    ("_MapDataset", "MapDataset"),
)


def _running_fit_iterator(model):
    """The `EpochIterator` of the `fit` of `model` that is running on this thread
    (called from a callback hook inside that `fit`), or None."""
    import sys

    frame = sys._getframe(1)
    for _ in range(_FIT_FRAMES):
        if frame is None:
            return None
        local = frame.f_locals
        # Keras' own `fit` holds `epoch_iterator`; a subclass's `fit` around it is farther up.
        if frame.f_code.co_name == "fit" and local.get("self") is model and "epoch_iterator" in local:
            return local["epoch_iterator"]
        frame = frame.f_back
    return None


def fit_dataset_cardinality(model):
    """The number of batches per epoch of the `tf.data.Dataset` the running `fit` of
    `model` was given, before a multi-process distribution sharded it: an int, or None
    where it is not known (no `fit` running, no `tf.data` input, no auto-sharding
    multi-process distribution, or a length the user's own pipeline hides: `filter`, a
    generator, `repeat()`). Called from a callback's `on_train_begin`.

    Only the exact chain of wrappers Keras' sharding adds is looked through, so the
    length is the user's dataset's (its global batches: the optimizer steps of an epoch).
    """
    distribution = keras.distribution.distribution()
    # Keras 3.8 - 3.15: `Distribution._is_multi_process` (no public accessor in 3.8).
    if not getattr(distribution, "_is_multi_process", False):
        return None
    iterator = _running_fit_iterator(model)
    dataset = getattr(getattr(iterator, "data_adapter", None), "_dataset", None)
    if dataset is None or not hasattr(dataset, "cardinality"):
        return None
    depth = 0
    for names in _SHARDING_WRAPPERS:
        inner = getattr(dataset, "_input_dataset", None)
        if type(dataset).__name__ not in names or inner is None:
            break
        dataset, depth = inner, depth + 1
    if depth != len(_SHARDING_WRAPPERS):  # not Keras' sharding: its length is what TF says
        return None
    cardinality = int(dataset.cardinality())
    return cardinality if cardinality >= 0 else None


# ------------------------------------------------------------------- JAX train step


def jax_state_parts(state):
    """`(non_trainable, optimizer)` variable values of the `state` JAX's
    `train_step(state, data)` receives (Keras 3.8 - 3.15: the 4-tuple
    `(trainable, non_trainable, optimizer, metrics)`)."""
    _, non_trainable, optimizer, _ = state
    return non_trainable, optimizer


def jax_state_with_non_trainable(state, non_trainable):
    """`state` with its non-trainable variable values replaced (see `jax_state_parts`)."""
    trainable, _, optimizer, metrics = state
    return (trainable, non_trainable, optimizer, metrics)


# ------------------------------------------------------------- instance attributes


def get_instance_attribute(obj, name):
    """`obj`'s own attribute `name` (set on the instance, not its class), or None.

    The step owner (`keras_dropouts/_step_owner.py`) keeps a model's `train_step`
    wrapper as a plain instance attribute: no Keras tracking, and on torch no
    `Module` registration.
    """
    return obj.__dict__.get(name)


def set_instance_attribute(obj, name, value):
    """Sets `obj`'s own attribute `name`, bypassing Keras' (and torch's) `__setattr__`."""
    obj.__dict__[name] = value


def pop_instance_attribute(obj, name):
    """Removes `obj`'s own attribute `name` (the class's, if any, shows again)."""
    obj.__dict__.pop(name, None)


# ------------------------------------------------------------------ layer surgery


def sublayer_slots(owner):
    """`(name, index, layer)` for every layer `owner` holds directly: as attribute `name`
    (`index` None) or as item `index` of the list attribute `name`. Keras 3.8 - 3.15
    keep sub-layers in the instance `__dict__`, except on torch, where
    `torch.nn.Module.__setattr__` puts them in `_modules`; lists of layers are
    `TrackedList`s in the `__dict__`."""
    attributes = dict(vars(owner))
    attributes.update(attributes.get("_modules") or {})
    out = []
    for name, value in attributes.items():
        if name in ("_layers", "_modules", "_tracker") or name.startswith("__"):
            continue
        if isinstance(value, keras.layers.Layer):
            out.append((name, None, value))
        elif isinstance(value, list):
            out.extend((name, i, v) for i, v in enumerate(value) if isinstance(v, keras.layers.Layer))
    return out


def replace_sublayer(owner, name, index, old, new):
    """Puts `new` where `owner` holds `old` (a slot from `sublayer_slots`), in the
    owner's layer tracker too (Keras 3.8 - 3.15: `Layer._tracker`, locked after
    `build`; its "layers" store is `owner._layers`). The lock is restored afterwards."""
    tracker = getattr(owner, "_tracker", None)
    locked = bool(tracker is not None and tracker.locked)
    if locked:
        tracker.unlock()
    try:
        if tracker is not None and tracker.is_in_store("layers", old):
            tracker.replace_tracked_value("layers", old, new)
        if index is None:
            setattr(owner, name, new)
        else:
            list.__setitem__(getattr(owner, name), index, new)
    finally:
        if locked:
            tracker.lock()


def layer_input_shape(layer):
    """The shape of `layer`'s first input, as a tuple, if every call of the layer had
    one shape (Keras 3.8 - 3.15: `Operation._inbound_nodes[i].input_tensors`; layers
    inside a subclassed layer get nodes when a functional model is built on it); else None."""
    shapes = {
        tuple(node.input_tensors[0].shape)
        for node in getattr(layer, "_inbound_nodes", None) or []
        if node.input_tensors
    }
    return shapes.pop() if len(shapes) == 1 else None


def is_keras_builtin(layer):
    """True for layers defined by Keras itself (module `keras.src...`, Keras 3.8 - 3.15)."""
    return type(layer).__module__.startswith("keras.src.")


# ------------------------------------------------------------------- graph surgery


def tensor_producer(tensor):
    """The graph operation that produced KerasTensor `tensor` (None for a model input).
    Keras 3.8 - 3.15: the first entry of `tensor._keras_history`."""
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else history[0]


def tensor_parents(tensor):
    """The input tensors of the graph node that produced KerasTensor `tensor` (empty for
    model inputs). Keras 3.8 - 3.15: `tensor._keras_history = (operation, node_index,
    tensor_index)` and `operation._inbound_nodes[node_index].input_tensors`."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return []
    operation, node_index = history[0], history[1]
    nodes = getattr(operation, "_inbound_nodes", None) or []
    if node_index >= len(nodes):
        return []
    return list(nodes[node_index].input_tensors)


def graph_calls(model):
    """The calls of a functional model's graph, inputs first (topological order):
    a list of `(operation, input_tensors)`, one per graph node, model inputs left out.
    Only this model's nodes: a layer shared with another model appears once per call
    here. Keras 3.8 - 3.15: `Functional._nodes_by_depth` (as `_run_through_graph` reads it).
    """
    if isinstance(model, keras.Sequential):
        # Keras 3.8 - 3.15: a built Sequential runs a functional model, `_functional`.
        inner = getattr(model, "_functional", None)
        if inner is None:
            return [(layer, []) for layer in model.layers]
        model = inner
    out = []
    by_depth = model._nodes_by_depth
    for depth in sorted(by_depth, reverse=True):
        for node in by_depth[depth]:
            if node.operation is None or node.is_input:
                continue
            out.append((node.operation, list(node.input_tensors)))
    return out


# Keras 3.8 - 3.15: `x + y` / `keras.ops.add` on KerasTensors records a
# `keras.src.ops.numpy.Add` operation (not a layer) in a functional graph.
from keras.src.ops.numpy import Add as _OpsAdd  # noqa: E402


def is_ops_add(operation):
    """True for a `+` / `keras.ops.add` node of a functional graph (not `keras.layers.Add`)."""
    return isinstance(operation, _OpsAdd)


# Per-sample drop-path layers of other libraries, recognised by type. A class is
# looked up only in modules already imported (a model cannot hold an instance of a
# class whose module was never imported), so keras-hub is never imported here.
# Each entry: module, class name, and a reader returning (rate, seed) or a reason
# why the layer's semantics differ from `keras_dropouts.layers.DropPath` (per-sample
# Bernoulli keep mask with probability 1 - rate, kept samples scaled by 1 / (1 - rate)).
def _convnext_stochastic_depth(layer):
    # Keras 3.8 - 3.15 `keras.src.applications.convnext.StochasticDepth`: per-sample
    # floor(keep + U) mask, x / keep (its docstring says "batch-wise"; the code is
    # per-sample). No seed argument (global RNG).
    return float(layer.drop_path_rate), None, None


def _swin_drop_path(layer):
    # keras-hub 0.32 swin_transformer_layers.DropPath(drop_prob, seed): as ours.
    return float(layer.drop_prob), layer.seed, None


def _mit_drop_path(layer):
    # keras-hub 0.32 mit_layers.DropPath(rate, seed): keep where U > rate, x / (1 - rate).
    return float(layer.rate), layer._seed_val, None


def _mobilenetv5_drop_path(layer):
    # keras-hub 0.32 mobilenetv5_layers.DropPath(drop_prob, scale_by_keep).
    if not layer.scale_by_keep:
        return None, None, "scale_by_keep=False (kept samples are not rescaled by 1/keep)"
    return float(layer.drop_prob), None, None


def _dino_drop_path(layer):
    # keras-hub 0.32 DINOV2DropPath / DINOV3DropPath multiply by (U + keep) / keep
    # with no floor: multiplicative noise in [1, (1 + keep) / keep), not a drop.
    return None, None, "multiplies by (uniform + keep) / keep (no floor): not a per-sample drop"


def _keras_cv_drop_path(layer):
    # keras-cv 0.9 DropPath(rate, seed): keep where U > rate, x / (1 - rate).
    return float(layer.rate), layer._seed_val, None


def _keras_cv_stochastic_depth(layer):
    # keras-cv 0.9 StochasticDepth(rate) on [shortcut, residual]: one Bernoulli draw
    # for the whole batch, no rescaling in training, residual * (1 - rate) at inference.
    return None, None, (
        "takes [shortcut, residual] and keeps the residual for the whole batch or none of it, "
        "unscaled in training and scaled by 1 - rate at inference: not a per-sample drop path"
    )


_FOREIGN_DROP_PATHS = (
    ("keras.src.applications.convnext", "StochasticDepth", _convnext_stochastic_depth),
    ("keras_cv.src.layers.regularization.drop_path", "DropPath", _keras_cv_drop_path),
    ("keras_cv.src.layers.regularization.stochastic_depth", "StochasticDepth", _keras_cv_stochastic_depth),
    ("keras_hub.src.models.swin_transformer.swin_transformer_layers", "DropPath", _swin_drop_path),
    ("keras_hub.src.models.mit.mit_layers", "DropPath", _mit_drop_path),
    ("keras_hub.src.models.mobilenetv5.mobilenetv5_layers", "DropPath", _mobilenetv5_drop_path),
    ("keras_hub.src.models.dinov2.dinov2_layers", "DINOV2DropPath", _dino_drop_path),
    ("keras_hub.src.models.dinov3.dinov3_layers", "DINOV3DropPath", _dino_drop_path),
)


def _foreign_readers():
    import sys

    found = []
    for module_name, class_name, reader in _FOREIGN_DROP_PATHS:
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if isinstance(cls, type):
            found.append((cls, reader))
    return found


def foreign_drop_path_types():
    """The foreign drop-path layer classes that exist in this process (Keras' ConvNeXt
    `StochasticDepth`, Keras 3.8 - 3.15; keras-cv 0.9's `DropPath` and `StochasticDepth`;
    keras-hub 0.32's Swin, MiT, MobileNetV5 and DINOv2/v3 drop-path layers), as a
    tuple; only from modules already imported."""
    return tuple(cls for cls, _ in _foreign_readers())


def foreign_drop_path_spec(layer):
    """`(rate, seed, reason)` for a foreign drop-path layer: `reason` is None when the
    layer computes what `DropPath(rate, seed)` does, else why it does not (then
    `rate` and `seed` are None). None when `layer` is not a foreign drop-path layer."""
    for cls, reader in _foreign_readers():
        if type(layer) is cls:
            return reader(layer)
    return None
