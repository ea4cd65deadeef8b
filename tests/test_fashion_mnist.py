"""examples/fashion_mnist.py: IDX files from the machine (Debian package, Keras' cache, a
folder), never a download."""

import gzip
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
try:
    import fashion_mnist as fm
finally:
    sys.path.remove(str(ROOT / "examples"))


def _fake(folder, n_train=12, n_test=5, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (n_train, 28, 28)), "y_train": np.arange(n_train) % 10,
              "x_test": rng.integers(0, 256, (n_test, 28, 28)), "y_test": np.arange(n_test) % 10}
    for key, name in fm.FILES.items():
        fm.write_idx(folder / (name + (".gz" if gz else "")), arrays[key])
    return arrays


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No real copy is found: the Debian folder and Keras' cache point into tmp_path."""
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    return tmp_path


@pytest.mark.parametrize("gz", [True, False])
def test_round_trip_of_the_idx_format(nowhere, gz):
    want = _fake(nowhere / "d", gz=gz)
    (x_train, y_train), (x_test, y_test) = fm.load_fashion_mnist(nowhere / "d")
    assert x_train.shape == (12, 28, 28) and x_train.dtype == np.uint8
    np.testing.assert_array_equal(x_train, want["x_train"])
    np.testing.assert_array_equal(y_test, want["y_test"])
    assert y_train.tolist() == [i % 10 for i in range(12)]


def test_header_bytes_are_the_standard_ones(tmp_path):
    fm.write_idx(tmp_path / "a.gz", np.zeros((3, 28, 28), np.uint8))
    raw = gzip.open(tmp_path / "a.gz").read()
    assert raw[:16] == bytes([0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 28, 0, 0, 0, 28])
    assert len(raw) == 16 + 3 * 28 * 28


def test_search_order_env_then_debian_then_keras_cache(nowhere, monkeypatch):
    _fake(nowhere / "keras" / "datasets" / "fashion-mnist", n_train=10)
    assert fm.find_dir() == nowhere / "keras" / "datasets" / "fashion-mnist"
    _fake(nowhere / "debian", n_train=11)
    assert len(fm.load_fashion_mnist()[0][0]) == 11
    _fake(nowhere / "env", n_train=13)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(nowhere / "env"))
    assert len(fm.load_fashion_mnist()[0][0]) == 13


def test_missing_files_raise_without_downloading(nowhere, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the loader tried to download")

    import urllib.request

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(urllib.request, "urlretrieve", no_network)
    _fake(nowhere / "partial")
    (nowhere / "partial" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        fm.load_fashion_mnist(nowhere / "partial")


def test_bad_files_are_named(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        fm.read_idx(tmp_path / "bad")
    fm.write_idx(tmp_path / "short", np.zeros((2, 3), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match="expected"):
        fm.read_idx(tmp_path / "short")


def test_the_installed_copy_when_there_is_one():
    if fm.find_dir() is None:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    (x_train, y_train), (x_test, y_test) = fm.load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    # The standard files: 6,000 training and 1,000 test images of each of the 10 classes.
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
