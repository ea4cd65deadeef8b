"""DropBlock1D / DropBlock2D / DropBlock3D layers."""

import keras

from keras_dropouts import _checks
from keras_dropouts.layers._docstrings import docstring
from keras_dropouts.layers.base import RateLayer
from keras_dropouts.ops import _block_checks
from keras_dropouts.ops.drop_block import _drop_block


class _BlockLayer(RateLayer):
    """Common arguments, validation and config of the block-dropping layers."""

    rank = None  # number of spatial axes

    def __init_subclass__(cls, rank=None, **kwargs):
        # A public layer of a family names its rank (`class DropBlock2D(_BlockLayer,
        # rank=2)`); it gets its docstring from the family's template
        # (`layers/_docstrings.py`) and is registered for `.keras` files.
        super().__init_subclass__(**kwargs)
        if rank is not None:
            cls.rank = rank
            cls.__doc__ = docstring(cls.__name__)
            keras.saving.register_keras_serializable(package="keras_dropouts")(cls)

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


class DropBlock1D(_BlockLayer, rank=1):
    ...


class DropBlock2D(_BlockLayer, rank=2):
    ...


class DropBlock3D(_BlockLayer, rank=3):
    ...
