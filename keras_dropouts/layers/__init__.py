"""Keras layers: DropBlock, ProbDropBlock, DropPath and ScheduledDropout."""

from keras_dropouts.layers.base import RateLayer
from keras_dropouts.layers.drop_path import DropPath
from keras_dropouts.layers.scheduled_dropout import ScheduledDropout

__all__ = ["RateLayer", "DropPath", "ScheduledDropout"]
