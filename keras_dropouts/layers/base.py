"""Shared base for layers whose drop rate lives in a non-trainable variable."""

import weakref

import keras
import numpy as np

from keras_dropouts import _checks
from keras_dropouts._checks import check_rate
from keras_dropouts.backend import variables as backend_variables


# Counts `layer.rate = ...` assignments per layer: a schedule whose `fit` failed puts
# back the rate of before the fit only where the user has not set one since.
_WRITES = weakref.WeakKeyDictionary()


def rate_writes(layer):
    """How often `layer.rate = ...` was assigned (0 for a layer never assigned)."""
    return _WRITES.get(layer, 0)


# During a scheduled `fit`, layers that share a schedule read the rate variable of one
# of them (the group's leader), so the compiled step writes one rate per group, not
# one per layer (see docs/architecture.md, "How a rate travels").
_LINKS = weakref.WeakKeyDictionary()


def link_rate(layer, variable):
    """Makes `layer` read its rate from `variable` (another layer's rate variable)."""
    _LINKS[layer] = variable


def unlink_rates(layers, keep_value=True):
    """Makes each of `layers` read its own rate variable again; with `keep_value`, that
    variable first takes the value of the variable it was linked to (one batched write
    per linked variable, not one device op per layer)."""
    by_source = {}
    for layer in layers:
        variable = _LINKS.pop(layer, None)
        if variable is not None:
            by_source.setdefault(id(variable), (variable, []))[1].append(layer.rate_variable)
    if keep_value:
        for variable, targets in by_source.values():
            backend_variables.fill(targets, variable.value)


def read_rates(layers):
    """The current rates of `layers` as Python floats, as `layer.rate` gives them; the
    package layers' rates in one read (one device-to-host transfer)."""
    package = [k for k, layer in enumerate(layers) if isinstance(layer, RateLayer)]
    values = backend_variables.read_scalars([layers[k].rate_source for k in package])
    rates = [None] * len(layers)
    for k, value in zip(package, values):
        rates[k] = _as_rate(value)
    for k, layer in enumerate(layers):
        if rates[k] is None:
            rates[k] = float(layer.rate)
    return rates


def _as_rate(value):
    # Shortest decimal that round-trips the float32 value: 0.3, not 0.30000001.
    return float(str(np.float32(value)))


class RateLayer(keras.layers.Layer):
    """Base class: a stochastic layer whose `rate` can change inside compiled steps.

    The rate is a float32, non-trainable, non-autocast variable created in
    `__init__`, read inside `call`. Assigning `layer.rate = r` therefore takes effect
    at the next train step of an already compiled (`jit_compile`, `tf.function`)
    model without a retrace. A `SeedGenerator` is always created, even at rate 0, so
    a layer that starts at 0 (late dropout) can be switched on later.

    Arguments are checked like `keras.layers.Dropout` checks its own, with Keras'
    message style ("Invalid value received for argument `rate`. Expected a float value
    between 0 and 1. Received: rate=..."); inputs must be floating point.

    Args:
        rate: Float in [0, 1], the expected fraction of units dropped (a Python or
            NumPy number, or a concrete 0-d tensor; bools, strings and symbolic
            tensors are rejected).
        seed: Optional int seed for the layer's `SeedGenerator`.
        **kwargs: Base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Example:

    ```python
    class HalfDropout(kd.layers.RateLayer):
        # Half the layer's rate, read inside `call`: no retrace.

        def call(self, inputs, training=False):
            if not training:
                return inputs
            rate = self.rate_source * 0.5
            return kd.ops.dropout(inputs, rate, seed=self.seed_generator)

    layer = HalfDropout(0.2)
    layer.rate = 0.4  # the next train step drops 20% of the units
    ```
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        rate = check_rate(rate)
        self.seed = _checks.check_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self._rate = self.add_weight(
            name="rate",
            shape=(),
            dtype="float32",
            initializer=keras.initializers.Constant(rate),
            trainable=False,
            autocast=False,
        )
        # The schedule a callback installs, in the two-knot form of
        # `keras_dropouts.schedules` (a, b, v0, v1): read inside the compiled train
        # step, so a new schedule is a variable write, never a retrace. Not saved.
        self._rate_schedule = self.add_weight(
            name="rate_schedule",
            shape=(4,),
            dtype="float32",
            initializer=keras.initializers.Constant([0.0, 0.0, rate, rate]),
            trainable=False,
            autocast=False,
        )
        self.configured_rate = rate
        self.supports_masking = True

    @property
    def rate(self):
        """The current drop rate, a Python float. Assign to change it."""
        return _as_rate(_checks.to_python_scalar(self.rate_source.value))

    @rate.setter
    def rate(self, value):
        backend_variables.write(self._rate, check_rate(value))
        _WRITES[self] = _WRITES.get(self, 0) + 1

    @property
    def rate_variable(self):
        """The float32 scalar variable that holds the rate (read inside `call`)."""
        return self._rate

    @property
    def rate_source(self):
        """The variable `call` reads the rate from: `rate_variable`, or during a
        scheduled `fit` the rate variable of the layer whose schedule it shares."""
        return _LINKS.get(self, self._rate)

    @property
    def rate_schedule_variable(self):
        """The float32 (4,) variable `(a, b, v0, v1)` of the schedule installed by a
        `keras_dropouts` callback (see `keras_dropouts.schedules.two_knots`)."""
        return self._rate_schedule

    def save_own_variables(self, store):
        # Only the rate is state worth saving; the schedule is reinstalled by `fit`.
        store["0"] = self.rate_source

    def load_own_variables(self, store):
        backend_variables.write(self._rate, store["0"])

    def _build_at_construction(self):
        """Marks a layer without a `build` method built, as `keras.layers.Dropout` does
        at the end of its constructor (through the public `build`; a subclass that
        defines its own `build` is built on first call as usual)."""
        if type(self).build is keras.layers.Layer.build:
            self.build(None)

    def _check_inputs(self, inputs):
        """Static checks of the call input: a floating dtype (no tensor values read)."""
        _checks.check_float_dtype(inputs, "inputs", type(self).__name__)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_mask(self, inputs, mask=None):
        return mask

    def get_config(self):
        config = super().get_config()
        # The constructor's rate: schedules scale it (`relative=True`, `rate=None`);
        # the current value is a weight and is saved with the weights.
        config.update({"rate": self.configured_rate, "seed": self.seed})
        return config
