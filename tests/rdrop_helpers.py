"""Shared helpers for the RDropModel tests (NumPy references, tiny models)."""

import keras
import numpy as np
from conftest import to_np


def log_softmax(a):
    a = np.asarray(a, "float64")
    a = a - a.max(-1, keepdims=True)
    return a - np.log(np.exp(a).sum(-1, keepdims=True))


def sym_kl(lp, lq):
    p, q = np.exp(lp), np.exp(lq)
    return 0.5 * ((p * (lp - lq)).sum(-1) + (q * (lq - lp)).sum(-1))


def sparse_ce(logits, y):
    lp = log_softmax(logits)
    return -np.take_along_axis(lp, np.asarray(y)[..., None], axis=-1)[..., 0]


def mlp(n_in=8, n_out=3, rate=0.3, activation=None, seed=0):
    inputs = keras.Input((n_in,))
    h = keras.layers.Dense(16, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(seed))(inputs)
    if rate:
        h = keras.layers.Dropout(rate, seed=seed)(h)
    init = keras.initializers.GlorotUniform(seed + 1)
    out = keras.layers.Dense(n_out, activation=activation, kernel_initializer=init)(h)
    return inputs, out


def two_pass(model, x, y, sample_weight=None):
    """One R-Drop forward + compute_loss, eagerly, through the model's own hooks."""
    model._rdrop_in_train_step = True
    try:
        y_pred = model(x, training=True)
        model.consistency_tracker.reset_state()
        loss = model.compute_loss(x, y, y_pred, sample_weight, training=True)
        cons = model.consistency_tracker.result()
    finally:
        model._rdrop_in_train_step = False
    return keras.tree.map_structure(to_np, y_pred), float(to_np(loss)), float(to_np(cons))


def data(n=32, n_in=8, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n_in)).astype("float32"), rng.integers(0, n_out, n)
