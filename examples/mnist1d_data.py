"""MNIST-1D (Greydanus 2020), generated on this machine by the `mnist1d` package; never
downloads.

`mnist1d.data.make_dataset` builds the dataset from its ten 1D digit templates (random
padding, translation, scaling, shear, correlated and i.i.d. noise) with the package's
default arguments: 5,000 sequences of length 40, the first 4,000 for training and the last
1,000 for testing, seed 42 (the benchmark's standard split). `mnist1d.data.get_dataset` is
never called: it downloads the frozen pickle from GitHub.

Example:

>>> (x_train, y_train), (x_test, y_test) = load_mnist1d()   # doctest: +SKIP
>>> x_train.shape, x_test.shape                            # doctest: +SKIP
((4000, 40, 1), (1000, 40, 1))
"""

import random

import numpy as np


def load_mnist1d(num_samples=5000, seed=42):
    """`((x_train, y_train), (x_test, y_test))`: float32 `(N, 40, 1)` sequences, int32 labels.

    Args:
        num_samples: sequences generated in all (80% for training); 5,000 is the standard.
        seed: the generator's seed (42 is the standard).
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("MNIST-1D needs the `mnist1d` package (`make venv` installs it; "
                          "or `pip install mnist1d`)") from e
    args = get_dataset_args()
    args.num_samples, args.seed = int(num_samples), int(seed)
    # make_dataset seeds the global generators: leave them as they were.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)

    def xs(x):
        return np.asarray(x, "float32")[..., None]

    return ((xs(d["x"]), np.asarray(d["y"], "int32")), (xs(d["x_test"]), np.asarray(d["y_test"], "int32")))
