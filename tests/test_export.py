"""`model.export()` (SavedModel) of models with keras_dropouts layers, and of RDropModel.

The exported artifact serves with a free batch size, matches `model.predict` exactly,
and our layers are the identity in it (inference graph). JAX and TensorFlow export
through TensorFlow; the tests skip where it is not installed and on torch.
"""

import numpy as np
import pytest

import keras

from keras_dropouts.layers import (
    DropBlock1D,
    DropBlock2D,
    DropBlock3D,
    DropPath,
    ProbDropBlock1D,
    ProbDropBlock2D,
    ProbDropBlock3D,
    ScheduledDropout,
)
from keras_dropouts.models import RDropModel

pytestmark = pytest.mark.skipif(
    keras.backend.backend() == "torch", reason="SavedModel export is tested on JAX and TensorFlow"
)

LAYERS = {
    "DropBlock1D": (lambda: DropBlock1D(0.3, 3, seed=1), (8, 4)),
    "DropBlock2D": (lambda: DropBlock2D(0.3, 3, seed=1), (8, 8, 4)),
    "DropBlock3D": (lambda: DropBlock3D(0.3, 2, seed=1), (4, 4, 4, 2)),
    "DropBlock2D_shared": (lambda: DropBlock2D(0.3, 3, per_channel=False, seed=1), (8, 8, 4)),
    "ProbDropBlock1D": (lambda: ProbDropBlock1D(0.3, 3, seed=1), (8, 4)),
    "ProbDropBlock2D": (lambda: ProbDropBlock2D(0.3, 3, seed=1), (8, 8, 4)),
    "ProbDropBlock3D": (lambda: ProbDropBlock3D(0.3, 2, seed=1), (4, 4, 4, 2)),
    "DropPath": (lambda: DropPath(0.3, seed=1), (6,)),
    "DropPath_rank4": (lambda: DropPath(0.3, seed=1), (4, 4, 3)),
    "ScheduledDropout": (lambda: ScheduledDropout(0.3, seed=1), (6,)),
}


def _serve(path, x):
    tf = pytest.importorskip("tensorflow")
    artifact = tf.saved_model.load(path)
    return np.asarray(artifact.serve(tf.constant(x)))


def _model(make_layer, shape):
    # Rescaling by 2 is exact in float32, so "identity" can be checked bit for bit.
    inputs = keras.Input(shape)
    outputs = keras.layers.Rescaling(2.0)(make_layer()(inputs))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_export_serves_any_batch_size_and_matches_predict(name, tmp_path):
    pytest.importorskip("tensorflow")
    make_layer, shape = LAYERS[name]
    model = _model(make_layer, shape)
    path = str(tmp_path / "exported")
    model.export(path, verbose=False)
    rng = np.random.default_rng(0)
    for batch in (3, 5):
        x = rng.standard_normal((batch,) + shape).astype("float32")
        served = _serve(path, x)
        assert served.shape == (batch,) + shape
        np.testing.assert_array_equal(served, model.predict(x, verbose=0))
        # Our layer is the identity in the exported (inference) graph.
        np.testing.assert_array_equal(served, 2.0 * x)


def test_export_after_fit_with_masked_sequence(tmp_path):
    pytest.importorskip("tensorflow")
    inputs = keras.Input((7,), dtype="int32")
    h = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    h = ProbDropBlock1D(0.3, 2, seed=1)(h)
    h = DropBlock1D(0.3, 2, seed=2)(h)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).integers(0, 10, (8, 7)).astype("int32")
    model.fit(x, np.zeros((8, 2), "float32"), epochs=1, verbose=0)
    path = str(tmp_path / "exported")
    model.export(path, verbose=False)
    for batch in (2, 5):
        np.testing.assert_allclose(
            _serve(path, x[:batch]), model.predict(x[:batch], verbose=0), rtol=1e-6, atol=1e-6
        )


def _rdrop():
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu")(inputs)
    h = DropPath(0.3, seed=1)(ScheduledDropout(0.3, seed=2)(h))
    model = RDropModel(inputs, keras.layers.Dense(3)(h), alpha=1.0)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_rdrop_model_exports_its_base_model(tmp_path):
    pytest.importorskip("tensorflow")
    model = _rdrop()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 8)).astype("float32")
    model.fit(x, rng.integers(0, 3, 16), epochs=1, batch_size=8, verbose=0)
    path = str(tmp_path / "exported")
    model.export(path, verbose=False)
    for batch in (3, 7):
        served = _serve(path, x[:batch])
        assert served.shape == (batch, 3)
        np.testing.assert_allclose(
            served, model.predict(x[:batch], verbose=0), rtol=1e-6, atol=1e-6
        )
        np.testing.assert_allclose(
            served, model.base_model.predict(x[:batch], verbose=0), rtol=1e-6, atol=1e-6
        )


def test_rdrop_model_export_before_fit(tmp_path):
    # A functional RDropModel is built at construction: it exports without a call.
    pytest.importorskip("tensorflow")
    model = _rdrop()
    path = str(tmp_path / "exported")
    model.export(path, verbose=False)
    x = np.ones((2, 8), "float32")
    np.testing.assert_allclose(
        _serve(path, x), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )
