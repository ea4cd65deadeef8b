"""ProbDropBlock1D / 2D / 3D layers (Zhao et al., ACML 2023)."""

import keras

from keras_dropouts import _checks
from keras_dropouts.layers.drop_block import _BlockLayer, document
from keras_dropouts.ops.prob_drop_block import _prob_drop_block


class _ProbBlockLayer(_BlockLayer):
    def __init__(
        self,
        rate,
        block_size,
        data_format=None,
        seed=None,
        per_channel=True,
        inverse_salience=False,
        gamma="exact",
        **kwargs,
    ):
        super().__init__(
            rate, block_size, data_format=data_format, seed=seed, per_channel=per_channel,
            gamma=gamma, **kwargs,
        )
        self.inverse_salience = _checks.check_bool(inverse_salience, "inverse_salience")

    def _drop(self, inputs, mask):
        args = self._op_arguments()
        return _prob_drop_block(
            inputs, self.rate_source, args["block_size"], args["seed"], args["data_format"],
            args["per_channel"], self.inverse_salience, mask, args["gamma"],
        )

    def get_config(self):
        config = super().get_config()
        config["inverse_salience"] = self.inverse_salience
        return config


_DOC = """DropBlock whose block centres follow feature salience (ProbDropBlock).

    Zhao et al., "Revisiting Structured Dropout" (ACML 2023). Each valid centre is a
    seed with probability `clip(gamma * s / mean(s), 0, 1)`, where `s = |x|` (no
    gradient; averaged over channels when the mask is shared) and `gamma` is
    DropBlock's seed rate (by default corrected for overlapping blocks, so that the
    expected dropped fraction is `rate` when salience is uniform), so on average as
    many blocks are dropped as with DropBlock at the same rate, but salient regions
    are dropped more often. The paper ramps
    the rate linearly from 0 over training (e.g. `DropoutScheduler` with
    `schedules.LinearRamp`); its RoBERTa setting used block 4 and a 0 -> 0.1 ramp.

    Args:
        rate: Float in [0, 1], the target fraction of units dropped; rate 1 drops
            every unit.
        block_size: Positive int, or a tuple of {rank} positive ints, one per
            spatial axis.
        data_format: "channels_last" {shape_last} or "channels_first"
            {shape_first}; defaults to `keras.config.image_data_format()`.
        seed: Optional int seed.
        per_channel: One mask per channel (default) or one shared mask (False).
        inverse_salience: If True, prefer the least salient positions instead.
        gamma: "exact" (default) or "paper": DropBlock's seed rate, corrected for
            overlapping blocks or Ghiasi et al.'s formula (see DropBlock2D).
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Floating-point tensor of rank {rank_plus_2}.
        training: Python bool; blocks are dropped only when True.
        {mask_doc}
    Example:
    >>> layer = {name}(rate=0.1, block_size={example_block})
    >>> y = layer(keras.ops.ones({example_shape}), training=True)
    """

_SEQ_MASK = (
    "mask: Optional (batch, steps) padding mask (e.g. from `Embedding(mask_zero=True)`):\n"
    "            padding never counts toward salience and never hosts a block centre.\n"
)


@keras.saving.register_keras_serializable(package="keras_dropouts")
class ProbDropBlock1D(_ProbBlockLayer):
    rank = 1


@keras.saving.register_keras_serializable(package="keras_dropouts")
class ProbDropBlock2D(_ProbBlockLayer):
    rank = 2


@keras.saving.register_keras_serializable(package="keras_dropouts")
class ProbDropBlock3D(_ProbBlockLayer):
    rank = 3


document(ProbDropBlock1D, _DOC, "(B, T, C)", "(B, C, T)", _SEQ_MASK, 4, "(2, 32, 16)")
document(ProbDropBlock2D, _DOC, "(B, H, W, C)", "(B, C, H, W)", "", 7, "(2, 28, 28, 8)")
document(ProbDropBlock3D, _DOC, "(B, D, H, W, C)", "(B, C, D, H, W)", "", 3, "(2, 8, 8, 8, 4)")
