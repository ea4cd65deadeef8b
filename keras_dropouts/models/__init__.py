"""Models: RDropModel."""

from keras_dropouts.models.rdrop import RDropModel

__all__ = ["RDropModel"]
