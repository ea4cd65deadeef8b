"""Behaviour every package layer shares: config, saving, dtypes, compiled rate changes,
independent masks across replicas."""

import keras
import numpy as np
import pytest
from conftest import BACKEND, to_np

import keras_dropouts as kd

# (factory, input shape without batch)
LAYERS = {
    "DropBlock1D": (lambda r, s=None: kd.layers.DropBlock1D(r, 3, seed=s), (16, 4)),
    "DropBlock2D": (lambda r, s=None: kd.layers.DropBlock2D(r, (3, 2), seed=s), (10, 8, 4)),
    "DropBlock3D": (lambda r, s=None: kd.layers.DropBlock3D(r, 2, seed=s), (6, 6, 6, 2)),
    "ProbDropBlock1D": (lambda r, s=None: kd.layers.ProbDropBlock1D(r, 3, seed=s), (16, 4)),
    "ProbDropBlock2D": (
        lambda r, s=None: kd.layers.ProbDropBlock2D(r, 3, seed=s, per_channel=False),
        (10, 8, 4),
    ),
    "ProbDropBlock3D": (lambda r, s=None: kd.layers.ProbDropBlock3D(r, 2, seed=s), (6, 6, 6, 2)),
    "DropPath": (lambda r, s=None: kd.layers.DropPath(r, seed=s), (5, 3)),
    "ScheduledDropout": (lambda r, s=None: kd.layers.ScheduledDropout(r, seed=s), (12,)),
}
NAMES = sorted(LAYERS)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip_keeps_config_and_rate(name, tmp_path):
    make, shape = LAYERS[name]
    layer = make(0.25, 7)
    model = keras.Sequential([keras.Input(shape), layer])
    layer.rate = 0.4
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path).layers[0]
    assert type(loaded) is type(layer)
    assert loaded.rate == 0.4
    config, loaded_config = layer.get_config(), loaded.get_config()
    config.pop("name"), loaded_config.pop("name")
    assert loaded_config == config
    x = np.random.rand(2, *shape).astype("float32")
    np.testing.assert_array_equal(to_np(loaded(x)), x)


@pytest.mark.parametrize("name", NAMES)
def test_compute_output_shape(name):
    make, shape = LAYERS[name]
    layer = make(0.1)
    assert layer.compute_output_shape((None,) + shape) == (None,) + shape
    out = layer(np.ones((3,) + shape, "float32"), training=True)
    assert tuple(out.shape) == (3,) + shape


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", NAMES)
def test_low_precision_inputs_keep_dtype_and_mean(name, dtype):
    make, shape = LAYERS[name]
    keras.config.set_dtype_policy(f"mixed_{dtype}")
    layer = make(0.2, 3)
    x = keras.ops.ones((64,) + shape, dtype=dtype)
    y = layer(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == dtype
    y = to_np(keras.ops.cast(y, "float32"))
    assert np.isfinite(y).all()
    assert (y == 0).any()
    # x * scale is computed in float32 and rounded to the input dtype: 3 significant digits
    if name.startswith(("DropBlock", "ProbDropBlock")):
        np.testing.assert_allclose(y.mean(), 1.0, rtol=1e-2)
    assert layer.rate_variable.dtype == "float32"


class _Probe(keras.layers.Layer):
    """Fraction of zeros per sample; counts how often it is traced."""

    traces = 0

    def call(self, x):
        _Probe.traces += 1
        zeros = keras.ops.cast(keras.ops.equal(x, 0), "float32")
        return keras.ops.mean(keras.ops.reshape(zeros, (keras.ops.shape(x)[0], -1)), -1, True)


def _probe_model(layer, shape):
    inputs = keras.Input(shape)
    scale = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")
    frac = _Probe()(layer(inputs))
    return keras.Model(inputs, keras.layers.Add()([frac, scale(keras.layers.Flatten()(inputs))]))


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("name", ["DropBlock2D", "ProbDropBlock1D", "DropPath", "ScheduledDropout"])
def test_rate_change_reaches_compiled_step_without_retrace(name, jit_compile):
    if BACKEND == "torch" and jit_compile:
        pytest.skip("torch jit_compile (torch.compile) is not needed for this property")
    make, shape = LAYERS[name]
    layer = make(0.0, 1)
    model = _probe_model(layer, shape)
    # Loss: mean absolute error against 0 == fraction of zeros (the Dense weight stays 0).
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mae", jit_compile=jit_compile)
    x = np.ones((256,) + shape, "float32")
    y = np.zeros((256, 1), "float32")
    fracs, traces = [], []
    for rate in (0.0, 0.5, 0.2, 0.0):
        layer.rate = rate
        fracs.append(model.fit(x, y, batch_size=256, epochs=1, verbose=0).history["loss"][-1])
        traces.append(_Probe.traces)
    assert fracs[0] == 0.0 and fracs[3] == 0.0
    assert 0.3 < fracs[1] < 0.7 and 0.08 < fracs[2] < 0.32
    eager = BACKEND == "torch" or (BACKEND == "jax" and not jit_compile)
    if not eager:
        # The first fit traces (JAX also runs a shape pass); later rates reuse it.
        assert traces[0] == traces[-1], traces


@pytest.mark.parametrize("name", NAMES)
def test_seed_generator_exists_at_rate_zero_and_layer_switches_on(name):
    make, shape = LAYERS[name]
    layer = make(0.0, 1)
    x = np.ones((64,) + shape, "float32")
    np.testing.assert_array_equal(to_np(layer(x, training=True)), x)
    layer.rate = 0.5
    assert (to_np(layer(x, training=True)) == 0).any()


def _masks_on_replicas_differ_jax(layer, shape):
    import jax

    # Host devices (forced to 4 in conftest), also when a GPU is JAX's default.
    devices = jax.devices("cpu")
    if len(devices) < 2:
        pytest.skip("needs 2 JAX host devices (XLA_FLAGS set in conftest)")
    mesh = keras.distribution.DeviceMesh((len(devices),), ["batch"], devices)
    dist = keras.distribution.DataParallel(device_mesh=mesh)
    with dist.scope():
        inputs = keras.Input(shape)
        model = keras.Model(inputs, layer(inputs))
    # 32 samples a replica: DropPath at 0.5 leaves a replica without a drop w.p. 2**-32.
    x = np.ones((32 * len(devices),) + shape, "float32")
    # Shard the batch directly: Keras 3.8's `distribute_dataset` takes only tf.data.
    sharding = jax.sharding.NamedSharding(
        jax.sharding.Mesh(np.array(devices), ("batch",)), jax.sharding.PartitionSpec("batch")
    )
    keras.distribution.set_distribution(dist)
    try:
        y = to_np(jax.jit(lambda v: model(v, training=True))(jax.device_put(x, sharding)))
    finally:
        keras.distribution.set_distribution(None)
    return y.reshape(len(devices), -1)


def _masks_on_replicas_differ_tf(layer, shape):
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
    with strategy.scope():
        inputs = keras.Input(shape)
        model = keras.Model(inputs, layer(inputs))
    x = tf.ones((8,) + shape)

    @tf.function
    def step():
        return strategy.run(lambda: model(x, training=True))

    per_replica = strategy.experimental_local_results(step())
    return np.stack([r.numpy().reshape(-1) for r in per_replica])


@pytest.mark.parametrize("name", ["DropBlock2D", "ProbDropBlock2D", "DropPath", "ScheduledDropout"])
def test_independent_masks_across_replicas(name):
    make, shape = LAYERS[name]
    if BACKEND == "jax":
        per_replica = _masks_on_replicas_differ_jax(make(0.5, 1), shape)
    elif BACKEND == "tensorflow":
        per_replica = _masks_on_replicas_differ_tf(make(0.5, 1), shape)
    else:
        pytest.skip("torch has no multi-replica execution in Keras")
    assert len(per_replica) >= 2
    zeros = per_replica == 0
    assert zeros.any(axis=1).all()
    for i in range(1, len(zeros)):
        assert not np.array_equal(zeros[0], zeros[i])
