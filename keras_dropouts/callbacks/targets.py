"""Finding and selecting the dropout layers a callback controls."""

import weakref

import keras

from keras_dropouts._internals import iter_layers
from keras_dropouts.layers.kinds import is_package_layer, is_stock_layer

_CONFIGURED = weakref.WeakKeyDictionary()
# The rate a callback last wrote into a stock layer.
_WRITTEN = weakref.WeakKeyDictionary()


def configured_rate(layer):
    """The rate `layer` was built with (not its current, possibly scheduled, rate).

    Package layers keep it as `configured_rate`; for a stock Keras layer it is the
    rate the first time a `keras_dropouts` callback saw the layer (from then on the
    layer's config carries it, see `_keep_configured_rate_in_config`).
    """
    if is_package_layer(layer):
        return layer.configured_rate
    if layer not in _CONFIGURED:
        _CONFIGURED[layer] = float(layer.rate)
        _keep_configured_rate_in_config(layer)
    return _CONFIGURED[layer]


def set_stock_rate(layer, rate):
    """Sets a stock layer's `rate` from a schedule (remembered as the schedule's)."""
    layer.rate = rate
    _WRITTEN[layer] = rate


def _keep_configured_rate_in_config(layer):
    """Makes a stock layer's `get_config` save its configured rate, not a scheduled one.

    A stock layer has one `rate`, which its `get_config` saves as the rate to build
    it with. A relative schedule (`relative=True`, `rate=None`) scales the configured
    rate: left at a scaled value, a saved and reloaded model would take it as its
    configured rate, and the next relative schedule would scale it again (0.2 ->
    0.1 -> 0.05). While the layer holds the rate a schedule wrote, its config
    says the configured rate (as the package layers' config does); a rate set by
    hand is saved as is. The current rate itself is left alone.
    """
    cls_get_config = type(layer).get_config
    ref = weakref.ref(layer)

    def get_config():
        owner = ref()
        config = cls_get_config(owner)
        written = _WRITTEN.get(owner)
        if written is not None and config.get("rate") == written and owner in _CONFIGURED:
            config["rate"] = _CONFIGURED[owner]
        return config

    layer.get_config = get_config


def _describe(spec):
    if isinstance(spec, type):
        return spec.__name__
    if isinstance(spec, keras.layers.Layer):
        return f"<layer {spec.name!r}>"
    return repr(spec)


def _matches(layer, spec):
    if isinstance(spec, keras.layers.Layer):
        return layer is spec
    if isinstance(spec, str):
        return layer.name == spec
    if isinstance(spec, type):
        return isinstance(layer, spec)
    if callable(spec):
        return bool(spec(layer))
    raise ValueError(
        "Argument `layers` must be None, or a layer, layer name, layer class or "
        f"predicate, or a list of those. Received an item: {spec!r}"
    )


def select_layers(model, layers=None):
    """Returns the dropout layers of `model` a callback should control.

    Args:
        model: A Keras model (Sequential, functional, subclassed, keras-hub).
        layers: None for every `keras_dropouts` layer in the model (found
            recursively); otherwise a layer instance, a layer name, a layer class,
            a predicate `fn(layer) -> bool`, or a list mixing those. Explicit
            selections may include stock Keras dropout layers (`Dropout`,
            `SpatialDropout*`, `GaussianDropout`, `AlphaDropout`).

    Returns:
        A list of layers in model order, without duplicates.

    Raises:
        ValueError: if nothing matches, or a selected layer has no dropout rate.

    Example:
    >>> select_layers(model, [keras_dropouts.layers.DropPath, "head_dropout"])
    """
    all_layers = iter_layers(model)
    if layers is None:
        return _every_package_layer(model, all_layers)
    specs = list(layers) if isinstance(layers, (list, tuple, set)) else [layers]
    if not specs:
        raise ValueError("Argument `layers` is an empty list; pass None for every dropout layer.")
    selected = {}  # id -> layer, in the order found
    for spec in specs:
        for layer in _matching(model, all_layers, spec):
            selected.setdefault(id(layer), layer)
    selected = list(selected.values())
    if not all(isinstance(spec, keras.layers.Layer) for spec in specs):
        # Model order (shallow to deep), which the depth rule relies on; an explicit
        # list of layer instances keeps the order given.
        order = {id(layer): i for i, layer in enumerate(all_layers)}
        selected.sort(key=lambda layer: order[id(layer)])
    return selected


def _is_dropout(layer):
    return is_package_layer(layer) or is_stock_layer(layer)


def _every_package_layer(model, all_layers):
    selected = [layer for layer in all_layers if is_package_layer(layer)]
    if selected:
        return selected
    stock = [layer.name for layer in all_layers if is_stock_layer(layer)]
    hint = ""
    if stock:
        hint = (
            f" The model has stock dropout layers {stock[:5]}: select them explicitly "
            "with `layers=keras.layers.Dropout` (switched by retracing), or convert them "
            "with `keras_dropouts.surgery.swap_dropout(model)`."
        )
    raise ValueError(f"No keras_dropouts layer found in model {model.name!r}; nothing to schedule." + hint)


def _matching(model, all_layers, spec):
    """The dropout layers of `all_layers` that `spec` selects (at least one)."""
    if isinstance(spec, keras.layers.Layer) and all(spec is not x for x in all_layers):
        raise ValueError(f"Argument `layers`: layer {spec.name!r} is not part of model {model.name!r}.")
    # Instances and names must point at dropout layers; classes and predicates
    # simply skip non-dropout matches (a name predicate may also match a Dense).
    strict = isinstance(spec, (keras.layers.Layer, str))
    found = []
    for layer in all_layers:
        if not _matches(layer, spec):
            continue
        if not _is_dropout(layer):
            if strict:
                _raise_not_dropout(layer)
            continue
        found.append(layer)
    if not found:
        names = [x.name for x in all_layers if _is_dropout(x)]
        raise ValueError(
            f"Argument `layers`: no dropout layer of model {model.name!r} matches "
            f"{_describe(spec)}. Its dropout layers are: {names}."
        )
    return found


def _raise_not_dropout(layer):
    raise ValueError(
        f"Argument `layers`: layer {layer.name!r} ({type(layer).__name__}) has no schedulable "
        "dropout rate. Supported: keras_dropouts layers and keras.layers.Dropout, "
        "SpatialDropout1D/2D/3D, GaussianDropout, AlphaDropout."
    )


__all__ = ["configured_rate", "select_layers"]
