"""`swap_dropout`: stock dropout and foreign drop-path layers -> ours, wherever they are."""

import warnings

from keras_dropouts._checks import check_bool
from keras_dropouts.surgery._attributes import swap_attributes
from keras_dropouts.surgery._common import check_model, graph_layers, report
from keras_dropouts.surgery._convert import Converter
from keras_dropouts.surgery._copy import Rewrite, copy_rewired, fresh_copy
from keras_dropouts.surgery._model import keep_swaps


class _Swap(Rewrite):
    def __init__(self, converter):
        self.converter = converter

    def replace(self, layer):
        return self.converter.convert(layer)


def swap_dropout(model, verbose=True):
    """Returns a copy of `model` with schedulable dropout and drop-path layers.

    - Stock `keras.layers.Dropout` / `SpatialDropout1D/2D/3D` become `ScheduledDropout`
      with the same rate, noise shape (channel-wise for `SpatialDropout*`), seed and name.
    - Other libraries' per-sample drop-path layers, recognised by type, become
      `keras_dropouts.layers.DropPath` with the same rate, seed and name: Keras'
      ConvNeXt `StochasticDepth` (`keras.applications.ConvNeXt*`), keras-cv's `DropPath`
      and keras-hub's Swin, MiT and MobileNetV5 `DropPath` (all: a per-sample keep mask
      with probability `1 - rate`, kept samples scaled by `1 / (1 - rate)`, as ours). A
      foreign layer that computes something else (keras-hub's `DINOV2DropPath` /
      `DINOV3DropPath`, multiplicative noise; MobileNetV5's with `scale_by_keep=False`;
      keras-cv's two-input `StochasticDepth`, one draw for the whole batch) is kept as
      it is and named in a warning.

    Both are found in the graph (nested Sequential / functional models included) and
    as attributes of subclassed layers, at any depth: keras-hub's `TransformerEncoder`
    and ViT blocks, `keras.layers.MultiHeadAttention`'s attention dropout (usually at
    rate 0: late dropout can switch it on). The input model is not changed: the new
    model's layers are copies (from their configs) with copies of the weights, so at
    inference it computes exactly what `model` computes. When layers held as
    attributes were converted, the new model is a `SurgeryModel` (a functional model
    whose `.keras` file restores those layers); otherwise a functional or Sequential
    model. The new layers' rates can be scheduled by `DropoutScheduler` /
    `EarlyDropout` / `LateDropout` without retracing, including from 0. Compile the
    returned model before training.

    Args:
        model: A built Sequential or functional `keras.Model` (keras-hub backbones are
            functional models).
        verbose: Print one line counting each kind of change.

    Returns:
        A new, uncompiled `keras.Model`.

    Raises:
        TypeError: if `model` is not a `keras.Model`.
        ValueError: for subclassed models (their `call` cannot be rewired; build
            them with `ScheduledDropout` / `DropPath` directly).

    Example:
    >>> new_model = swap_dropout(model)
    swap_dropout: 3 Dropout -> ScheduledDropout, 2 StochasticDepth -> DropPath
    >>> new_model.compile(...)
    >>> new_model.fit(x, y, callbacks=[EarlyDropout(0.1, cutoff_epoch=5)])
    """
    check_model(model, "swap_dropout")
    verbose = check_bool(verbose, "verbose")
    converter = Converter()
    new = _copy_graph(model, converter)
    swaps = swap_attributes(new, converter.convert)
    if swaps:
        new = keep_swaps(new, swaps)
    _warn_kept(converter)
    if verbose:
        report("swap_dropout", _report_parts(converter, swaps))
    return new


def _copy_graph(model, converter):
    """A copy of `model` with its graph's layers converted by `converter` (a plain copy
    where there is nothing to convert)."""
    graph = graph_layers(model)
    if any(converter.converts(layer) for layer in graph):
        return copy_rewired(model, lambda m: _Swap(converter.reset()))
    for layer in graph:  # nothing to convert: this only names foreign layers kept
        converter.convert(layer)
    return fresh_copy(model)


def _warn_kept(converter):
    """Names the foreign layers kept as they are in one warning (attributed to the caller
    of `swap_dropout`)."""
    if converter.kept:
        warnings.warn(
            "swap_dropout kept layers whose drop path is not DropPath's (per-sample, "
            "rescaled by 1/keep): " + "; ".join(converter.kept),
            stacklevel=3,
        )


def _report_parts(converter, swaps):
    """The parts of the `verbose=True` line: each kind of conversion, then how many were
    attributes of subclassed layers and how many foreign layers were kept."""
    parts = [f"{n} {src} -> {dst}" for (src, dst), n in converter.counts.items()]
    if swaps:
        parts.append(f"{len(swaps)} of them inside subclassed layers")
    if converter.kept:
        parts.append(f"{len(converter.kept)} kept (different semantics)")
    return parts
