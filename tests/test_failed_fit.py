"""A `fit` that raises leaves no schedule behind (issue 22, item 1).

Each case raises from one callback hook during a scheduled `fit` and during the
same `fit` of a twin model (same initial weights) that has no schedule callback.
Afterwards both models must behave alike: the same rates, the model's own train
step, the same log keys, and a new scheduled `fit` that works on both.
"""

import os

import keras
import numpy as np
import pytest

import keras_dropouts as kd

HOOKS = [
    ("on_train_begin", 0),
    ("on_epoch_begin", 1),
    ("on_train_batch_begin", 1),
    ("on_train_batch_end", 1),
    ("on_epoch_end", 0),
    ("on_train_end", None),
]
N, BATCH = 32, 8
BACKEND = keras.backend.backend()
KERAS = tuple(int(v) for v in keras.__version__.split(".")[:2])


def _skip_if_keras_loses_the_state(hook):
    # Keras' JAX `fit` before 3.10 has no `finally` that syncs the state back into
    # the variables: after an exception mid-epoch the model's variables are gone.
    if BACKEND == "jax" and KERAS < (3, 10) and "batch" in hook:
        pytest.skip("Keras < 3.10 on JAX loses the model's state when fit raises mid-epoch")


class Raiser(keras.callbacks.Callback):
    """Raises `error` from `hook` at call `at` (the epoch or batch index)."""

    def __init__(self, hook, at, error):
        super().__init__()
        self.hook, self.at, self.error = hook, at, error

    def _maybe_raise(self, hook, index=None):
        if hook == self.hook and (self.at is None or index is None or index == self.at):
            raise self.error("injected fault")

    def on_train_begin(self, logs=None):
        self._maybe_raise("on_train_begin")

    def on_train_end(self, logs=None):
        self._maybe_raise("on_train_end")

    def on_epoch_begin(self, epoch, logs=None):
        self._maybe_raise("on_epoch_begin", epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._maybe_raise("on_epoch_end", epoch)

    def on_train_batch_begin(self, batch, logs=None):
        self._maybe_raise("on_train_batch_begin", batch)

    def on_train_batch_end(self, batch, logs=None):
        self._maybe_raise("on_train_batch_end", batch)


def _build(kind):
    keras.utils.set_random_seed(7)
    inp = keras.Input((16,))
    h = kd.layers.ScheduledDropout(0.2, seed=1, name="ours")(inp)
    h = keras.layers.Dense(16, activation="relu")(h)
    h = keras.layers.Dropout(0.1, seed=2, name="stock")(h)
    model = keras.Model(inp, keras.layers.Dense(3)(h))
    if kind == "rdrop":
        model = kd.models.RDropModel.from_model(model, alpha=1.0)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _layers(model):
    base = getattr(model, "base_model", model)
    return base.get_layer("ours"), base.get_layer("stock")


def _rates(model):
    ours, stock = _layers(model)
    return ours.rate, float(stock.rate)


def _schedules(model):
    ours, stock = _layers(model)
    return [
        kd.callbacks.LateDropout(0.7, start_step=0, layers=ours),
        kd.callbacks.DropoutScheduler(kd.schedules.Constant(0.4), layers=stock, log_name="stock_rate"),
    ]


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, 16)).astype("float32"), rng.integers(0, 3, N).astype("int32")


def _fit(model, callbacks, epochs=2):
    x, y = _data()
    return model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, shuffle=False, callbacks=callbacks)


def _own_step(model):
    return "train_step" not in model.__dict__ and "make_train_function" not in model.__dict__


def _weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]


def _fail(model, raiser, scheduled):
    callbacks = (_schedules(model) if scheduled else [])
    callbacks = callbacks + [raiser] if raiser.hook == "on_train_begin" else [raiser] + callbacks
    with pytest.raises(raiser.error):
        _fit(model, callbacks)


@pytest.mark.parametrize("kind", ["plain", "rdrop"])
@pytest.mark.parametrize(
    "hook,at,error",
    [(h, a, RuntimeError) for h, a in HOOKS]
    + [("on_train_batch_end", 1, KeyboardInterrupt), ("on_epoch_end", 0, KeyboardInterrupt)],
)
def test_a_failed_scheduled_fit_leaves_nothing_behind(kind, hook, at, error, tmp_path):
    _skip_if_keras_loses_the_state(hook)
    model, twin = _build(kind), _build(kind)
    start = _weights(model)
    np.testing.assert_array_equal(start[0], _weights(twin)[0])
    _fail(model, Raiser(hook, at, error), scheduled=True)
    _fail(twin, Raiser(hook, at, error), scheduled=False)

    # A plain fit: no schedule applies, both train, the model's own step is back.
    logs, twin_logs = _fit(model, []).history, _fit(twin, []).history
    assert set(logs) == set(twin_logs)
    assert _rates(model) == _rates(twin) == (0.2, 0.1)
    assert _own_step(model) and _own_step(twin)
    for m in (model, twin):
        assert any(not np.array_equal(a, b) for a, b in zip(_weights(m), start))

    # evaluate / predict / save and load.
    x, y = _data()
    assert set(model.evaluate(x, y, verbose=0, return_dict=True)) == set(
        twin.evaluate(x, y, verbose=0, return_dict=True)
    )
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert _rates(loaded) == _rates(twin)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded.predict(x, verbose=0)),
        keras.ops.convert_to_numpy(model.predict(x, verbose=0)),
        rtol=1e-6,
        atol=1e-6,
    )

    # A new scheduled fit works on both and ends with the schedule's rates.
    logs, twin_logs = _fit(model, _schedules(model), 1).history, _fit(twin, _schedules(twin), 1).history
    assert set(logs) == set(twin_logs) and {"ours_rate", "stock_rate"} <= set(logs)
    assert _rates(model) == _rates(twin) == (0.7, 0.4)
    assert _own_step(model) and _own_step(twin)


@pytest.mark.parametrize("kind", ["plain", "rdrop"])
def test_a_rate_set_by_hand_after_a_failed_fit_is_kept(kind):
    model = _build(kind)
    _fail(model, Raiser("on_epoch_end", 0, RuntimeError), scheduled=True)
    ours, stock = _layers(model)
    ours.rate = 0.5
    stock.rate = 0.3
    _fit(model, [], epochs=1)
    assert _rates(model) == (0.5, 0.3)
    assert _own_step(model)


def test_an_exception_from_train_on_batch_hooks_is_handled_too():
    # `train_on_batch` after a failed fit builds no schedule into its step either.
    _skip_if_keras_loses_the_state("on_train_batch_end")
    model = _build("plain")
    _fail(model, Raiser("on_train_batch_end", 0, RuntimeError), scheduled=True)
    x, y = _data()
    model.train_on_batch(x[:BATCH], y[:BATCH])
    assert _rates(model) == (0.2, 0.1)
    assert _own_step(model)
