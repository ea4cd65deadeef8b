"""`SurgeryModel`: a functional model that remembers the layers swapped inside its
subclassed layers, so that a `.keras` file restores them."""

import keras

from keras_dropouts import _internals
from keras_dropouts._internals import Functional
from keras_dropouts.surgery._attributes import redo_swap


@keras.saving.register_keras_serializable(package="keras_dropouts")
class SurgeryModel(Functional):
    """A functional model returned by `swap_dropout` when it converted layers held as
    attributes of subclassed layers (e.g. keras-hub's `TransformerEncoder` dropout).

    A subclassed layer rebuilds its own sub-layers from its config, so a plain
    functional model would load them back as they were before the surgery. This class
    adds to its config the path of each swapped layer and that layer's config, and
    `from_config` swaps them again before the weights are loaded; everything else is a
    functional `keras.Model`.

    Args:
        inputs: The model's inputs, as for a functional `keras.Model`.
        outputs: The model's outputs.
        name: The model's name.

    Example:
    >>> new = keras_dropouts.surgery.swap_dropout(bert_backbone)
    >>> new.save("bert.keras")
    >>> keras.models.load_model("bert.keras")  # ScheduledDropout inside each block again
    """

    # No `__init__` of its own: Keras revives a functional subclass from its config only
    # when its constructor's signature is `Functional.__init__`'s (in Keras 3.8 a
    # wrapped function), so it is inherited as it is.

    def _record_swaps(self, swaps):
        # Not a tracked attribute: the swapped layers belong to their owners.
        _internals.set_instance_attribute(self, "_surgery_swaps", list(swaps))

    def get_config(self):
        config = super().get_config()
        config["attribute_swaps"] = [
            {"path": path, "layer": keras.saving.serialize_keras_object(layer)}
            for path, layer in _internals.get_instance_attribute(self, "_surgery_swaps") or []
        ]
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        entries = config.pop("attribute_swaps", [])
        model = super().from_config(config, custom_objects=custom_objects)
        swaps = []
        for entry in entries:
            layer = keras.saving.deserialize_keras_object(entry["layer"], custom_objects=custom_objects)
            redo_swap(model, entry["path"], layer)
            swaps.append((entry["path"], layer))
        model._record_swaps(swaps)
        return model


def keep_swaps(model, swaps):
    """A `SurgeryModel` computing what `model` computes, that records `swaps`
    (`[(path, layer)]`, paths from `model`). A plain functional or Sequential model is
    rebuilt on its own layers; any other class (a keras-hub backbone, whose config is
    its constructor's arguments) is nested whole, so that its config still rebuilds it."""
    if type(model) in (Functional, keras.Sequential):
        new = SurgeryModel(model.input, model.output, name=model.name)
    else:
        inputs = keras.tree.map_structure(
            lambda t: keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name), model.input
        )
        new = SurgeryModel(inputs, model(inputs), name=model.name)
        swaps = [([["layer", model.name]] + path, layer) for path, layer in swaps]
    new._record_swaps(swaps)
    return new
