"""Old home of `swap_dropout` / `to_scheduled_dropout`; they live in `keras_dropouts.layers`."""

from keras_dropouts.layers.swap import swap_dropout, to_scheduled_dropout

__all__ = ["swap_dropout", "to_scheduled_dropout"]
