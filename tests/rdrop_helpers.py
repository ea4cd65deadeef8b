"""Shared helpers for the RDropModel tests (NumPy references, tiny models)."""

import keras
import numpy as np
from conftest import to_np
from keras import ops


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


def tile_rows(a, m=2):
    """The tiled batch as RDropModel lays it out: each row repeated `m` times in place
    (rows x0, x0, x1, x1, ... for two passes), written independently of the package."""
    return ops.repeat(a, m, axis=0)


def pass_rows(a, m=2):
    """The `m` single-pass parts of a tiled NumPy array: pass k is rows k, k + m, ..."""
    return [a[k::m] for k in range(m)]


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


@keras.saving.register_keras_serializable(package="test_rdrop")
class CopyNoise(keras.layers.GaussianNoise):
    """Deterministic 'noise' that differs between the R-Drop copies of a batch.

    Row r of a tiled batch belongs to copy r % 2 (interleaved rows, `tile_rows`);
    the second copy is perturbed by a fixed function of x. Same 'masks' on any
    device layout and for any model that tiles the batch the same way.
    """

    def call(self, x, training=False):
        if not training:
            return x
        n = keras.ops.shape(x)[0]
        copy = keras.ops.cast(keras.ops.arange(n) % 2, x.dtype)[:, None]
        return x * (1.0 + 0.5 * copy * keras.ops.cos(3.0 * x))


def noise_mlp(n_in=8, n_out=3):
    """An MLP whose only randomness is `CopyNoise` (the same 'masks' in every model)."""
    inputs = keras.Input((n_in,))
    h = keras.layers.Dense(16, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(1))(inputs)
    h = CopyNoise(0.1)(h)
    out = keras.layers.Dense(n_out, kernel_initializer=keras.initializers.GlorotUniform(2))(h)
    return inputs, out


class HandTiled(keras.Model):
    """The reference R-Drop must match with alpha=0: a functional model that tiles its
    batch twice inside `fit`'s step (the same interleaved rows, `tile_rows`) and applies
    the compiled loss to both copies."""

    def train_step(self, *args, **kwargs):
        self._tiling = True
        try:
            return super().train_step(*args, **kwargs)
        finally:
            self._tiling = False

    def call(self, inputs, training=None, mask=None):
        if training and getattr(self, "_tiling", False):
            inputs = tile_rows(inputs)
        return super().call(inputs, training=training, mask=mask)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if training and getattr(self, "_tiling", False):
            y = tile_rows(y)
            if sample_weight is not None:
                sample_weight = tile_rows(sample_weight)
        return super().compute_loss(x, y, y_pred, sample_weight, training=training)
