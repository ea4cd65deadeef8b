"""One layer at a time: stock dropout -> `ScheduledDropout`, foreign drop path -> `DropPath`."""

import keras

from keras_dropouts import _internals
from keras_dropouts.layers.drop_path import DropPath
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


class Converter:
    """Converts the layers `swap_dropout` knows, counting each kind of change.

    `convert(layer)` returns the new layer, or None (not a dropout / drop-path layer,
    or a foreign one whose semantics differ: then it is listed in `kept`).
    """

    def __init__(self):
        self.reset()

    def reset(self):
        """Forgets what was counted (a copy that was started again); returns self."""
        self.counts = {}
        self.kept = []
        return self

    def _count(self, source, target):
        name = type(source).__name__
        if name == target:  # e.g. keras-hub's DropPath -> ours: name the library
            name = f"{type(source).__module__.split('.')[0]}.{name}"
        key = (name, target)
        self.counts[key] = self.counts.get(key, 0) + 1

    def converts(self, layer):
        """True if `convert` would return a new layer for `layer` (nothing counted)."""
        if is_convertible(layer):
            return True
        spec = _internals.foreign_drop_path_spec(layer)
        return spec is not None and spec[2] is None

    def convert(self, layer):
        if is_convertible(layer):
            self._count(layer, "ScheduledDropout")
            return to_scheduled_dropout(layer)
        spec = _internals.foreign_drop_path_spec(layer)
        if spec is None:
            return None
        rate, seed, reason = spec
        if reason is not None:
            self.kept.append(f"{layer.name!r} ({type(layer).__name__}: {reason})")
            return None
        self._count(layer, "DropPath")
        return DropPath(rate, seed=seed, name=layer.name, dtype=layer.dtype_policy)
