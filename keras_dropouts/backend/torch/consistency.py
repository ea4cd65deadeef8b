"""R-Drop's consistency term on torch: `common`'s maths in raw torch calls.

torch runs the train step eagerly, so each `keras.ops` call costs its argument
conversion and dtype checks on every step (about 10 us each on a CPU, as much as the
arithmetic on small outputs); the values are those of the `keras.ops` path. It works
inside `torch.compile` too (dynamo traces it as any torch code).
"""

import torch

from keras_dropouts.backend.common import consistency as common
from keras_dropouts.backend.common.consistency import (  # noqa: F401 - re-exported
    MAY_BE_THE_ONLY_LOSS,
    num_replicas,
    wanted,
)
from keras_dropouts.backend.torch.array_ops import TorchOps


def tiled(kind, grouped, from_logits, weight, xla=False):
    """`common.consistency.tiled` with torch's own functions for a torch tensor (a
    Keras symbolic tensor takes `keras.ops`)."""
    if not isinstance(grouped, torch.Tensor):
        return common.tiled(kind, grouped, from_logits, weight, xla)
    return common.tiled(kind, grouped, from_logits, weight, xla, xp=TorchOps)
