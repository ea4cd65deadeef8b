"""torch runs `common`'s compute-skipping residual (eager: only the chosen bucket runs)."""

from keras_dropouts.backend.common.residual import stochastic_residual  # noqa: F401
