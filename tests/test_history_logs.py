"""`History` has one entry per epoch under every key: RDropModel's options and the
schedule callbacks never log a key in some epochs only."""

import keras
import numpy as np
import pytest
from rdrop_helpers import data, mlp, noise_mlp

from keras_dropouts import schedules
from keras_dropouts.callbacks import DropoutScheduler, EarlyDropout, LateDropout
from keras_dropouts.layers import DropPath, ScheduledDropout
from keras_dropouts.models import RDropModel

EPOCHS = 3
BATCH = 4


def _assert_one_entry_per_epoch(history, expected_keys):
    lengths = {key: len(values) for key, values in history.history.items()}
    assert set(lengths) == set(expected_keys), lengths
    assert all(n == EPOCHS for n in lengths.values()), lengths


def _rdrop(**kwargs):
    model = RDropModel(*mlp(rate=0.3), alpha=1.0, **kwargs)
    model.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    return model


@pytest.mark.parametrize(
    "consistency_every,steps,log_consistency,passes",
    [
        (1, 4, True, 2),
        (1, 4, False, 2),
        (2, 4, True, 2),  # an even number of steps: the key never appeared
        (2, 4, False, 2),
        (2, 3, True, 2),
        (3, 5, True, 2),
        (3, 5, False, 2),
        (1, 4, True, 3),
        (2, 4, True, 3),
        (3, 5, False, 3),
    ],
)
def test_rdrop_history_has_every_key_every_epoch(consistency_every, steps, log_consistency, passes):
    x, y = data(BATCH * steps)
    model = _rdrop(
        consistency_every=consistency_every, log_consistency=log_consistency, passes=passes
    )
    history = model.fit(
        x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0, shuffle=False,
        validation_data=(x[:BATCH], y[:BATCH]),
    )
    keys = {"loss", "accuracy", "val_loss", "val_accuracy"}
    if log_consistency:
        keys.add("consistency_loss")  # training only: validation has no consistency term
    _assert_one_entry_per_epoch(history, keys)
    for values in history.history.values():
        assert np.all(np.isfinite(values))


def _frozen_rdrop(consistency_every):
    # Deterministic 'masks' (CopyNoise) and a learning rate of 0: every R-Drop step on
    # the same batch adds the same consistency term.
    model = RDropModel(*noise_mlp(), alpha=1.0, consistency_every=consistency_every)
    model.compile(
        keras.optimizers.SGD(0.0), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


def _same_batch(steps):
    x, y = data(BATCH)
    return np.tile(x, (steps, 1)), np.tile(y, steps)


@pytest.mark.parametrize("consistency_every,steps", [(2, 4), (2, 3), (3, 5)])
def test_consistency_loss_is_the_mean_over_the_rdrop_steps(consistency_every, steps):
    x, y = _same_batch(steps)
    reference = _frozen_rdrop(1).fit(
        x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False
    ).history["consistency_loss"][0]
    assert reference > 0
    model = _frozen_rdrop(consistency_every)
    model.set_weights(_frozen_rdrop(1).get_weights())
    logged = model.fit(
        x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0, shuffle=False
    ).history["consistency_loss"]
    # Plain steps do not count (as zeros or otherwise): every epoch has an R-Drop step.
    np.testing.assert_allclose(logged, [reference] * EPOCHS, rtol=1e-5)


def test_consistency_loss_of_an_epoch_without_rdrop_step_is_zero():
    # consistency_every=3 with one step per epoch: only epoch 1 runs R-Drop. The later
    # epochs still log the key, as Keras' `Mean` of no values: 0.
    x, y = _same_batch(1)
    model = _frozen_rdrop(3)
    logged = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0).history[
        "consistency_loss"
    ]
    assert logged[0] > 0
    assert logged[1:] == [0.0, 0.0]


def test_rdrop_evaluate_logs_no_consistency_loss():
    x, y = data(BATCH * 4)
    model = _rdrop(consistency_every=2)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    logs = model.evaluate(x, y, batch_size=BATCH, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "accuracy"}


def _scheduled_model(stock=False):
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu")(inputs)
    h = ScheduledDropout(0.2, seed=1)(h)
    h = DropPath(0.2, seed=2)(h)
    if stock:
        h = keras.layers.Dropout(0.2, seed=3)(h)
    return inputs, keras.layers.Dense(3)(h)


CALLBACKS = {
    "scheduler": (lambda: DropoutScheduler(schedules.LinearRamp(0.1)), "dropout_rate"),
    "scheduler_relative": (
        lambda: DropoutScheduler(schedules.LinearRamp(1.0), relative=True), "dropout_rate"
    ),
    "early_stock": (
        # Two distinct rates: the stock layer is retraced once.
        lambda: EarlyDropout(0.2, cutoff_epoch=1, layers=keras.layers.Dropout),
        "dropout_rate",
    ),
    "early": (lambda: EarlyDropout(0.2, cutoff_epoch=1), "early_dropout_rate"),
    "early_own_rate": (lambda: EarlyDropout(None, cutoff_epoch=1.5), "early_dropout_rate"),
    "late": (lambda: LateDropout(0.2, start_epoch=1), "late_dropout_rate"),
    "late_drop_path": (
        lambda: LateDropout(0.2, start_epoch=1, layers=DropPath, depth_rule=True),
        "drop_path_rate",
    ),
}


@pytest.mark.parametrize("rdrop", [False, True])
@pytest.mark.parametrize("name", sorted(CALLBACKS))
def test_callback_history_has_every_key_every_epoch(name, rdrop):
    make_callback, key = CALLBACKS[name]
    args = _scheduled_model(stock=name == "early_stock")
    if rdrop:
        model = RDropModel(*args, alpha=1.0, consistency_every=2)
    else:
        model = keras.Model(*args)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(BATCH * 4)
    history = model.fit(
        x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0, callbacks=[make_callback()],
        validation_data=(x[:BATCH], y[:BATCH]),
    )
    keys = {"loss", "val_loss", key}
    if rdrop:
        keys.add("consistency_loss")
    _assert_one_entry_per_epoch(history, keys)
