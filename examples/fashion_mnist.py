"""Fashion-MNIST from files already on the machine; never downloads.

Looks for the four standard IDX files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
`t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, gzipped or not) in, in order:

1. `$FASHION_MNIST_DIR`, or the `data_dir` argument;
2. `/usr/share/datasets/fashion-mnist` (Debian/Ubuntu: `apt-get install dataset-fashion-mnist`);
3. Keras' cache, `$KERAS_HOME/datasets/fashion-mnist` or `~/.keras/datasets/fashion-mnist`
   (where `keras.datasets.fashion_mnist.load_data()` leaves them after its own download).

Example:

>>> (x_train, y_train), (x_test, y_test) = load_fashion_mnist()   # doctest: +SKIP
>>> x_train.shape, x_test.shape                                    # doctest: +SKIP
((60000, 28, 28), (10000, 28, 28))
"""

import gzip
import os
from pathlib import Path

import numpy as np

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def keras_cache_dir():
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets" / "fashion-mnist"


def candidate_dirs(data_dir=None):
    """The folders searched, in order."""
    dirs = [d for d in (data_dir, os.environ.get("FASHION_MNIST_DIR")) if d]
    return [Path(d) for d in dirs] + [DEBIAN_DIR, keras_cache_dir()]


def _file(folder, name):
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def find_dir(data_dir=None):
    """The first candidate folder holding all four files, or None."""
    for folder in candidate_dirs(data_dir):
        if all(_file(folder, n) for n in FILES.values()):
            return folder
    return None


def read_idx(path):
    """An IDX file (gzipped if its name ends in .gz) as a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    body = data[4 + 4 * ndim:]
    if len(body) != dtype.itemsize * int(np.prod(dims)):
        raise ValueError(f"{path}: expected {dims} items of {dtype}, found {len(body)} bytes")
    return np.frombuffer(body, dtype).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path, array):
    """Writes `array` (uint8) as an IDX file, gzipped if the name ends in .gz (for tests
    and for small synthetic stand-ins)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    head = bytes((0, 0, 0x08, array.ndim)) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(head + array.tobytes())


def load_fashion_mnist(data_dir=None):
    """((x_train, y_train), (x_test, y_test)) as uint8 arrays of shape (N, 28, 28) and (N,).

    Args:
        data_dir: a folder to look in first (see the module docstring for the others).

    Raises:
        FileNotFoundError: naming the folders searched and how to get the files. Nothing
            is downloaded.
    """
    folder = find_dir(data_dir)
    if folder is None:
        searched = ", ".join(str(d) for d in candidate_dirs(data_dir))
        raise FileNotFoundError(
            f"Fashion-MNIST not found (searched {searched}); install it with "
            "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or run "
            "`keras.datasets.fashion_mnist.load_data()` once to fill Keras' cache, or set "
            "FASHION_MNIST_DIR. This loader never downloads.")
    arrays = {k: read_idx(_file(folder, n)) for k, n in FILES.items()}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{folder}: {split} images {x.shape} and labels {y.shape} do not match")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
