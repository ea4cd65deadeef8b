"""What `RDropModel`'s hooks tell each other within one step, per thread.

Per thread because `tf.distribute` traces each replica's train step in its own thread.
`train_step` marks the trace of `fit`'s own step (only there is the batch tiled);
`testing` counts nested `evaluate` / `test_step` / `test_on_batch` calls (their logs
have no consistency term); `first_pass` hands the split made in `compute_loss` to
`compute_metrics`.
"""

import contextlib
import threading


class PassState(threading.local):
    """Per-thread flags of one `RDropModel` (see the module docstring)."""

    def __init__(self):
        super().__init__()
        self.in_train_step = False
        self.testing = 0
        self.first_pass = None

    @contextlib.contextmanager
    def train_step(self):
        self.in_train_step = True
        try:
            yield
        finally:
            self.in_train_step = False
            self.first_pass = None

    @contextlib.contextmanager
    def testing_scope(self):
        depth = self.testing
        self.testing = depth + 1
        try:
            yield
        finally:
            self.testing = depth
