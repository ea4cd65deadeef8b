"""Which layers are dropout layers: the one list the callbacks, R-Drop and `swap_dropout` use."""

import keras

from keras_dropouts.layers.base import RateLayer

#: Stock Keras layers whose (Python float) `rate` the callbacks can switch by retracing.
#: `keras.layers.Dropout` includes `SpatialDropout1D/2D/3D`.
STOCK_RATE_TYPES = (keras.layers.Dropout, keras.layers.GaussianDropout, keras.layers.AlphaDropout)

#: Stock layers that `swap_dropout` turns into `ScheduledDropout` (exact types).
CONVERTIBLE_TYPES = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.SpatialDropout3D,
)


def is_package_layer(layer):
    """True for `keras_dropouts` layers: the rate lives in a variable (no retrace needed)."""
    return isinstance(layer, RateLayer)


def is_stock_layer(layer):
    """True for stock Keras dropout layers (rate is a Python float read at trace time)."""
    return isinstance(layer, STOCK_RATE_TYPES) and not isinstance(layer, RateLayer)


def is_convertible(layer):
    """True for the stock layers `swap_dropout` converts (`Dropout`, `SpatialDropout*`)."""
    return type(layer) in CONVERTIBLE_TYPES


def draws_noise(layer):
    """True for every layer that draws random noise in training (R-Drop needs one)."""
    return is_package_layer(layer) or isinstance(layer, (*STOCK_RATE_TYPES, keras.layers.GaussianNoise))
