"""NumPy checks shared by the DropBlock / ProbDropBlock tests."""

import numpy as np


def is_union_of_blocks(dropped, block):
    """True if the 2D boolean map `dropped` is a union of full `block` windows inside it."""
    bh, bw = block
    h, w = dropped.shape
    covered = np.zeros_like(dropped)
    for i in range(h - bh + 1):
        for j in range(w - bw + 1):
            if dropped[i : i + bh, j : j + bw].all():
                covered[i : i + bh, j : j + bw] = True
    return np.array_equal(covered, dropped)
