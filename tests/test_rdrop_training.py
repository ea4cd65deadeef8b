"""RDropModel inside fit: agreement, precision policies, compilation, distribution."""

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_np
from rdrop_helpers import CopyNoise, data, log_softmax, mlp, sym_kl

from keras_dropouts.models import RDropModel


def _digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype("float32"), y


def _pass_disagreement(base, x, n=4):
    outs = [to_np(base(x, training=True)) for _ in range(n)]
    return np.mean([sym_kl(log_softmax(outs[i]), log_softmax(outs[i + 1])).mean() for i in range(n - 1)])


def test_larger_alpha_makes_passes_agree_more():
    x, y = _digits()
    xtr, ytr, xte = x[:512], y[:512], x[1000:1300]
    results = {}
    init = None
    for alpha in (0.0, 4.0):
        inputs = keras.Input((64,))
        h = keras.layers.Dense(48, activation="relu")(inputs)
        h = keras.layers.Dropout(0.5)(h)
        model = RDropModel(inputs, keras.layers.Dense(10)(h), alpha=alpha)
        if init is None:
            init = model.get_weights()
        model.set_weights(init)
        model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(xtr, ytr, batch_size=64, epochs=4, verbose=0, shuffle=False)
        results[alpha] = _pass_disagreement(model.base_model, xte)
    # Measured ~0.5x; 4 pairs of 300 samples make the estimate tight.
    assert results[4.0] < 0.75 * results[0.0], results


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    x, y = data()
    model = RDropModel(*mlp(rate=0.3), alpha=1.0)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logs = model.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0]) and np.isfinite(logs["consistency_loss"][0])
    assert logs["consistency_loss"][0] > 0
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert keras.backend.standardize_dtype(model.predict(x, verbose=0).dtype) in ("float16", "bfloat16", "float32")


def test_jit_compile_and_steps_per_execution():
    x, y = data(64)
    jit = BACKEND != "torch"  # torch.compile of a step takes minutes on 2 CPU cores
    model = RDropModel(*mlp(rate=0.3), alpha=1.0)
    model.compile(
        "sgd",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit,
        steps_per_execution=1 if BACKEND == "torch" else 2,  # torch allows only 1
    )
    logs = model.fit(x, y, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0]) and logs["consistency_loss"][0] > 0


def _noise_model():
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(1))(inputs)
    h = CopyNoise(0.1)(h)
    out = keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(2))(h)
    model = RDropModel(inputs, out, alpha=2.0)
    model.compile(keras.optimizers.SGD(0.5), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _one_step(model, x, y):
    logs = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False).history
    return logs, [to_np(w) for w in model.get_weights()]


@pytest.mark.multi_device(4 if BACKEND == "jax" else 2)
def test_distributed_equals_single_device():
    x, y = data(16)
    single = _noise_model()
    init = single.get_weights()
    if BACKEND == "jax":
        import jax

        # The reference on a host device too: a GPU's float32 matmuls differ by ~1e-4.
        with jax.default_device(jax.devices("cpu")[0]):
            ref_logs, ref_w = _one_step(single, x, y)
    else:
        ref_logs, ref_w = _one_step(single, x, y)
    assert ref_logs["consistency_loss"][0] > 1e-4
    if BACKEND == "jax":
        # Host devices (forced in conftest), also where a GPU is JAX's default.
        devices = keras.distribution.list_devices("cpu")[:4]
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        try:
            dist = _noise_model()
            dist.set_weights(init)
            logs, w = _one_step(dist, x, y)
        finally:
            keras.distribution.set_distribution(None)
    else:
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        assert strategy.num_replicas_in_sync == 2
        with strategy.scope():
            dist = _noise_model()
            dist.set_weights(init)
        logs, w = _one_step(dist, x, y)
    for key in ("loss", "consistency_loss"):
        np.testing.assert_allclose(logs[key][0], ref_logs[key][0], rtol=1e-5)
    for a, b in zip(w, ref_w):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
