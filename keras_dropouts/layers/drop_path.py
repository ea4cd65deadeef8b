"""DropPath: stochastic depth for residual branches (Huang et al. 2016)."""

import keras

from keras_dropouts.layers.base import RateLayer
from keras_dropouts.ops.dropout import drop_path


@keras.saving.register_keras_serializable(package="keras_dropouts")
class DropPath(RateLayer):
    """Drops the whole residual branch of a sample with probability `rate`.

    Put it on the branch output, before the residual add: `x + DropPath(r)(f(x))`.
    Kept samples are scaled by 1/(1-rate), so expectations are unchanged; at
    inference it is the identity. For a network of `depth` blocks the usual rule
    (and `LateDropout(..., depth_rule=True)`) is rates `linspace(0, rate, depth)`.

    Args:
        rate: Float in [0, 1], the probability of dropping a sample's branch.
        seed: Optional int seed.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Tensor with the batch on axis 0.
        training: Python bool; the branch is dropped only when True.

    Example:
    >>> x = keras.Input((16,))
    >>> y = keras.layers.Add()([x, DropPath(0.1)(keras.layers.Dense(16)(x))])
    """

    def call(self, inputs, training=False):
        if not training:
            return inputs
        return drop_path(inputs, self._rate, seed=self.seed_generator)
