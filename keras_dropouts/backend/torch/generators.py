"""Noise for torch's eager path: a `torch.Generator` per seed generator and device.

Seeded once from the seed generator's configured seed (or from Python's `random`
when it has none, so `keras.utils.set_random_seed` makes runs repeatable); an int
seed gives a generator seeded as Keras seeds one, so the noise, and therefore the
mask, equals the `keras.ops` path's bit for bit; no host sync per call. It does not
advance `seed_generator.state` (README, Design notes).
"""

import random
import weakref

import torch

_GENERATORS = weakref.WeakKeyDictionary()  # SeedGenerator -> {device: torch.Generator}


def generator(seed, device):
    """A `torch.Generator` on `device` for an ops `seed` (None: torch's default one)."""
    if seed is None:
        return None
    if isinstance(seed, int):
        # As `keras.random` seeds one for an int seed: the same noise as the generic path.
        gen = torch.Generator(device=device)
        gen.manual_seed(seed & 0xFFFFFFFF)
        return gen
    per_device = _GENERATORS.get(seed)
    if per_device is None:
        per_device = _GENERATORS[seed] = {}
    gen = per_device.get(device)
    if gen is None:
        initial = seed.get_config().get("seed")
        if initial is None:
            initial = random.randint(1, int(1e9))  # as Keras draws a default seed
        gen = torch.Generator(device=device)
        gen.manual_seed((int(initial) + len(per_device)) & 0xFFFFFFFF)
        per_device[device] = gen
    return gen


def uniform(shape, seed, device):
    """Float32 noise in [0, 1): `keras.random.uniform`'s values for an int seed."""
    return torch.rand(shape, generator=generator(seed, device), device=device)
