"""ProbDropBlock1D / 2D / 3D layers (Zhao et al., ACML 2023)."""

from keras_dropouts import _checks
from keras_dropouts.layers.drop_block import _BlockLayer
from keras_dropouts.ops.prob_drop_block import _prob_drop_block


class _ProbBlockLayer(_BlockLayer):
    """A block layer whose block centres follow salience (`inverse_salience` added to
    `_BlockLayer`'s arguments, before `gamma`)."""

    def __init__(self, rate, block_size, data_format=None, seed=None, per_channel=True,
                 inverse_salience=False, gamma="exact", **kwargs):
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


class ProbDropBlock1D(_ProbBlockLayer, rank=1):
    ...


class ProbDropBlock2D(_ProbBlockLayer, rank=2):
    ...


class ProbDropBlock3D(_ProbBlockLayer, rank=3):
    ...
