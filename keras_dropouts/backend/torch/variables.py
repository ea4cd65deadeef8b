"""Host-side variable reads and writes on torch: `common`'s, with the read through
`Tensor.numpy()` (NumPy 2 warns when `np.array` converts a torch tensor)."""

import numpy as np
import torch

from keras_dropouts.backend.common.variables import Assigner, fill, sync, write  # noqa: F401


def read_scalars(variables):
    """The values of scalar `variables` as one float32 NumPy vector (one transfer)."""
    if not variables:
        return np.zeros((0,), "float32")
    return torch.stack([v.value.to(torch.float32) for v in variables]).detach().cpu().numpy()
