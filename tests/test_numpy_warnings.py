"""No NumPy 2 `DeprecationWarning` ("`__array__` implementation doesn't accept a copy
keyword") from keras_dropouts' host reads of variables: the optimizer's step counter,
`layer.rate`, a schedule's tensor value. (Keras' own log conversion on torch still
emits it; the check counts only warnings raised while our code is on the stack.)"""

import os
import traceback
import warnings

import keras
import numpy as np

import keras_dropouts
from keras_dropouts import schedules
from keras_dropouts.callbacks import DropoutScheduler, EarlyDropout, LateDropout
from keras_dropouts.layers import DropBlock1D, DropPath, ScheduledDropout

PACKAGE_DIR = os.path.dirname(os.path.abspath(keras_dropouts.__file__))


def _our_deprecation_warnings(fn):
    """Runs `fn`; returns the DeprecationWarnings raised with a keras_dropouts frame on
    the stack (as `(message, frame)`)."""
    found = []

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, DeprecationWarning):
            return
        ours = [f for f in traceback.extract_stack() if f.filename.startswith(PACKAGE_DIR)]
        if ours:
            found.append((str(message)[:80], f"{ours[-1].filename}:{ours[-1].lineno}"))

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        fn()
    return found


def _model():
    inputs = keras.Input((8, 4))
    h = DropBlock1D(0.1, 2, seed=1)(inputs)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(16, activation="relu")(h)
    h = ScheduledDropout(0.2, seed=2)(h)
    h = DropPath(0.2, seed=3)(h)
    h = keras.layers.Dropout(0.2, seed=4, name="stock")(h)
    model = keras.Model(inputs, keras.layers.Dense(3)(h))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(16, 8, 4)).astype("float32"), rng.integers(0, 3, 16)


def _host_schedule(step):
    return 0.1 if step < 4 else 0.2  # a Python `if`: evaluated on the host every batch


CALLBACK_SETS = [
    lambda: [DropoutScheduler(schedules.LinearRamp(0.1), layers=DropBlock1D)],
    lambda: [
        EarlyDropout(None, cutoff_epoch=1, layers=ScheduledDropout),
        LateDropout(0.1, start_epoch=1, layers=DropPath, depth_rule=True),
    ],
    lambda: [DropoutScheduler(_host_schedule, layers=ScheduledDropout, log_name="host")],
    # A Keras schedule returns tensors (checked on the host when `fit` starts).
    lambda: [
        DropoutScheduler(
            keras.optimizers.schedules.ExponentialDecay(0.2, 4, 0.5), layers="stock"
        )
    ],
]


def test_scheduled_fit_emits_no_numpy_copy_deprecation():
    x, y = _data()
    for make_callbacks in CALLBACK_SETS:
        model = _model()

        def fit():
            model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=make_callbacks())
            for layer in model.layers:
                if hasattr(layer, "rate"):
                    float(layer.rate)

        assert _our_deprecation_warnings(fit) == []


def test_reading_rates_emits_no_numpy_copy_deprecation():
    layers = [ScheduledDropout(0.3), DropPath(0.25), DropBlock1D(0.1, 2)]

    def read():
        for layer in layers:
            layer.rate = 0.5
            assert layer.rate == 0.5
        assert schedules.check_schedule_value(keras.ops.convert_to_tensor(0.25), "s") == 0.25

    assert _our_deprecation_warnings(read) == []
