"""StochasticResidual: a residual block whose dropped branches cost no compute."""

import keras

from keras_dropouts import _checks
from keras_dropouts.layers.base import RateLayer
from keras_dropouts.ops.dropout import _dropout, path_noise_shape
from keras_dropouts.ops.stochastic_residual import (
    DEFAULT_BUCKETS,
    branch_variables,
    check_buckets,
    stochastic_residual,
)


@keras.saving.register_keras_serializable(package="keras_dropouts")
class StochasticResidual(RateLayer):
    """`x + DropPath(rate)(branch(x))` that runs `branch` only on the kept samples.

    A residual block with stochastic depth (Huang et al. 2016) whose branch is
    evaluated on a random subset of the batch of static size, scattered back and
    scaled so that the expected output is the block's `x + branch(x)`; each sample's
    branch is dropped with probability `rate`. At rates 0.1-0.5 (large vision
    transformers) this saves that fraction of the branch's training compute. The
    subset size follows the rate through `buckets + 1` sizes `ceil(j * B / buckets)`,
    all compiled in one trace and chosen inside the step (`keras.ops.switch`), so the
    rate is a variable that `DropoutScheduler`, `EarlyDropout` and `LateDropout`
    schedule inside the compiled step without a retrace. Sampling: a fixed-size
    subset (DINOv2) with randomised rounding between buckets; see
    `keras_dropouts.ops.stochastic_residual` for why. At inference it is
    `x + branch(x)`.

    The name: keras-cv's `StochasticDepth` takes `[shortcut, residual]`, the branch
    already computed for every sample, so it cannot skip work; this layer wraps the
    branch (as `keras.layers.Wrapper` wraps a layer) and owns the residual add.

    A branch with batch statistics (BatchNorm) sees only the subset in training, and
    updates its moving statistics from it (not at all when every branch is dropped).
    `skip_compute=False` computes the branch for the whole batch and applies
    `DropPath` (per-sample Bernoulli draws): the same expectation, no saving.
    On JAX (`jax.checkpoint`) and TensorFlow (a custom gradient) the backward pass
    recomputes the chosen size's forward pass (a dropout inside the branch draws the
    same masks again) instead of carrying every size's saved activations out of the
    switch.

    Called on a pair `[shortcut, x]` it computes `shortcut + DropPath(rate)(branch(x))`:
    a block with a projection shortcut (`proj(x) + f(x)`, ResNet's first block of a
    stage), whose projection runs on the whole batch outside this layer.
    `keras_dropouts.surgery.insert_drop_path(model, rate, skip_compute=True)` builds
    these layers from the residual blocks of a functional model.

    Args:
        branch: A Keras layer (or model) mapping a batch to a tensor of its shape (of
            the shortcut's shape, when called on a pair).
        rate: Float in [0, 1], the probability of dropping a sample's branch.
        buckets: Int >= 1, the number of non-zero subset sizes compiled (default 8;
            each traces the branch once).
        skip_compute: Bool, default True; False runs the branch on every sample.
        seed: Optional int seed.
        **kwargs: Base layer arguments.

    Call arguments:
        inputs: Floating-point tensor `x`, batch first, or a pair `[shortcut, x]`; the
            output has the (shortcut's) shape and dtype.
        training: Python bool; branches are dropped only when True.

    Example:
    >>> mlp = keras.Sequential([keras.layers.Dense(64, "gelu"), keras.layers.Dense(16)])
    >>> x = keras.Input((10, 16))
    >>> y = StochasticResidual(mlp, 0.2)(x)
    """

    def __init__(self, branch, rate, buckets=DEFAULT_BUCKETS, skip_compute=True, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        if not isinstance(branch, keras.layers.Layer):
            raise _checks.invalid("branch", "a Keras layer", branch)
        self.branch = branch
        self.buckets = check_buckets(buckets)
        self.skip_compute = _checks.check_bool(skip_compute, "skip_compute")

    def build(self, input_shape):
        branch_variables(self.branch, _split(input_shape)[1])
        self.built = True

    def call(self, inputs, training=False):
        shortcut, x = _split(inputs)
        self._check_inputs(x)
        self._check_inputs(shortcut)
        if not training:
            return shortcut + keras.ops.cast(self.branch(x), shortcut.dtype)
        if not self.skip_compute:
            out = keras.ops.cast(self.branch(x), shortcut.dtype)
            noise_shape = path_noise_shape(out)
            return shortcut + _dropout(out, self.rate_source, noise_shape, self.seed_generator)
        return stochastic_residual(
            x, self.branch, self.rate_source, self.seed_generator, self.buckets, self.branch.variables,
            shortcut=None if shortcut is x else shortcut,
        )

    def compute_output_shape(self, input_shape):
        return _split(input_shape)[0]

    def compute_mask(self, inputs, mask=None):
        return _split(mask)[0] if mask is not None else None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "branch": keras.saving.serialize_keras_object(self.branch),
                "buckets": self.buckets,
                "skip_compute": self.skip_compute,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["branch"] = keras.saving.deserialize_keras_object(config["branch"])
        return cls(**config)


def _split(inputs):
    """`(shortcut, x)` of a call's inputs (or their shapes): a pair `[shortcut, x]`, or
    one tensor that is both."""
    if isinstance(inputs, (list, tuple)) and len(inputs) == 2 and not isinstance(inputs[0], (int, type(None))):
        return inputs[0], inputs[1]
    return inputs, inputs
