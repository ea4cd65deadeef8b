"""Rates computed inside the compiled train step, from the optimizer's step counter.

One `StepSchedules` object per model collects, for the duration of one `fit`,
what every scheduling callback wants for its package layers, and installs one
wrapper around the model's `train_step`. Before the original step runs, the
wrapper reads the optimizer's iteration counter and writes every scheduled rate:

- JAX: `train_step(state, data)` is pure. The step comes from the optimizer
  variables in `state` (reading `optimizer.iterations` inside the trace would give
  its trace-time value), and the rates replace the rate variables' entries of the
  non-trainable part of `state`; the fit loop carries them to the next step and
  syncs them into the variables at the end of the epoch.
- TensorFlow: in-graph reads of the counter and assigns of the rate variables;
  automatic control dependencies order them before the forward pass.
- torch: on-device arithmetic and one batched copy into the rate variables; no
  value ever goes to the host.

Built-in schedules are read from each layer's `rate_schedule` variable (two
knots, see `keras_dropouts.schedules`), so a new schedule is a variable write
at `fit` start, not a retrace. A traceable user callable is traced into the step
(a new callable means one retrace). The compiled function is cached per model
and per set of targets and reused by later `fit` calls.
"""

import weakref

import keras
from keras import ops

from keras_dropouts._compat import optimizer_step_counter
from keras_dropouts.schedules import two_knots

_HUBS = weakref.WeakKeyDictionary()
_MISSING = object()
_CACHE_SIZE = 8


def hub_for(model):
    """The `StepSchedules` of `model` (created on first use)."""
    hub = _HUBS.get(model)
    if hub is None:
        hub = StepSchedules(model)
        _HUBS[model] = hub
    return hub


class FnGroup:
    """A traceable user schedule driving `layers`, with a constant factor per layer."""

    def __init__(self, fn, layers, scales):
        self.fn = fn
        self.layers = list(layers)
        self.scales = [float(s) for s in scales]

    def key(self):
        return (id(self.fn), tuple(id(layer) for layer in self.layers), tuple(self.scales))


class StepSchedules:
    """Registry of one `fit`'s scheduled layers; owns the model's `train_step` wrapper."""

    def __init__(self, model):
        self._model_ref = weakref.ref(model)
        self._session = None
        self._owners = {}  # id(layer) -> (layer, callback)
        self._log_keys = {}  # log key -> callback
        self._knot_groups = []  # lists of layers whose `rate_schedule` values are equal
        self._fn_groups = []
        self._installed = False
        self._saved_train_step = _MISSING
        self._saved_train_function = None
        self._cache = {}

    @property
    def model(self):
        return self._model_ref()

    # Registration ------------------------------------------------------------------------------

    def begin(self, callback):
        """Starts (or joins) the current `fit`, identified by the callbacks' params dict."""
        session = callback.params
        if self._session is not session:
            if self._installed:  # a previous `fit` ended without `on_train_end` (exception)
                self.uninstall()
            self._session = session
            self._owners = {}
            self._log_keys = {}
            self._knot_groups = []
            self._fn_groups = []

    def claim(self, callback, layers, log_key):
        """Records `callback` as the only scheduler of `layers` and of the log `log_key`."""
        for layer in layers:
            owner = self._owners.get(id(layer))
            if owner is not None and owner[1] is not callback:
                raise ValueError(
                    f"Layer {layer.name!r} is targeted by two dropout schedules in the same "
                    f"`fit`: {_describe(owner[1])} and {_describe(callback)}. A layer may be "
                    "driven by at most one schedule: give the callbacks disjoint `layers=`."
                )
        if log_key is not None:
            other = self._log_keys.get(log_key)
            if other is not None and other is not callback:
                raise ValueError(
                    f"Two dropout schedules log under the same key {log_key!r}: "
                    f"{_describe(other)} and {_describe(callback)}. Pass a distinct "
                    "`log_name=` to one of them."
                )
            self._log_keys[log_key] = callback
        for layer in layers:
            self._owners[id(layer)] = (layer, callback)

    def add_knots(self, groups):
        """Schedules the layers of `groups` (lists of layers) from their `rate_schedule`
        variables; the layers of one group hold equal values.

        On JAX the step computes a group's rate once, from its first layer's knots: one
        scalar computation per layer was a kernel launch per layer on a GPU.
        """
        self._knot_groups.extend(list(g) for g in groups)
        self._install()

    def add_fn(self, fn, layers, scales):
        """Schedules `layers` with `fn(step) * scale`, traced into the step."""
        self._fn_groups.append(FnGroup(fn, layers, scales))
        self._install()

    # Installation ----------------------------------------------------------------------------

    def _key(self, model):
        return (
            id(self._saved_train_function),
            tuple(tuple(id(layer) for layer in g) for g in self._knot_groups),
            tuple(g.key() for g in self._fn_groups),
            model.steps_per_execution,
            model.jit_compile,
        )

    def _take_over(self, model):
        """Remembers the model's own `train_step` and train function (once per `fit`)."""
        if not self._installed:
            self._saved_train_step = model.__dict__.get("train_step", _MISSING)
            self._saved_train_function = model.train_function
            self._installed = True

    def _install(self):
        model = self.model
        self._take_over(model)
        key = self._key(model)
        cached = self._cache.get(key)
        if cached is not None:
            wrapper, function = cached
            _set_train_step(model, wrapper)
            model.train_function = function
            return
        self.refresh()
        self._cache[key] = (model.__dict__["train_step"], model.train_function)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))

    def refresh(self):
        """Installs a fresh wrapper and rebuilds the train function (one retrace).

        Also what the stock-layer path calls after changing a stock layer's rate:
        `jax.jit` caches traces by function, so the wrapper must be a new object.
        """
        model = self.model
        self._take_over(model)
        _set_train_step(model, self._make_wrapper(model))
        model.make_train_function(force=True)

    def uninstall(self, keep_function=True):
        """Restores the model's own `train_step` and the train function it had."""
        model = self.model
        if not self._installed or model is None:
            return
        if self._saved_train_step is _MISSING:
            model.__dict__.pop("train_step", None)
        else:
            _set_train_step(model, self._saved_train_step)
        model.train_function = self._saved_train_function if keep_function else None
        self._installed = False
        self._saved_train_step = _MISSING
        self._saved_train_function = None

    def end(self, keep_function=True):
        """Ends the current `fit`: uninstalls and forgets the registrations."""
        self.uninstall(keep_function=keep_function)
        self._session = None
        self._owners = {}
        self._log_keys = {}
        self._knot_groups = []
        self._fn_groups = []

    # The wrapper ---------------------------------------------------------------------------------

    def _original_step(self, model):
        if self._saved_train_step is not _MISSING:
            return self._saved_train_step
        return getattr(type(model), "train_step").__get__(model)

    def _make_wrapper(self, model):
        original = self._original_step(model)
        knot_groups = [list(g) for g in self._knot_groups]
        knot_layers = [layer for g in knot_groups for layer in g]
        groups = list(self._fn_groups)
        layers = knot_layers + [layer for g in groups for layer in g.layers]
        if not layers:

            def plain_step(*args, **kwargs):
                return original(*args, **kwargs)

            return plain_step
        rate_vars = [layer.rate_variable for layer in layers]
        knot_vars = [layer.rate_schedule_variable for layer in knot_layers]
        scales = [ops.convert_to_tensor(g.scales, "float32") for g in groups]

        def clean(r):
            # A NaN from a user schedule drops nothing rather than everything.
            return ops.clip(ops.where(ops.isnan(r), 0.0, r), 0.0, 1.0)

        def rate_list(step, knots):
            """One float32 scalar per layer (JAX), computed once per knot group (`knots`:
            the first layer's knots of each group). Kept unstacked: under XLA on JAX,
            stacking 50 schedules and slicing the rates back out cost 30% of a
            dispatch-bound step (CPU proxy of a GPU step; see benchmarks/RESULTS.md)."""
            out = []
            for k, group in zip(knots, knot_groups):
                out.extend([clean(two_knots(step, k[0], k[1], k[2], k[3]))] * len(group))
            for group in groups:
                value = ops.cast(group.fn(step), "float32")
                out.extend(clean(value * s) for s in group.scales)
            return out

        def rate_vector(step, knots):
            """All rates as one vector (torch: a handful of eager kernels, not 50;
            TensorFlow: measured faster than one scalar per layer)."""
            parts = []
            if knots:
                k = ops.stack(knots)
                parts.append(two_knots(step, k[:, 0], k[:, 1], k[:, 2], k[:, 3]))
            for group, scale in zip(groups, scales):
                parts.append(ops.cast(group.fn(step), "float32") * scale)
            return clean(parts[0] if len(parts) == 1 else ops.concatenate(parts))

        counter, every = optimizer_step_counter(model.optimizer)
        backend = keras.backend.backend()
        if backend == "jax":
            non_trainable = {id(v): i for i, v in enumerate(model.non_trainable_variables)}
            rate_slots = [non_trainable[id(v)] for v in rate_vars]
            knot_slots = [non_trainable[id(g[0].rate_schedule_variable)] for g in knot_groups]
            optimizer_vars = [id(v) for v in model.optimizer.variables]
            step_slot = optimizer_vars.index(id(counter))

            def train_step(state, data):
                trainable, non_trainable_values, optimizer_values, metrics = state
                step = optimizer_values[step_slot] // every
                new = rate_list(step, [non_trainable_values[i] for i in knot_slots])
                non_trainable_values = list(non_trainable_values)
                for slot, rate in zip(rate_slots, new):
                    non_trainable_values[slot] = rate
                return original((trainable, non_trainable_values, optimizer_values, metrics), data)

            return train_step

        if backend == "torch":
            from keras_dropouts.backend.torch import rate_step as _torch

            assign = _torch_assigner(rate_vars)
            if groups:

                def train_step(*args, **kwargs):
                    assign(rate_vector(counter.value // every, [v.value for v in knot_vars]))
                    return original(*args, **kwargs)

                return train_step
            # Built-in schedules only: raw torch ops on a cached stack of the knots
            # (the generic ops cost ~0.5 ms a step in eager dispatch).
            stack = _torch.KnotStack()

            def train_step(*args, **kwargs):
                knots = stack([v.value for v in knot_vars])
                assign(_torch.two_knot_rates(counter.value // every, knots))
                return original(*args, **kwargs)

            return train_step

        def train_step(*args, **kwargs):
            new = rate_vector(counter.value // every, [v.value for v in knot_vars])
            for k, v in enumerate(rate_vars):  # TensorFlow: the vector measured faster
                v.assign(new[k])
            return original(*args, **kwargs)

        return train_step


def _torch_assigner(variables):
    """Returns `assign(vector)`: `variables[k] = vector[k]` on the device, in one batched
    copy, and primes the torch branch's per-value cache of (rate, 1 / keep) with the
    same vector, so that 50 layers do not each recompute their scale every step."""
    import torch

    from keras_dropouts.backend.torch import rate_step as _torch

    def assign(vector):
        with torch.no_grad():
            targets = [v.value for v in variables]
            sources = list(torch.unbind(vector.to(targets[0].dtype), 0))
            if hasattr(torch, "_foreach_copy_"):
                torch._foreach_copy_(targets, sources)
            else:
                for t, src in zip(targets, sources):
                    t.copy_(src)
            _torch.prime_dropout_scalars(targets, vector)

    return assign


def _set_train_step(model, fn):
    # Plain instance attribute: no Keras tracking, and on torch no Module registration.
    model.__dict__["train_step"] = fn


def _describe(callback):
    name = getattr(callback, "log_key", None)
    kind = type(callback).__name__
    return f"{kind}(log_name={name!r})" if name else kind


def traceable(fn, step_dtype):
    """None if `fn(step)` traces with a scalar tensor step, else the reason it does not."""
    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            out = jax.eval_shape(lambda s: ops.convert_to_tensor(fn(s)), jax.ShapeDtypeStruct((), step_dtype))
            shape = tuple(out.shape)
        elif backend == "tensorflow":
            import tensorflow as tf

            # Keras traces its train step without AutoGraph: no Python `if` on tensors.
            traced = tf.function(lambda s: ops.convert_to_tensor(fn(s)), autograph=False)
            concrete = traced.get_concrete_function(tf.TensorSpec((), step_dtype))
            shape = tuple(concrete.structured_outputs.shape)
        else:
            out = ops.convert_to_tensor(fn(ops.convert_to_tensor(0, step_dtype)))
            shape = tuple(out.shape)
    except Exception as e:  # noqa: BLE001 - any failure means "evaluate on the host"
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if shape != ():
        return f"it returns shape {shape}, not a scalar"
    return None
