"""The running mean behind `RDropModel`'s `consistency_loss` log."""

import keras

from keras_dropouts import backend


class RunningMean(keras.metrics.Metric):
    """Mean of a scalar over the steps of an epoch: `keras.metrics.Mean` for one scalar
    per step, with fewer backend ops (it is updated every train step): the sum and the
    count are one variable `[total, count]`, updated by one add (one fused kernel on
    XLA, one variable assignment on TF; two in-place adds on torch).

    `muted()` true (inside `evaluate` and its step, whose logs drop this entry) makes
    `result()` a constant, so evaluation computes nothing for it.

    Args:
        name: The metric's (and log entry's) name.
        muted: Optional callable; while it returns True, `result()` is 0.
    """

    def __init__(self, name, muted=None):
        super().__init__(name=name)
        self.state = self.add_variable(shape=(2,), initializer="zeros", dtype=self.dtype, name="state")
        self._muted = muted

    def update_state(self, value):
        backend.tracker.update(self.state, value)

    def result(self):
        if self._muted is not None and self._muted():
            return 0.0
        return backend.tracker.result(self.state)
