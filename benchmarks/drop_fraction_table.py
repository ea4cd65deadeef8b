"""Measured drop fraction of DropBlock2D / ProbDropBlock2D at several map and block sizes.

Prints a Markdown table (the one in the README). Ghiasi et al.'s gamma ignores block
overlap, so the measured fraction is a little below `rate`; ProbDropBlock matches
DropBlock's expected seed count, so the two agree on average.

    KERAS_BACKEND=jax python benchmarks/drop_fraction_table.py
"""

import keras
import numpy as np

from keras_dropouts.ops import drop_block, prob_drop_block

CASES = [(56, 7), (28, 7), (14, 7), (14, 3), (8, 3), (7, 7), (5, 7)]


def main():
    rng = np.random.default_rng(0)
    seed = keras.random.SeedGenerator(1)
    print("| map | block | rate | DropBlock2D | rel. | ProbDropBlock2D | rel. |")
    print("|---|---|---|---|---|---|---|")
    for rate in (0.1, 0.2):
        for size, block in CASES:
            batch = max(16, 200_000 // (size * size * 8))
            x = rng.exponential(size=(batch, size, size, 8)).astype("float32")
            row = []
            for op in (drop_block, prob_drop_block):
                frac = float((keras.ops.convert_to_numpy(op(x, rate, block, seed=seed)) == 0).mean())
                row += [f"{frac:.3f}", f"{frac / rate:.2f}"]
            print(f"| {size}x{size} | {block} | {rate} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
