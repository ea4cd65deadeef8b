"""Callbacks that schedule dropout rates during `fit`.

- `DropoutScheduler(schedule, layers=None)`: any `step -> rate` schedule.
- `EarlyDropout(rate, cutoff_epoch, mode)` / `LateDropout(rate, start_epoch, mode)`:
  Liu et al. 2023.
- `select_layers(model, layers)`: the target discovery the callbacks use.
"""

from keras_dropouts.callbacks.early_late import EarlyDropout, LateDropout
from keras_dropouts.callbacks.scheduler import DropoutScheduler
from keras_dropouts.callbacks.targets import select_layers

__all__ = [
    "DropoutScheduler",
    "EarlyDropout",
    "LateDropout",
    "select_layers",
]
