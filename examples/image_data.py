"""Offline image data for the examples: CIFAR-10 from a user's download, or digits."""

import os
import pickle

import numpy as np


def load_cifar10(data_dir, limit=None, standardize=False):
    """Reads the `cifar-10-batches-py` folder a user downloaded (nothing is fetched).

    Returns `(x_train, y_train, x_test, y_test)`, images (N, 32, 32, 3) in [0, 1], or
    standardised per channel with the training statistics when `standardize` is True.
    """

    def read(name):
        with open(os.path.join(data_dir, name), "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        x = batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype("float32") / 255
        return x, np.array(batch[b"labels"], "int32")

    parts = [read(f"data_batch_{i}") for i in range(1, 6)]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = read("test_batch")
    if standardize:
        mean, std = x_train.mean((0, 1, 2)), x_train.std((0, 1, 2))
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
    return x_train, y_train, x_test, y_test


def load_digits_upsampled(factor, limit=None, train_size=1300):
    """scikit-learn's 8x8 digits (shipped with it), upsampled bilinearly by `factor`.

    Returns `(x_train, y_train, x_test, y_test)` with a fixed shuffled split.
    """
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = zoom(digits.images.astype("float32") / 16.0, (1, factor, factor), order=1)[..., None]
    y = digits.target.astype("int32")
    idx = np.random.default_rng(0).permutation(len(x))
    x, y = x[idx], y[idx]
    x_train, y_train = x[:train_size], y[:train_size]
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
    return x_train, y_train, x[train_size:], y[train_size:]
