"""DropBlock1D / DropBlock2D / DropBlock3D layers."""

import keras

from keras_dropouts import _checks
from keras_dropouts.layers.base import RateLayer
from keras_dropouts.ops import _block_checks
from keras_dropouts.ops.drop_block import _drop_block


class _BlockLayer(RateLayer):
    """Common arguments, validation and config of the block-dropping layers."""

    rank = None  # number of spatial axes

    def __init__(
        self,
        rate,
        block_size,
        data_format=None,
        seed=None,
        per_channel=True,
        gamma="exact",
        **kwargs,
    ):
        super().__init__(rate, seed=seed, **kwargs)
        _checks.check_no_float_sizes(
            block_size, "block_size",
            f"a positive integer or a tuple of {self.rank} positive integers (integers "
            "only, as Keras' convolution and pooling layers take; not floats such as 3.0)",
        )
        self.block_size = _block_checks.normalize_block_size(block_size, self.rank)
        self.data_format = _block_checks.normalize_data_format(data_format)
        self.per_channel = _checks.check_bool(per_channel, "per_channel")
        self.gamma = _block_checks.check_gamma(gamma)

    def _check_rank(self, x):
        _checks.check_input_rank(
            x, "inputs", (self.rank + 2,), layout=_block_checks.layout(self.rank),
            owner=type(self).__name__,
        )

    def build(self, input_shape):
        self._check_rank(keras.KerasTensor(input_shape))

    def _mask_argument(self, mask, inputs):
        if self.rank != 1 or mask is None:
            return None
        return _block_checks.check_padding_mask(mask, inputs, self.data_format)

    def call(self, inputs, training=False, mask=None):
        # Static checks (rank, dtype) run on every call: a built layer called on
        # another rank must blame the input, not `block_size`.
        self._check_rank(inputs)
        self._check_inputs(inputs)
        if not training:
            return inputs
        return self._drop(inputs, self._mask_argument(mask, inputs))

    def _drop(self, inputs, mask):
        args = self._op_arguments()
        return _drop_block(
            inputs, self.rate_source, args["block_size"], args["seed"], args["data_format"],
            args["per_channel"], mask, args["gamma"],
        )

    def _op_arguments(self):
        return {
            "block_size": self.block_size,
            "seed": self.seed_generator,
            "data_format": self.data_format,
            "per_channel": self.per_channel,
            "gamma": self.gamma,
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "block_size": self.block_size,
                "data_format": self.data_format,
                "per_channel": self.per_channel,
                "gamma": self.gamma,
            }
        )
        return config


_DOC = """Drops contiguous blocks of a feature map: DropBlock (Ghiasi et al. 2018).

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

    Args:
        rate: Float in [0, 1], the target fraction of units dropped; rate 1 drops
            every unit.
        block_size: Positive int, or a tuple of {rank} positive ints, one per
            spatial axis.
        data_format: "channels_last" {shape_last} or "channels_first"
            {shape_first}; defaults to `keras.config.image_data_format()`.
        seed: Optional int seed.
        per_channel: True (default, the paper's Algorithm 1 and its reference
            implementation, "tends to work better") draws one mask per channel;
            False shares one mask across channels: C times fewer random draws, faster
            on wide layers.
        gamma: "exact" (default): the seed rate whose expected dropped fraction
            is `rate`, solved once per map shape (the paper's formula when a
            spatial size is only known at run time); "paper": Ghiasi et al.'s
            formula, exactly.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Floating-point tensor of rank {rank_plus_2}.
        training: Python bool; blocks are dropped only when True.
        {mask_doc}
    Example:
    >>> layer = {name}(rate=0.1, block_size={example_block})
    >>> y = layer(keras.ops.ones({example_shape}), training=True)
    """


def document(cls, template, shape_last, shape_first, mask_doc, example_block, example_shape):
    """Fills a shared docstring template for the 1D/2D/3D variants of a layer."""
    cls.__doc__ = template.format(
        rank=cls.rank, rank_plus_2=cls.rank + 2, shape_last=shape_last,
        shape_first=shape_first, mask_doc=mask_doc, name=cls.__name__,
        example_block=example_block, example_shape=example_shape,
    )
    return cls


_SEQ_MASK = "mask: Optional (batch, steps) padding mask; no block is centred on padding.\n"


@keras.saving.register_keras_serializable(package="keras_dropouts")
class DropBlock1D(_BlockLayer):
    rank = 1


@keras.saving.register_keras_serializable(package="keras_dropouts")
class DropBlock2D(_BlockLayer):
    rank = 2


@keras.saving.register_keras_serializable(package="keras_dropouts")
class DropBlock3D(_BlockLayer):
    rank = 3


document(DropBlock1D, _DOC, "(B, T, C)", "(B, C, T)", _SEQ_MASK, 4, "(2, 32, 8)")
document(DropBlock2D, _DOC, "(B, H, W, C)", "(B, C, H, W)", "", 7, "(2, 28, 28, 8)")
document(DropBlock3D, _DOC, "(B, D, H, W, C)", "(B, C, D, H, W)", "", 3, "(2, 8, 8, 8, 4)")
