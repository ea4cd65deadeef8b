"""Steps per epoch when the `tf.data` input's length is hidden (issue 22 item 9).

Under a multi-process JAX distribution Keras shards a `tf.data` input by
`rebatch -> shard -> prefetch`, and TF no longer knows the length of the result; the
schedule callbacks take the length of the dataset as the user built it. Here the
sharding runs in one process: a `DataParallel` over the host devices that Keras takes
for one process of several (so it shards the input exactly as in a real multi-process
run, with one shard). The real multi-process runs are in tests/test_multi_process.py.
"""

import keras
import numpy as np
import pytest

import keras_dropouts as kd
from keras_dropouts._internals import fit_dataset_cardinality

BACKEND = keras.backend.backend()
SAMPLES, BATCH, EPOCHS = 24, 4, 2
STEPS = SAMPLES // BATCH

pytestmark = pytest.mark.requires("tensorflow")


def _dataset(hide_length=False):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 6)).astype("float32")
    y = rng.normal(size=(SAMPLES, 1)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if hide_length:  # the user's own pipeline hides it: nothing can know it
        ds = ds.filter(lambda x, y: True)
    return ds.batch(BATCH)


def _model():
    inputs = keras.Input((6,))
    x = keras.layers.Dense(8)(inputs)
    x = kd.layers.ScheduledDropout(0.5, seed=1)(x)
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    model.compile(optimizer="sgd", loss="mse")
    return model


@pytest.fixture
def sharding_distribution():
    """A `DataParallel` over two host devices that shards `tf.data` input as one process
    of a multi-process run does."""
    devices = keras.distribution.list_devices("cpu")[:2]
    distribution = keras.distribution.DataParallel(devices=devices)
    distribution._is_multi_process = True  # what Keras sets when it runs on several processes
    keras.distribution.set_distribution(distribution)
    try:
        yield distribution
    finally:
        keras.distribution.set_distribution(None)


class _Rates(keras.callbacks.Callback):
    def __init__(self, layer):
        super().__init__()
        self.layer, self.rates = layer, []

    def on_train_batch_end(self, batch, logs=None):
        _ = self.model  # syncs the JAX state
        self.rates.append(self.layer.rate)


def _fit(model, dataset, callback):
    layer = next(lay for lay in model.layers if isinstance(lay, kd.layers.ScheduledDropout))
    rates = _Rates(layer)
    history = model.fit(dataset, epochs=EPOCHS, callbacks=[callback, rates], shuffle=False, verbose=0)
    return rates.rates, history.history


@pytest.mark.skipif(BACKEND != "jax", reason="Keras shards tf.data input for JAX distributions only")
@pytest.mark.multi_device(2)
def test_sharded_input_has_no_length_for_tf(sharding_distribution):
    # The premise: Keras' sharded input has no length, so `fit` cannot say the steps.
    sharded = sharding_distribution.distribute_dataset(_dataset())
    assert int(sharded.cardinality()) < 0


@pytest.mark.skipif(BACKEND != "jax", reason="Keras shards tf.data input for JAX distributions only")
@pytest.mark.multi_device(2)
@pytest.mark.parametrize(
    "callback",
    [
        lambda: kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.6)),
        lambda: kd.callbacks.EarlyDropout(0.5, cutoff_epoch=1, mode="linear"),
        lambda: kd.callbacks.LateDropout(0.4, start_epoch=1, mode="linear"),
    ],
    ids=["linear_ramp", "early", "late"],
)
def test_epoch_schedules_infer_steps_of_sharded_input(sharding_distribution, callback):
    rates, history = _fit(_model(), _dataset(), callback())
    keras.distribution.set_distribution(None)
    expected_rates, expected_history = _fit(_model(), _dataset(), callback())
    assert len(rates) == EPOCHS * STEPS
    np.testing.assert_allclose(rates, expected_rates, rtol=0, atol=1e-7)
    assert history.keys() == expected_history.keys()


@pytest.mark.skipif(BACKEND != "jax", reason="Keras shards tf.data input for JAX distributions only")
@pytest.mark.multi_device(2)
def test_sharded_input_of_unknown_length_keeps_the_error(sharding_distribution):
    cb = kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.5))
    with pytest.raises(ValueError, match="the number of steps per epoch is unknown"):
        _model().fit(_dataset(hide_length=True), epochs=EPOCHS, callbacks=[cb], verbose=0)


@pytest.mark.parametrize(
    "callback",
    [
        lambda: kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.5)),
        lambda: kd.callbacks.EarlyDropout(0.5, cutoff_epoch=1),
        lambda: kd.callbacks.LateDropout(0.5, start_epoch=1),
    ],
    ids=["linear_ramp", "early", "late"],
)
def test_unknown_length_without_distribution_keeps_the_error(callback):
    # Not sharded by Keras: only the user could say the length.
    with pytest.raises(ValueError, match=r"steps per epoch is unknown.*steps_per_epoch="):
        _model().fit(_dataset(hide_length=True), epochs=EPOCHS, callbacks=[callback()], verbose=0)


@pytest.mark.xfail(
    BACKEND == "tensorflow",
    strict=True,
    reason="Keras 3.15's TensorFlow trainer runs one more step at the end of each epoch of "
    "an unknown-length dataset, which finds no data and still moves optimizer.iterations "
    "(14 after 12 batches): the schedule follows the counter",
)
def test_unknown_length_with_steps_per_epoch_argument_trains():
    cb = kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.6), steps_per_epoch=STEPS)
    rates, _ = _fit(_model(), _dataset(hide_length=True), cb)
    expected = [0.6 * min(step / (EPOCHS * STEPS), 1.0) for step in range(EPOCHS * STEPS)]
    np.testing.assert_allclose(rates, expected, rtol=0, atol=1e-6)


def test_cardinality_is_none_outside_fit():
    assert fit_dataset_cardinality(_model()) is None


class _OwnFit(keras.Model):
    def fit(self, *args, **kwargs):  # a user's own `fit` around Keras'
        return super().fit(*args, **kwargs)


@pytest.mark.skipif(BACKEND != "jax", reason="Keras shards tf.data input for JAX distributions only")
@pytest.mark.multi_device(2)
def test_a_subclass_fit_around_keras_fit_is_looked_through(sharding_distribution):
    base = _model()
    model = _OwnFit(base.inputs, base.outputs)
    model.compile(optimizer="sgd", loss="mse")
    cb = kd.callbacks.DropoutScheduler(kd.schedules.LinearRamp(0.6))
    rates, _ = _fit(model, _dataset(), cb)
    expected = [0.6 * step / (EPOCHS * STEPS) for step in range(EPOCHS * STEPS)]
    np.testing.assert_allclose(rates, expected, rtol=0, atol=1e-6)
