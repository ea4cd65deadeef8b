"""ScheduledDropout: `keras.layers.Dropout` with a rate that can change while compiled."""

import keras

from keras_dropouts import _checks
from keras_dropouts.layers.base import RateLayer
from keras_dropouts.ops.dropout import _dropout


@keras.saving.register_keras_serializable(package="keras_dropouts")
class ScheduledDropout(RateLayer):
    """Drop-in replacement for `keras.layers.Dropout` whose rate can be scheduled.

    Behaves like `keras.layers.Dropout` (inverted dropout, identity at inference,
    the same argument checks and error messages), but the rate is held in a
    variable, so callbacks such as `EarlyDropout` change it inside an already
    compiled train step (XLA / jit) without retracing, and a layer created with
    `rate=0` can be switched on later.

    Args:
        rate: Float in [0, 1], the fraction of input units to drop.
        noise_shape: Optional tuple of positive ints or None, the shape of the
            binary mask: the input's rank, each entry None (taken from the input),
            1 (mask shared along that axis) or the input's size on that axis.
        seed: Optional int seed.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Floating-point input tensor of any rank.
        training: Python bool; dropout is applied only when True.

    Example:
    >>> layer = ScheduledDropout(0.1)
    >>> layer.rate = 0.3  # takes effect at the next compiled step
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        self.noise_shape = _checks.check_noise_shape(noise_shape)
        self._build_at_construction()

    def call(self, inputs, training=False):
        self._check_inputs(inputs)
        if self.noise_shape is not None:
            _checks.check_noise_shape_for(self.noise_shape, inputs)
        if not training:
            return inputs
        return _dropout(inputs, self.rate_source, self.noise_shape, self.seed_generator)

    def get_config(self):
        config = super().get_config()
        config["noise_shape"] = self.noise_shape
        return config
