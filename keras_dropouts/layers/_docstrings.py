"""The docstrings of the 1D / 2D / 3D block layers, filled from one template per family.

Plain strings with no imports: the layers set their `__doc__` from `docstring(name)` at
import, and the documentation site's API reference (which reads the package's source
without importing it or Keras) fills the same docstrings through
`docs/_ext/filled_docstrings.py`.
"""

# What every block layer's docstring says about the arguments they share, its call and its
# example (the `{...}` fields are filled per layer by `docstring`).
COMMON_ARGS = """    Args:
        rate: Float in [0, 1], the target fraction of units dropped; rate 1 drops
            every unit.
        block_size: Positive int, or a tuple of {rank} positive ints, one per
            spatial axis.
        data_format: "channels_last" {shape_last} or "channels_first"
            {shape_first}; defaults to `keras.config.image_data_format()`.
        seed: Optional int seed.
"""
COMMON_TAIL = """        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Floating-point tensor of rank {rank_plus_2}.
        training: Python bool; blocks are dropped only when True.
        {mask_doc}
    Example:
    >>> layer = {name}(rate=0.1, block_size={example_block})
    >>> y = layer(keras.ops.ones({example_shape}), training=True)
    """

DROP_BLOCK = """Drops contiguous blocks of a feature map: DropBlock (Ghiasi et al. 2018).

    Block centres are drawn among the positions whose whole block fits in the map,
    with probability `gamma`, grown into blocks of `block_size`, and the kept units
    are rescaled by `count / count_ones`. By default gamma is solved so that the
    expected dropped fraction equals `rate`, counting overlapping blocks;
    `gamma="paper"` keeps Ghiasi et al.'s `rate / prod(b) * prod(S) / prod(S - b + 1)`,
    which ignores overlaps and drops less (0.179 at rate 0.2 on 56x56 maps with
    block 7). The block is clipped to the map on every axis, so a block not smaller
    than the map drops whole maps with probability `rate`. Identity at inference. The rate
    lives in a variable: `layer.rate = r` reaches compiled train steps at once, which
    is how the paper's linear ramp (`keras_dropouts.callbacks`) is applied.

{common_args}        per_channel: True (default, the paper's Algorithm 1 and its reference
            implementation, "tends to work better") draws one mask per channel;
            False shares one mask across channels: C times fewer random draws, faster
            on wide layers.
        gamma: "exact" (default): the seed rate whose expected dropped fraction
            is `rate`, solved once per map shape (the paper's formula when a
            spatial size is only known at run time); "paper": Ghiasi et al.'s
            formula, exactly.
{common_tail}"""

DROP_BLOCK_MASK = "mask: Optional (batch, steps) padding mask; no block is centred on padding.\n"

PROB_DROP_BLOCK = """DropBlock whose block centres follow feature salience (ProbDropBlock).

    Zhao et al., "Revisiting Structured Dropout" (ACML 2023). Each valid centre is a
    seed with probability `clip(gamma * s / mean(s), 0, 1)`, where `s = |x|` (no
    gradient; averaged over channels when the mask is shared) and `gamma` is
    DropBlock's seed rate (by default corrected for overlapping blocks, so that the
    expected dropped fraction is `rate` when salience is uniform), so on average as
    many blocks are dropped as with DropBlock at the same rate, but salient regions
    are dropped more often. The paper ramps
    the rate linearly from 0 over training (e.g. `DropoutScheduler` with
    `schedules.LinearRamp`); its RoBERTa setting used block 4 and a 0 -> 0.1 ramp.

{common_args}        per_channel: One mask per channel (default) or one shared mask (False).
        inverse_salience: If True, prefer the least salient positions instead.
        gamma: "exact" (default) or "paper": DropBlock's seed rate, corrected for
            overlapping blocks or Ghiasi et al.'s formula (see DropBlock2D).
{common_tail}"""

PROB_DROP_BLOCK_MASK = (
    "mask: Optional (batch, steps) padding mask (e.g. from `Embedding(mask_zero=True)`):\n"
    "            padding never counts toward salience and never hosts a block centre.\n"
)

# The axes and the example input of each rank.
_RANKS = {
    1: ("(B, T, C)", "(B, C, T)", 4, "(2, 32, 16)"),
    2: ("(B, H, W, C)", "(B, C, H, W)", 7, "(2, 28, 28, 8)"),
    3: ("(B, D, H, W, C)", "(B, C, D, H, W)", 3, "(2, 8, 8, 8, 4)"),
}
# Each public layer: its template, its rank and its mask argument (1D layers only).
LAYERS = {
    "DropBlock1D": (DROP_BLOCK, 1, DROP_BLOCK_MASK),
    "DropBlock2D": (DROP_BLOCK, 2, ""),
    "DropBlock3D": (DROP_BLOCK, 3, ""),
    "ProbDropBlock1D": (PROB_DROP_BLOCK, 1, PROB_DROP_BLOCK_MASK),
    "ProbDropBlock2D": (PROB_DROP_BLOCK, 2, ""),
    "ProbDropBlock3D": (PROB_DROP_BLOCK, 3, ""),
}


def docstring(name):
    """The docstring of the block layer `name` (a key of `LAYERS`)."""
    template, rank, mask_doc = LAYERS[name]
    shape_last, shape_first, example_block, example_shape = _RANKS[rank]
    fields = dict(
        rank=rank, rank_plus_2=rank + 2, shape_last=shape_last, shape_first=shape_first,
        mask_doc=mask_doc, name=name, example_block=example_block, example_shape=example_shape,
    )
    return template.format(
        common_args=COMMON_ARGS.format(**fields), common_tail=COMMON_TAIL.format(**fields)
    )
