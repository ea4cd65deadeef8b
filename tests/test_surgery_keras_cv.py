"""`swap_dropout` on keras-cv's drop-path layers, recognised by type.

keras-cv 0.9 cannot be imported beside keras-hub 0.32 (its package `__init__` imports
tensorflow-datasets, whose dependencies conflict with keras-hub's), so `make venv`
installs its files without dependencies and this module loads its two regularisation
layers from their own source files under their real module names. Those files need
three names from keras-cv's package: `keras_cv_export` (a registration decorator) and
the `keras` / `ops` / `random` of `keras_cv.src.backend`, which under Keras 3 are
Keras' own `keras`, `keras.ops` and `keras.random`.
"""

import importlib.util
import os
import sys
import types

import keras
import numpy as np
import pytest
from conftest import to_np

import keras_dropouts as kd
from keras_dropouts import _internals

REGULARIZATION = "keras_cv.src.layers.regularization"


def _module(monkeypatch, name, path=None, **attributes):
    module = types.ModuleType(name)
    if path is not None:
        module.__path__ = [path]
    module.__dict__.update(attributes)
    monkeypatch.setitem(sys.modules, name, module)
    return module


@pytest.fixture
def keras_cv_layers(monkeypatch):
    """`(DropPath, StochasticDepth)` classes of keras-cv 0.9, from its source files
    (StochasticDepth is None where TensorFlow, which its file imports, is missing)."""
    spec = importlib.util.find_spec("keras_cv")  # finds the package without importing it
    if spec is None:
        pytest.skip("keras-cv is not installed (`make venv` installs its files)")
    root = spec.submodule_search_locations[0]
    _module(monkeypatch, "keras_cv", root)
    _module(monkeypatch, "keras_cv.src", os.path.join(root, "src"))
    _module(monkeypatch, "keras_cv.src.api_export", keras_cv_export=lambda *names, **kw: (lambda cls: cls))
    _module(monkeypatch, "keras_cv.src.backend", keras=keras, ops=keras.ops, random=keras.random)
    for package in ("keras_cv.src.layers", REGULARIZATION):
        _module(monkeypatch, package, os.path.join(root, *package.split(".")[1:]))

    def load(name):
        full = f"{REGULARIZATION}.{name}"
        path = os.path.join(root, "src", "layers", "regularization", f"{name}.py")
        module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(full, path))
        monkeypatch.setitem(sys.modules, full, module)
        module.__spec__.loader.exec_module(module)
        return module

    drop_path = load("drop_path").DropPath
    try:
        stochastic_depth = load("stochastic_depth").StochasticDepth
    except ImportError:
        stochastic_depth = None
    return drop_path, stochastic_depth


def test_keras_cv_drop_path_becomes_ours(keras_cv_layers, tmp_path, capsys):
    CvDropPath, _ = keras_cv_layers
    inp = keras.Input((6, 4))
    x = keras.layers.Dense(4, name="dense")(inp)
    x = CvDropPath(rate=0.3, seed=11, name="cv_drop_path")(x)
    model = keras.Model(inp, keras.layers.Dense(2, name="head")(x))
    assert type(model.get_layer("cv_drop_path")) in _internals.foreign_drop_path_types()

    new = kd.surgery.swap_dropout(model)
    assert capsys.readouterr().out.strip() == "swap_dropout: 1 keras_cv.DropPath -> DropPath"
    converted = new.get_layer("cv_drop_path")
    assert type(converted) is kd.layers.DropPath
    assert converted.rate == pytest.approx(0.3) and converted.seed == 11
    assert isinstance(model.get_layer("cv_drop_path"), CvDropPath)  # the input model is unchanged
    x = np.random.RandomState(0).rand(5, 6, 4).astype("float32")
    np.testing.assert_array_equal(to_np(new(x, training=False)), to_np(model(x, training=False)))

    # Same semantics as keras-cv's in training: every sample kept whole (scaled by
    # 1 / 0.7) or dropped whole.
    ones = np.ones((400, 6, 4), "float32")
    out = to_np(converted(ones, training=True)).reshape(400, -1)
    kept = out[:, 0] > 0
    np.testing.assert_allclose(out[kept], 1 / 0.7, rtol=1e-6)
    assert np.all(out[~kept] == 0)
    # 400 samples at keep 0.7: the kept fraction's standard error is 0.023; 4 SE.
    assert abs(kept.mean() - 0.7) < 4 * np.sqrt(0.7 * 0.3 / 400)

    path = str(tmp_path / "cv.keras")
    new.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.get_layer("cv_drop_path")) is kd.layers.DropPath
    np.testing.assert_array_equal(to_np(loaded(x, training=False)), to_np(model(x, training=False)))


def test_keras_cv_stochastic_depth_is_reported_not_converted(keras_cv_layers):
    """keras-cv's `StochasticDepth([shortcut, residual])` draws once for the whole batch,
    does not rescale in training and scales by 1 - rate at inference: nothing of ours
    computes that, so surgery names it with the reason (its `call` uses a Keras 2 API,
    so no Keras 3 model can hold one: the layer itself is checked)."""
    _, CvStochasticDepth = keras_cv_layers
    if CvStochasticDepth is None:
        pytest.skip("keras-cv's stochastic_depth.py imports TensorFlow, not installed here")
    layer = CvStochasticDepth(rate=0.2)
    assert type(layer) in _internals.foreign_drop_path_types()
    rate, seed, reason = _internals.foreign_drop_path_spec(layer)
    assert rate is None and seed is None and "whole batch" in reason
