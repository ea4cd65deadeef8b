"""Test set-up: virtual CPU devices for the distribution tests, quiet logs, and markers
with which tests declare what they need from the environment.

* `@pytest.mark.requires("tensorflow", "keras_hub")`: skips (naming what is missing)
  unless every module can be imported. The suite also runs where only one backend
  is installed (`make test` runs it on the oldest supported Keras with JAX alone).
* `@pytest.mark.multi_device(2)`: skips unless the backend can run that many
  data-parallel replicas on host (CPU) devices: JAX's forced host devices (set
  below; they exist even when a GPU is JAX's default backend, so tests must ask for
  `"cpu"` devices), TensorFlow's two logical CPU devices, none on torch.
"""

import importlib.metadata
import importlib.util
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _jax_version():
    try:
        return tuple(int(v) for v in importlib.metadata.version("jax").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


# JAX's persistent compilation cache, for every compile: many tests build the same small
# models, and XLA compiles dominate the JAX suite on CPU (a cache hit returns the same
# executable; tracing and retrace counts are unchanged). Shared by the xdist workers and
# the examples' subprocesses (they inherit the environment), in the checkout (git-ignored;
# a fresh clone starts cold). Only from JAX 0.10 (the test pin), on which the whole suite
# passes with a cold and a warm cache. On JAX 0.4.38 (the oldest-Keras environment) the
# cache can corrupt a variable assigned from a NumPy array that is later freed (plain
# Keras shows it: benchmarks/diag_jax_persistent_cache.py); the package copies its own
# writes (backend/jax/variables.py), but tests and Keras' loading code assign NumPy arrays.
if (_jax_version() or (0, 0)) >= (0, 10):
    _ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(_ROOT, ".jax-cache"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

# Four host devices for JAX DataParallel tests; single-device code still uses device 0.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
).strip()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()

if BACKEND == "tensorflow":
    import tensorflow as tf

    _cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        _cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "requires(*modules): skip unless every named module can be imported"
    )
    config.addinivalue_line(
        "markers", "multi_device(n=2): skip unless n data-parallel host devices are available"
    )


def missing_modules(*modules):
    """The modules of `modules` that cannot be imported here."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def host_devices():
    """Host (CPU) devices the backend can run data-parallel replicas on (0 on torch)."""
    if BACKEND == "jax":
        return len(keras.distribution.list_devices("cpu"))
    if BACKEND == "tensorflow":
        return len(tf.config.list_logical_devices("CPU"))
    return 0


def pytest_runtest_setup(item):
    for marker in item.iter_markers("requires"):
        missing = missing_modules(*marker.args)
        if missing:
            pytest.skip(f"needs {', '.join(missing)} (not installed)")
    marker = item.get_closest_marker("multi_device")
    if marker is not None:
        n = marker.args[0] if marker.args else 2
        have = host_devices()
        if have < n:
            pytest.skip(f"needs {n} data-parallel host devices on {BACKEND}; {have} available")


@pytest.fixture(autouse=True)
def _reset_keras_state():
    # No forced `gc.collect()`: with TensorFlow, torch and JAX imported it takes ~0.2 s,
    # more than most tests (Python's own collector still runs).
    keras.utils.clear_session(free_memory=False)
    keras.config.set_dtype_policy("float32")
    np.random.seed(0)
    yield
    keras.config.set_dtype_policy("float32")


def to_np(x):
    return keras.ops.convert_to_numpy(x)
