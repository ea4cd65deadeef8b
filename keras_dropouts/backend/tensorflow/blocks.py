"""Block masks on TensorFlow: replica-independent noise, pools in bfloat16.

TF's MaxPool3D and GPU MaxPool kernels have no int8 (half, bfloat16, float), and its
CPU float16 pool is emulated (1.3x slower than bfloat16 in the CPU train-step
benchmark); its CPU pool is channels_last only.
"""

from keras_dropouts.backend.common.blocks import BlockMasks
from keras_dropouts.backend.tensorflow import gamma, noise

_MASKS = BlockMasks(noise.uniform, gamma.exact_gamma, pool_dtype="bfloat16")
drop_block = _MASKS.drop_block
prob_drop_block = _MASKS.prob_drop_block
