"""When torch's eager fast path runs (docs/architecture.md, "Backends and fast paths").

torch runs eagerly, so a layer's cost on small tensors is dispatch, not arithmetic:
every `keras.ops` call converts its arguments (a Python scalar becomes a tensor, on
CUDA a host-to-device copy), checks dtypes and shapes, and Keras' seeded
`keras.random` functions build a new `torch.Generator` from the seed variable with
`int(tensor)` (a device-to-host sync). Measured on the 2-core CPU with a
(2, 8, 8, 4) tensor, the `keras.ops` composition of DropBlock2D cost 4.8x a
`keras.layers.Dropout` call. The fast path computes exactly what `common` computes
(the same masks from the same noise, tested bit for bit) with direct torch calls.

It runs only for concrete tensors outside `torch.compile` (dynamo traces the
`keras.ops` path, which it compiles as well as anything else); `ENABLED = False`
switches it off (the tests compare both paths).
"""

import keras
import torch

ENABLED = True


def active(x):
    """True when the fast path handles a call on `x`."""
    return (
        ENABLED
        and isinstance(x, torch.Tensor)
        and x.device.type != "meta"
        and not torch.compiler.is_compiling()
    )


def can_draw(seed):
    """Seeds the fast path draws from itself (a seed tensor goes through Keras)."""
    return seed is None or isinstance(seed, (int, keras.random.SeedGenerator))


def handles(x, seed):
    """True when the fast path computes an op on `x` drawn with `seed`."""
    return active(x) and can_draw(seed)
