"""Keras layers: DropBlock, ProbDropBlock, DropPath, ScheduledDropout, StochasticResidual.

Model surgery: `keras_dropouts.surgery`."""

from keras_dropouts.layers.base import RateLayer
from keras_dropouts.layers.drop_block import DropBlock1D, DropBlock2D, DropBlock3D
from keras_dropouts.layers.drop_path import DropPath
from keras_dropouts.layers.prob_drop_block import (
    ProbDropBlock1D,
    ProbDropBlock2D,
    ProbDropBlock3D,
)
from keras_dropouts.layers.scheduled_dropout import ScheduledDropout
from keras_dropouts.layers.stochastic_residual import StochasticResidual

__all__ = [
    "RateLayer",
    "DropBlock1D",
    "DropBlock2D",
    "DropBlock3D",
    "ProbDropBlock1D",
    "ProbDropBlock2D",
    "ProbDropBlock3D",
    "DropPath",
    "ScheduledDropout",
    "StochasticResidual",
]
