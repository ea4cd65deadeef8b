"""Measured drop fraction of DropBlock / ProbDropBlock with both seed-rate modes.

Prints Markdown tables (the ones in docs/guides/layers.md): for each map and block size and
each rate, the fraction of units dropped with Ghiasi et al.'s gamma
(`gamma="paper"`, the only mode before 0.3) and with the overlap-corrected gamma
(`gamma="exact"`, the default), as "paper -> exact". The paper's formula counts
every seed's block as new units, so overlapping blocks make it drop less than the
rate; the exact gamma solves for the rate (target: within 3% relative for every
map larger than the block). Every cell is measured on at least `--units` mask
units (per-channel masks, so every channel is an independent map); the standard
error is printed under the table.

ProbDropBlock is measured on inputs with i.i.d. exponential salience: its seed
probabilities are DropBlock's gamma times normalised salience, so on average it
drops what DropBlock drops.

    KERAS_BACKEND=torch python benchmarks/drop_fraction_table.py [--units 4000000]
"""

import argparse
import math

import keras
import numpy as np

from keras_dropouts.backend.common import gamma as _gamma
from keras_dropouts.ops import drop_block, prob_drop_block

RATES = (0.05, 0.1, 0.2, 0.3, 0.5)
# (spatial sizes, block): maps larger than the block, then the edge of a block not
# smaller than the map (one valid centre: the fraction is the rate in both modes).
CASES = [
    ((64,), 7), ((32,), 4),
    ((56, 56), 7), ((28, 28), 7), ((14, 14), 7), ((14, 14), 3), ((16, 16), 5), ((8, 8), 3),
    ((16, 16, 16), 3), ((8, 8, 8), 3),
    ((7, 7), 7), ((5, 5), 7),
]


def measure(op, sizes, block, rate, mode, units, seed, salience):
    """Dropped fraction over at least `units` mask units, in chunks of ~2M."""
    map_units = math.prod(sizes)
    channels = 8
    batch = max(1, min(2_000_000, units) // (map_units * channels))
    rng = np.random.default_rng(0)
    dropped = total = 0
    while total < units:
        shape = (batch,) + sizes + (channels,)
        if salience:
            x = rng.exponential(size=shape).astype("float32")
        else:
            x = np.ones(shape, "float32")
        y = keras.ops.convert_to_numpy(op(x, rate, block, seed=seed, gamma=mode))
        dropped += int((y == 0).sum())
        total += y.size
    return dropped / total, total


def paper_expected(rate, sizes, block):
    blocks = tuple(min(block, s) for s in sizes)
    gamma = rate
    for s, b in zip(sizes, blocks):
        gamma *= s / (b * (s - b + 1))
    return float(_gamma.dropped_fraction(min(gamma, 1.0), sizes, blocks))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=4_000_000)
    args = parser.parse_args()
    seed = keras.random.SeedGenerator(1)

    for title, op, salience in (
        ("DropBlock (`drop_block`, inputs of ones)", drop_block, False),
        ("ProbDropBlock (`prob_drop_block`, exponential salience)", prob_drop_block, True),
    ):
        print(f"\n{title}: dropped fraction, paper gamma -> exact gamma (default)\n")
        print("| map | block | " + " | ".join(f"rate {r}" for r in RATES) + " |")
        print("|---|---|" + "---|" * len(RATES))
        worst = {"paper": 0.0, "exact": 0.0}
        worst_se = 0.0
        for sizes, block in CASES:
            cells = []
            for rate in RATES:
                got = {}
                for mode in ("paper", "exact"):
                    got[mode], n = measure(op, sizes, block, rate, mode, args.units, seed,
                                           salience)
                    if all(s > block for s in sizes):
                        worst[mode] = max(worst[mode], abs(got[mode] / rate - 1))
                # Standard error of a fraction of n units made of blocks of b^d units.
                b_units = math.prod(min(block, s) for s in sizes)
                worst_se = max(worst_se, math.sqrt(rate * b_units / n) / rate)
                cells.append(f"{got['paper']:.3f} -> {got['exact']:.3f}")
            name = "x".join(str(s) for s in sizes)
            print(f"| {name} | {block} | " + " | ".join(cells) + " |")
        print(
            f"\nLargest relative error over maps larger than the block: paper "
            f"{worst['paper']:.1%}, exact {worst['exact']:.1%} (sampling error up to "
            f"about {worst_se:.1%} relative; backend {keras.backend.backend()}, "
            f">= {args.units:,} units a cell)."
        )
    # The expectations, computed exactly from the coverage counts (no sampling).
    worst = {"paper": 0.0, "exact": 0.0}
    for sizes, block in CASES:
        if not all(s > block for s in sizes):
            continue
        blocks = tuple(min(block, s) for s in sizes)
        for rate in RATES:
            exact = _gamma.exact_gamma_value(rate, sizes, blocks)
            expected = {
                "paper": paper_expected(rate, sizes, block),
                "exact": float(_gamma.dropped_fraction(exact, sizes, blocks)),
            }
            for mode, value in expected.items():
                worst[mode] = max(worst[mode], abs(value / rate - 1))
    print(
        f"\nExpected DropBlock fraction (computed from the coverage counts, no sampling), "
        f"largest relative error over maps larger than the block: paper {worst['paper']:.1%}, "
        f"exact {worst['exact']:.3%}."
    )


if __name__ == "__main__":
    main()
