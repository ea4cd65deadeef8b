"""swap_dropout: replace stock Dropout layers by ScheduledDropout, keeping weights."""

import keras

from keras_dropouts._internals import is_graph_model
from keras_dropouts.layers.kinds import is_convertible
from keras_dropouts.layers.scheduled_dropout import ScheduledDropout


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

    The rate, noise shape (channel-wise masks for `SpatialDropout*`), seed and name
    are kept.

    Example:
    >>> to_scheduled_dropout(keras.layers.Dropout(0.2)).rate
    0.2
    """
    if not is_convertible(layer):
        raise ValueError(
            "to_scheduled_dropout expects a keras.layers.Dropout or SpatialDropout1D/2D/3D. "
            f"Received: {type(layer).__name__}"
        )
    noise_shape = _spatial_noise_shape(layer)
    if noise_shape is None and layer.noise_shape is not None:
        noise_shape = tuple(layer.noise_shape)
    return ScheduledDropout(
        float(layer.rate), noise_shape=noise_shape, seed=layer.seed, name=layer.name
    )


def swap_dropout(model, recursive=True):
    """Returns a copy of `model` whose stock Dropout layers are `ScheduledDropout`.

    Works on Sequential and functional models (also nested ones with
    `recursive=True`). Every other layer is *reused*, so the new model shares its
    weights with `model` (train either one, both see the update). The
    `ScheduledDropout` layers keep the rate, noise shape, seed and name of the
    layers they replace, so the new model computes the same function and its
    rates can be scheduled by `DropoutScheduler` / `EarlyDropout` / `LateDropout`
    without retracing, including from 0 (late dropout). Compile the returned model
    before training.

    Args:
        model: A built Sequential or functional `keras.Model`.
        recursive: Also convert inside nested Sequential/functional sub-models.

    Returns:
        A new, uncompiled `keras.Model`.

    Raises:
        ValueError: for subclassed models (their `call` cannot be rewired; build
            them with `ScheduledDropout` directly).

    Example:
    >>> new_model = swap_dropout(model)
    >>> new_model.compile(...)
    >>> new_model.fit(x, y, callbacks=[EarlyDropout(0.1, cutoff_epoch=5)])
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"swap_dropout expects a keras.Model. Received: {type(model).__name__}")
    if not is_graph_model(model):
        raise ValueError(
            f"swap_dropout supports Sequential and functional models; {model.name!r} is a "
            "subclassed model. Use keras_dropouts.layers.ScheduledDropout in its definition."
        )

    def clone(layer):
        if is_convertible(layer):
            return to_scheduled_dropout(layer)
        if recursive and is_graph_model(layer):
            return swap_dropout(layer, recursive=True)
        return layer

    if isinstance(model, keras.Sequential):
        new = keras.Sequential(name=model.name)
        if model.inputs:
            new.add(keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype))
        for layer in model.layers:
            new.add(clone(layer))
        return new
    return keras.models.clone_model(model, clone_function=clone)


__all__ = ["swap_dropout", "to_scheduled_dropout"]
