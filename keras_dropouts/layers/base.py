"""Shared base for layers whose drop rate lives in a non-trainable variable."""

import keras
import numpy as np
from keras import ops

from keras_dropouts._checks import check_rate


class RateLayer(keras.layers.Layer):
    """Base class: a stochastic layer whose `rate` can change inside compiled steps.

    The rate is a float32, non-trainable, non-autocast variable created in
    `__init__`, read inside `call`. Assigning `layer.rate = r` therefore takes effect
    at the next train step of an already compiled (`jit_compile`, `tf.function`)
    model without a retrace. A `SeedGenerator` is always created, even at rate 0, so
    a layer that starts at 0 (late dropout) can be switched on later.

    Args:
        rate: Float in [0, 1], the expected fraction of units dropped.
        seed: Optional int seed for the layer's `SeedGenerator`.
        **kwargs: Base `keras.layers.Layer` arguments (`name`, `dtype`, ...).
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        rate = check_rate(rate)
        if seed is not None and not isinstance(seed, int):
            raise ValueError(f"Argument `seed` must be an int or None. Received: seed={seed!r}")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._rate = self.add_weight(
            name="rate",
            shape=(),
            dtype="float32",
            initializer=keras.initializers.Constant(rate),
            trainable=False,
            autocast=False,
        )
        self.supports_masking = True

    @property
    def rate(self):
        """The current drop rate, a Python float. Assign to change it."""
        # Shortest decimal that round-trips the float32 value: 0.3, not 0.30000001.
        return float(str(np.float32(ops.convert_to_numpy(self._rate.value))))

    @rate.setter
    def rate(self, value):
        self._rate.assign(check_rate(value))

    @property
    def rate_variable(self):
        """The float32 scalar variable that holds the rate (read inside `call`)."""
        return self._rate

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
