"""Model surgery: structured dropout and stochastic depth for models you did not write.

- `swap_dropout(model)`: stock `Dropout` / `SpatialDropout*` -> `ScheduledDropout`, and
  other libraries' per-sample drop-path layers (Keras' ConvNeXt `StochasticDepth`,
  keras-hub's Swin / MiT / MobileNetV5 `DropPath`) -> `keras_dropouts.layers.DropPath`,
  so the callbacks can schedule their rates without retracing.
- `insert_drop_path(model, rate)`: a `DropPath` on the residual branch of every residual
  `keras.layers.Add` of a functional model (stochastic depth for a model built without it).

Both work on the graph of Sequential / functional models (nested ones too for
`swap_dropout`); for subclassed models they raise a `ValueError`. Dropout held as an
attribute of a subclassed layer (keras-hub's transformer blocks) is not reached yet.
"""

import collections
import warnings

import keras

from keras_dropouts import _internals
from keras_dropouts._checks import check_bool, check_choice, check_rate
from keras_dropouts.layers.drop_path import DropPath
from keras_dropouts.layers.kinds import is_convertible
from keras_dropouts.layers.scheduled_dropout import ScheduledDropout
from keras_dropouts.schedules import DEPTH_RULES, depth_factors


def _spatial_noise_shape(layer):
    rank = {
        keras.layers.SpatialDropout1D: 3,
        keras.layers.SpatialDropout2D: 4,
        keras.layers.SpatialDropout3D: 5,
    }.get(type(layer))
    if rank is None:
        return None
    ones = (1,) * (rank - 2)
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return (None, None) + ones
    return (None,) + ones + (None,)


def to_scheduled_dropout(layer):
    """Returns a `ScheduledDropout` equivalent to a stock `Dropout`/`SpatialDropout*` layer.

    The rate, noise shape (channel-wise masks for `SpatialDropout*`), seed, name and
    dtype policy are kept.

    Args:
        layer: A `keras.layers.Dropout` or `SpatialDropout1D/2D/3D` (exact types).

    Returns:
        A new `keras_dropouts.layers.ScheduledDropout`.

    Raises:
        ValueError: for any other layer.

    Example:
    >>> to_scheduled_dropout(keras.layers.Dropout(0.2)).rate
    0.2
    """
    if not is_convertible(layer):
        raise ValueError(
            "Invalid value received for argument `layer`. Expected a keras.layers.Dropout or "
            f"SpatialDropout1D/2D/3D. Received: layer={type(layer).__name__}"
        )
    noise_shape = _spatial_noise_shape(layer)
    if noise_shape is None and layer.noise_shape is not None:
        noise_shape = tuple(layer.noise_shape)
    return ScheduledDropout(
        float(layer.rate),
        noise_shape=noise_shape,
        seed=layer.seed,
        name=layer.name,
        dtype=layer.dtype_policy,
    )


def _check_model(model, fn):
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


def _swap(model, recursive, done, kept):
    def clone(layer):
        if is_convertible(layer):
            done[(type(layer).__name__, "ScheduledDropout")] += 1
            return to_scheduled_dropout(layer)
        spec = _internals.foreign_drop_path_spec(layer)
        if spec is not None:
            rate, seed, reason = spec
            if reason is not None:
                kept.append(f"{layer.name!r} ({type(layer).__name__}: {reason})")
                return layer
            done[(type(layer).__name__, "DropPath")] += 1
            return DropPath(rate, seed=seed, name=layer.name, dtype=layer.dtype_policy)
        if recursive and _internals.is_graph_model(layer):
            return _swap(layer, True, done, kept)
        return layer

    if isinstance(model, keras.Sequential):
        new = keras.Sequential(name=model.name)
        if model.inputs:
            new.add(keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype))
        for layer in model.layers:
            new.add(clone(layer))
        return new
    return keras.models.clone_model(model, clone_function=clone)


def swap_dropout(model, recursive=True, verbose=True):
    """Returns a copy of `model` with schedulable dropout and drop-path layers.

    - Stock `keras.layers.Dropout` / `SpatialDropout1D/2D/3D` become `ScheduledDropout`
      with the same rate, noise shape (channel-wise for `SpatialDropout*`), seed and name.
    - Other libraries' per-sample drop-path layers, recognised by type, become
      `keras_dropouts.layers.DropPath` with the same rate, seed and name: Keras'
      ConvNeXt `StochasticDepth` (`keras.applications.ConvNeXt*`) and keras-hub's Swin,
      MiT and MobileNetV5 `DropPath` (all: a per-sample keep mask with probability
      `1 - rate`, kept samples scaled by `1 / (1 - rate)`, as ours). A foreign layer
      that computes something else (keras-hub's `DINOV2DropPath` / `DINOV3DropPath`,
      multiplicative noise; MobileNetV5's with `scale_by_keep=False`) is kept as it is
      and named in a warning.

    Every other layer is *reused*, so the new model shares its weights with `model`
    (train either one, both see the update), and computes the same function. The new
    layers' rates can be scheduled by `DropoutScheduler` / `EarlyDropout` / `LateDropout`
    without retracing, including from 0 (late dropout). Compile the returned model
    before training. Layers held as attributes of subclassed layers (keras-hub's
    transformer blocks) are not converted.

    Args:
        model: A built Sequential or functional `keras.Model`.
        recursive: Also convert inside nested Sequential/functional sub-models.
        verbose: Print one line counting each kind of change.

    Returns:
        A new, uncompiled `keras.Model`.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: for subclassed models (their `call` cannot be rewired; build
            them with `ScheduledDropout` / `DropPath` directly).

    Example:
    >>> new_model = swap_dropout(model)
    swap_dropout: 3 Dropout -> ScheduledDropout, 2 StochasticDepth -> DropPath
    >>> new_model.compile(...)
    >>> new_model.fit(x, y, callbacks=[EarlyDropout(0.1, cutoff_epoch=5)])
    """
    _check_model(model, "swap_dropout")
    recursive = check_bool(recursive, "recursive")
    verbose = check_bool(verbose, "verbose")
    done = collections.Counter()
    kept = []
    new = _swap(model, recursive, done, kept)
    if kept:
        warnings.warn(
            "swap_dropout kept layers whose drop path is not DropPath's (per-sample, "
            "rescaled by 1/keep): " + "; ".join(kept),
            stacklevel=2,
        )
    if verbose:
        parts = [f"{n} {src} -> {dst}" for (src, dst), n in done.items()]
        if kept:
            parts.append(f"{len(kept)} kept (different semantics)")
        print("swap_dropout: " + (", ".join(parts) if parts else "nothing to convert"))
    return new


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


def _branch_index(inputs):
    """Which input of a two-input add is the residual branch, or None if not residual.

    The two inputs' nearest common ancestor `c` (the one with the fewest nodes to both)
    is where the block starts; the shortcut is the input fewer nodes from `c` (0 for an
    identity shortcut, `c` itself; a projection shortcut such as ResNet's 1x1 conv +
    batch norm is shorter than the branch). Equal lengths or no common ancestor: None.
    """
    da, db = _distances(inputs[0]), _distances(inputs[1])
    common = [k for k in da if k in db]
    if not common:
        return None
    c = min(common, key=lambda k: (da[k][1] + db[k][1], da[k][1]))
    a, b = da[c][1], db[c][1]
    if a == b:
        return None
    return 1 if a < b else 0


def _residual_adds(model):
    """[(add layer, branch index, shortcut shape)] in model order, and the number of skipped adds."""
    calls = _internals.graph_calls(model)
    count = collections.Counter(id(op) for op, _ in calls)
    found, skipped = [], 0
    for layer, inputs in calls:
        if not isinstance(layer, keras.layers.Add):
            continue
        if count[id(layer)] != 1 or len(inputs) != 2:
            skipped += 1  # called more than once in this graph, or not two inputs
            continue
        index = _branch_index(inputs)
        if index is None:
            skipped += 1
            continue
        found.append((layer, index, tuple(inputs[1 - index].shape)))
    return found, skipped


def insert_drop_path(model, rate, depth_rule="linear", verbose=True):
    """Returns a copy of a functional `model` with stochastic depth on its residual blocks.

    Every two-input `keras.layers.Add` whose inputs meet (`x + f(x)`, or `proj(x) + f(x)`)
    gets a `DropPath` named `f"{add.name}_drop_path"` on its residual branch, never on the
    shortcut: the shortcut is the input with fewer graph nodes from the two inputs' nearest
    common ancestor. Adds whose inputs do not meet, or meet at equal distance, and
    additions written as `x + y` / `keras.ops.add` (graph operations, e.g. in
    `keras.applications.ConvNeXt*`) are left alone; so are the adds inside nested models.
    The `i`-th of the `n` residual adds (shallow to deep) gets
    `rate * keras_dropouts.schedules.depth_factors(n, depth_rule, stages)[i]`. The input
    model is not changed; the new model's layers are clones with copies of its weights,
    so at inference it computes exactly what `model` computes.

    Args:
        model: A built functional `keras.Model`.
        rate: Float in [0, 1], the drop rate of the deepest block.
        depth_rule: `"constant"` (every block `rate`), `"linear"` (the stochastic depth
            paper: `rate * (i + 1) / n`) or `"stagewise"` (stage `k` of `S` gets
            `rate * (k + 1) / S`; a stage: consecutive adds with one output shape).
        verbose: Print one line with the number of layers inserted and their rates.

    Returns:
        A new, uncompiled functional `keras.Model`.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: for a bad `rate` or `depth_rule`, a Sequential or subclassed model, or
            a model with no residual `keras.layers.Add`.

    Example:
    >>> model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)
    >>> new = insert_drop_path(model, 0.1)
    insert_drop_path: 16 DropPath on 16 residual Add (linear, rates 0.00625 to 0.1)
    """
    _check_model(model, "insert_drop_path")
    rate = check_rate(rate, "rate")
    depth_rule = check_choice(depth_rule, "depth_rule", DEPTH_RULES)
    verbose = check_bool(verbose, "verbose")
    if isinstance(model, keras.Sequential):
        raise ValueError(
            f"insert_drop_path needs a functional model; {model.name!r} is Sequential (a "
            "Sequential model has no residual keras.layers.Add)."
        )
    adds, skipped = _residual_adds(model)
    if not adds:
        raise _no_residual_add(model, skipped)
    factors = depth_factors(len(adds), depth_rule, stages=[shape for _, _, shape in adds])
    plan = {
        id(layer): (index, rate * f, f"{layer.name}_drop_path") for (layer, index, _), f in zip(adds, factors)
    }
    new = _clone_with_drop_paths(model, plan)
    if verbose:
        rates = [rate * f for f in factors]
        print(
            f"insert_drop_path: {len(adds)} DropPath on {len(adds)} residual Add "
            f"({depth_rule}, rates {min(rates):.4g} to {max(rates):.4g})"
            + (f"; {skipped} other Add skipped" if skipped else "")
        )
    return new


def _no_residual_add(model, skipped):
    ops_adds = sum(_internals.is_ops_add(op) for op, _ in _internals.graph_calls(model))
    hint = (
        f" It has {ops_adds} additions written as `+` / keras.ops.add (graph operations, "
        "not layers), which insert_drop_path does not rewire."
        if ops_adds
        else ""
    )
    return ValueError(
        f"insert_drop_path found no residual keras.layers.Add in model {model.name!r} "
        f"(two-input Add whose inputs share an ancestor; {skipped} other Add skipped).{hint}"
    )


def _clone_with_drop_paths(model, plan):
    """A clone of `model` (weights copied) with a `DropPath` before input `index` of every
    layer in `plan` (`id(layer) -> (index, rate, name)`)."""
    originals = {}  # id(clone) -> original layer
    pairs = []

    def clone(layer):
        new = layer.__class__.from_config(layer.get_config())
        originals[id(new)] = layer
        if isinstance(layer, keras.layers.Layer):
            pairs.append((layer, new))
        return new

    def call(layer, *args, **kwargs):
        original = originals.get(id(layer))
        entry = plan.get(id(original)) if original is not None else None
        if entry is None:
            return layer(*args, **kwargs)
        index, layer_rate, name = entry
        inputs = list(args[0])
        inputs[index] = DropPath(layer_rate, name=name, dtype=layer.dtype_policy)(inputs[index])
        return layer(inputs, *args[1:], **kwargs)

    new = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for old, cloned in pairs:
        if old.weights:
            cloned.set_weights(old.get_weights())
    return new


__all__ = ["insert_drop_path", "swap_dropout", "to_scheduled_dropout"]
