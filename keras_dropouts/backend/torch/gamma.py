"""Exact gamma for torch's eager path: `common`'s table and interpolation, on the device."""

import torch

from keras_dropouts.backend.common import gamma as common
from keras_dropouts.backend.common.gamma import exact_gamma  # noqa: F401 - the keras.ops path
from keras_dropouts.backend.torch.array_ops import TorchOps

_TABLES = {}


def device_exact_gamma(rate, sizes, window):
    """`common.gamma.interpolate` in torch ops; the table is copied to the device once.

    Args:
        rate: Float32 0-d tensor in [0, 1].
        sizes: Static spatial sizes.
        window: Block sizes clipped to the sizes.

    Returns:
        A float32 0-d tensor on `rate`'s device.
    """
    key = (sizes, window, rate.device)
    table = _TABLES.get(key)
    if table is None:
        table = _TABLES[key] = torch.as_tensor(common.gamma_table(sizes, window), device=rate.device)
    return common.interpolate(table, rate, TorchOps)
