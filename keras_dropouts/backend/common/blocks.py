"""DropBlock-style masks in `keras.ops`: seed rate, seeds, block expansion, rescale.

The reference path of every backend (TF, JAX, and torch under `torch.compile`);
`BlockMasks` takes what a backend does differently (its noise draw, its exact-gamma
table constant, the dtype and layout it pools in) as constructor arguments, and a
backend's `blocks` module builds one (docs/architecture.md). Noise and rescale are
computed in float32.
"""

from keras import ops

from keras_dropouts.backend.common import gamma as gamma_lib
from keras_dropouts.backend.common import noise
from keras_dropouts.backend.common.dropout import exact_ratio, rate_tensor, scale_kept
from keras_dropouts.backend.common.geometry import BlockGeometry
from keras_dropouts.backend.common.salience import salience_probabilities


def seed_rate(geometry, rate, mode="exact", exact_gamma=gamma_lib.exact_gamma):
    """Seed probability at the valid centres.

    "exact" (static sizes): the rate whose expected dropped fraction equals `rate`,
    counting overlapping blocks (`gamma`). "paper", and "exact" when a spatial size
    is only known at run time: Ghiasi et al.'s formula. Rate 1 gives gamma 1 either way.

    Args:
        geometry: The `BlockGeometry`.
        rate: A checked Python float, or a scalar tensor.
        mode: "exact" or "paper".
        exact_gamma: The backend's `gamma.exact_gamma`.

    Returns:
        A Python float for a Python rate, else a float32 scalar tensor.
    """
    rate = rate_tensor(rate)
    if mode == "exact" and geometry.static:
        if isinstance(rate, float):
            return gamma_lib.exact_gamma_value(rate, geometry.sizes, geometry.window)
        return exact_gamma(rate, geometry.sizes, geometry.window)
    if isinstance(rate, float) and rate >= 1.0:
        return 1.0
    gamma = gamma_lib.paper_gamma(rate, *geometry.float_sizes())
    if isinstance(rate, float):
        return gamma
    # At rate 1 every valid centre is a seed (uniform noise < 1 always), and the
    # blocks around the valid centres cover the whole map: everything is dropped.
    return ops.where(rate >= 1.0, 1.0, gamma)


def padding_box(geometry, mask):
    """A (batch, steps) padding mask as bool (batch, *box, 1) at the valid centres."""
    return geometry.box_slice(ops.expand_dims(ops.cast(mask, "bool"), -1))


def valid_positions(geometry, mask):
    """Where a seed may be (bool), or None for everywhere: the padding mask on the box
    (static sizes), else the valid-centre mask and the padding mask on the map."""
    if geometry.static:
        return None if mask is None else padding_box(geometry, mask)
    valid = geometry.valid_centres()
    if mask is not None:
        valid = ops.logical_and(valid, ops.expand_dims(ops.cast(mask, "bool"), -1))
    return valid


def apply_block_mask(x, dropped, geometry):
    """`where(keep, x * count / count_ones, 0)`, the rescale computed over the whole batch.

    `dropped` is a {0, 1} mask (int8 or float) in channels_last order. Counting is
    done in int32 so that large masks count exactly; the all-dropped case gives
    zeros, and dropped units are exactly 0 whatever they held (see `scale_kept`).
    """
    keep = ops.equal(dropped, 0)
    count = geometry.count
    count = ops.cast(ops.size(keep), "float32") if count is None else float(count)
    ones = ops.cast(ops.sum(ops.cast(keep, "int32")), "float32")
    scale = exact_ratio(ops.convert_to_tensor(count, "float32"), ones)
    return scale_kept(x, geometry.to_input_layout(keep), scale)


class BlockMasks:
    """DropBlock and ProbDropBlock on checked arguments, for one backend's choices.

    Args:
        uniform: The backend's noise draw (`noise.uniform`'s signature).
        exact_gamma: The backend's `gamma.exact_gamma`.
        pool_dtype: The narrowest dtype the backend's max-pool takes everywhere.
        channels_first_pool: Pool in channels_first order (torch's native one).
    """

    def __init__(self, uniform=noise.uniform, exact_gamma=gamma_lib.exact_gamma,
                 pool_dtype="float32", channels_first_pool=False):
        self.uniform = uniform
        self.exact_gamma = exact_gamma
        self.pool_dtype = pool_dtype
        self.channels_first_pool = channels_first_pool

    def drop_block(self, x, rate, block_size, seed, data_format, per_channel, mask, gamma):
        """DropBlock (`keras_dropouts.ops.drop_block` on checked, non-empty arguments)."""
        geo = BlockGeometry(x, block_size, data_format, per_channel)
        p = seed_rate(geo, rate, gamma, self.exact_gamma)
        seeds = self.draw_seeds(geo, p, seed, valid_positions(geo, mask))
        return apply_block_mask(x, self.expand(geo, seeds), geo)

    def prob_drop_block(self, x, rate, block_size, seed, data_format, per_channel, inverse,
                        mask, gamma):
        """ProbDropBlock (`keras_dropouts.ops.prob_drop_block` on checked arguments)."""
        geo = BlockGeometry(x, block_size, data_format, per_channel)
        valid = valid_positions(geo, mask)
        p = salience_probabilities(x, seed_rate(geo, rate, gamma, self.exact_gamma), valid,
                                   geo, inverse)
        seeds = self.draw_seeds(geo, p, seed, valid)
        return apply_block_mask(x, self.expand(geo, seeds), geo)

    def draw_seeds(self, geometry, p, seed, valid):
        """Bool seeds, channels_last: `uniform < p` on the box (static sizes) or the
        whole map, and `valid` (`valid_positions`; None: everywhere). `p` is a scalar
        or broadcasts to the box / map."""
        shape = geometry.box_shape if geometry.static else geometry.mask_shape
        seeds = self.uniform(shape, seed) < p
        return seeds if valid is None else ops.logical_and(seeds, valid)

    def expand(self, geometry, seeds):
        """Grows each seed (bool, channels_last) into a block: `dropped`, {0, 1}.

        One pad, then a separable max-pool, one axis at a time, in the backend's
        narrowest pool dtype (a quarter of float32's memory traffic in int8 on a
        memory-bound op). Seeds drawn on the valid-centre box are padded by `w - 1`
        on both sides; seeds on the whole map (run-time sizes) by `(w - 1) // 2` and
        `w // 2`, centring the window.
        """
        seeds = ops.cast(seeds, self.pool_dtype)
        pads = [[0, 0]]
        for w in geometry.window:
            pads.append([w - 1, w - 1] if geometry.static else [(w - 1) // 2, w // 2])
        pads.append([0, 0])
        channels_first = self.channels_first_pool
        seeds = ops.pad(seeds, pads)
        if channels_first:
            seeds = ops.moveaxis(seeds, -1, 1)
        for axis, w in enumerate(geometry.window):
            if w == 1:
                continue
            pool = [1] * geometry.n
            pool[axis] = w
            seeds = ops.max_pool(
                seeds, tuple(pool), strides=1, padding="valid",
                data_format="channels_first" if channels_first else "channels_last",
            )
        return ops.moveaxis(seeds, 1, -1) if channels_first else seeds


# The reference choices (a backend without its own package): float32 pools everywhere.
_MASKS = BlockMasks()
drop_block = _MASKS.drop_block
prob_drop_block = _MASKS.prob_drop_block
