"""R-Drop's consistency term on JAX: `common`'s, which may be the step's only loss."""

from keras_dropouts.backend.common.consistency import num_replicas, tiled, wanted  # noqa: F401

# Keras' JAX trainer takes a step whose only loss is the consistency term.
MAY_BE_THE_ONLY_LOSS = True
