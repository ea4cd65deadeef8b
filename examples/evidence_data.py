"""Data for `examples/evidence.py`: scikit-learn digits and what can be derived from them.

Everything is offline (the 1,797 8x8 digits ship with scikit-learn) and a pure function of
a seed, so every method trained under one seed sees exactly the same images in exactly the
same order (paired seeds).

- `split(seed, n_train)`: stratified train/test split of the digits, upsampled to 16x16.
- `epoch_stream(x, y, seed, epochs, batch_size)`: the images in a fresh seed-determined order
  every epoch, concatenated (`fit(..., shuffle=False, steps_per_epoch=...)` walks through it).
- `augment(x, rng)`: random rotation, scale, shift and elastic deformation (vectorised).
- `augmented_stream(...)`: a fresh augmented copy of the training pool every epoch.
- `occlude(x, size, rng)`: erase one random contiguous `size` x `size` patch per image.
"""

import numpy as np

SIDE = 16  # digits are upsampled from 8x8 to 16x16 (bilinear), as in the demo


def load_digits16():
    """All 1,797 digits as (N, 16, 16, 1) float32 in [0, 1], labels int32."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype("float32") / 16.0
    images = np.clip(zoom(images, (1, 2, 2), order=1), 0.0, 1.0)[..., None]
    return images, digits.target.astype("int32")


def split(seed, n_train, n_test=None, data=None):
    """A stratified split that depends on `seed`: `n_train` images to train on, the rest
    (or `n_test` of them) to test on."""
    from sklearn.model_selection import train_test_split

    x, y = data if data is not None else load_digits16()
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, train_size=n_train, stratify=y, random_state=seed
    )
    if n_test is not None:
        x_test, y_test = x_test[:n_test], y_test[:n_test]
    return x_train, y_train, x_test, y_test


def steps_per_epoch(n, batch_size):
    """Full batches per epoch (the few images left over are a different random few each epoch)."""
    return max(1, n // batch_size)


def epoch_stream(x, y, seed, epochs, batch_size, transform=None):
    """`epochs` passes over (x, y), each in a fresh order drawn from `seed`, concatenated.

    With `transform(x, rng)` every pass is also transformed afresh (data augmentation).
    Each pass keeps `steps_per_epoch(len(x), batch_size) * batch_size` images, so that
    `fit(xs, ys, batch_size, epochs=epochs, steps_per_epoch=spe, shuffle=False)` sees pass
    `e` in epoch `e` on every backend.
    """
    rng = np.random.default_rng([seed, 7919])
    keep = steps_per_epoch(len(x), batch_size) * batch_size
    xs, ys = [], []
    for _ in range(epochs):
        idx = rng.permutation(len(x))[:keep]
        xe = x[idx]
        if transform is not None:
            xe = transform(xe, rng)
        xs.append(xe)
        ys.append(y[idx])
    return np.concatenate(xs).astype("float32"), np.concatenate(ys)


def augment(x, rng, max_angle=15.0, max_scale=0.1, max_shift=2.0, elastic_px=0.8, elastic_sigma=2.0):
    """Random affine (rotation, scale, shift) plus elastic deformation, one draw per image.

    `x`: (N, H, W, 1). The elastic field is Gaussian-smoothed white noise (sigma
    `elastic_sigma` pixels) scaled to a standard deviation of `elastic_px` pixels.
    Bilinear resampling, zero (background) outside the image.
    """
    from scipy.ndimage import gaussian_filter, map_coordinates

    n, h, w = x.shape[:3]
    angle = np.deg2rad(rng.uniform(-max_angle, max_angle, n))
    scale = rng.uniform(1 - max_scale, 1 + max_scale, n)
    shift = rng.uniform(-max_shift, max_shift, (n, 2))
    ii, jj = np.meshgrid(np.arange(h, dtype="float64"), np.arange(w, dtype="float64"), indexing="ij")
    ci, cj = (h - 1) / 2, (w - 1) / 2
    # Output pixel -> source pixel: inverse rotation and scale about the centre.
    di = (ii[None] - ci - shift[:, 0, None, None]) / scale[:, None, None]
    dj = (jj[None] - cj - shift[:, 1, None, None]) / scale[:, None, None]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    src_i = cos * di - sin * dj + ci
    src_j = sin * di + cos * dj + cj
    if elastic_px > 0:
        field = gaussian_filter(rng.standard_normal((2, n, h, w)), sigma=(0, 0, elastic_sigma, elastic_sigma))
        field *= elastic_px / max(field.std(), 1e-12)
        src_i = src_i + field[0]
        src_j = src_j + field[1]
    batch = np.broadcast_to(np.arange(n, dtype="float64")[:, None, None], (n, h, w))
    out = map_coordinates(x[..., 0], [batch, src_i, src_j], order=1, mode="constant", cval=0.0)
    return np.clip(out, 0.0, 1.0)[..., None].astype("float32")


def augmented_stream(x, y, seed, epochs, batch_size):
    """A fresh augmented copy of (x, y) for every epoch (an effectively unlimited stream)."""
    return epoch_stream(x, y, seed, epochs, batch_size, transform=augment)


def occlude(x, size, rng):
    """Erases (sets to 0, the background) one `size` x `size` patch per image, at a uniformly
    random position where the patch fits inside the image."""
    n, h, w = x.shape[:3]
    out = x.copy()
    top = rng.integers(0, h - size + 1, n)
    left = rng.integers(0, w - size + 1, n)
    rows = top[:, None] + np.arange(size)[None]  # (n, size)
    cols = left[:, None] + np.arange(size)[None]
    out[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]] = 0.0
    return out
