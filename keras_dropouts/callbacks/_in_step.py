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

from keras import ops

from keras_dropouts._step_owner import owner_of, per_model
from keras_dropouts.backend import rate_step
from keras_dropouts.layers.base import link_rate, unlink_rates
from keras_dropouts.schedules import two_knots

_HUBS = weakref.WeakKeyDictionary()


def hub_for(model):
    """The `StepSchedules` of `model` (created on first use)."""
    return per_model(_HUBS, model, StepSchedules)


def group_by_scale(layers, scales):
    """`{scale: [layers with that scale]}` in first-seen order: the layers of one group
    share one computed rate (the first is the group's leader)."""
    groups = {}
    for layer, scale in zip(layers, scales):
        groups.setdefault(float(scale), []).append(layer)
    return groups


class FnGroup:
    """A traceable user schedule driving `layers`, with a constant factor per layer.

    `leaders` has one layer per distinct factor (`leader_scales`): the step computes
    and writes only their rates; the other layers read their leader's (`link_rate`).
    """

    def __init__(self, fn, layers, scales):
        self.fn = fn
        self.layers = list(layers)
        self.scales = [float(s) for s in scales]
        by_scale = group_by_scale(self.layers, self.scales)
        self.leader_scales = list(by_scale)
        self.groups = list(by_scale.values())

    def key(self):
        return (id(self.fn), tuple(id(layer) for layer in self.layers), tuple(self.scales))


class StepSchedules:
    """Registry of one `fit`'s scheduled layers; its step wrapper goes through the model's
    `StepOwner` (`keras_dropouts/_step_owner.py`), the one owner of the `train_step` slot."""

    def __init__(self, model):
        self._model_ref = weakref.ref(model)
        self._groups = []  # every group of layers sharing one rate, leader first
        self._reset()

    def _reset(self, keep_rates=False):
        unlink_rates([layer for group in self._groups for layer in group[1:]], keep_value=keep_rates)
        self._groups = []
        self._owners = {}  # id(layer) -> (layer, callback)
        self._log_keys = {}  # log key -> callback
        self._knot_groups = []  # lists of layers whose `rate_schedule` values are equal
        self._fn_groups = []

    @property
    def model(self):
        return self._model_ref()

    # Registration ------------------------------------------------------------------------------

    def begin(self, callback):
        """Starts (or joins) the current `fit`, identified by the callbacks' params dict.

        A session left open by a `fit` that failed is aborted by the owner first.
        """
        owner = owner_of(self.model)
        if owner.begin(callback.params):
            self._reset()
            owner.on_abort(self._reset)

    def on_abort(self, fn):
        """Registers `fn()` to undo a callback's changes if this `fit` fails."""
        owner_of(self.model).on_abort(fn)

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
        self._link([list(g) for g in groups])
        self._install()

    def add_fn(self, fn, layers, scales):
        """Schedules `layers` with `fn(step) * scale`, traced into the step."""
        group = FnGroup(fn, layers, scales)
        self._fn_groups.append(group)
        self._link(group.groups)
        self._install()

    def _link(self, groups):
        """The layers of each group read the first one's rate variable (one rate to
        write per group in the step, however many layers share it)."""
        for group in groups:
            for layer in group[1:]:
                link_rate(layer, group[0].rate_variable)
        self._groups.extend(groups)

    # Installation ----------------------------------------------------------------------------

    def _install(self):
        model = self.model
        key = (
            tuple(tuple(id(layer) for layer in g) for g in self._knot_groups),
            tuple(g.key() for g in self._fn_groups),
            model.steps_per_execution,
            model.jit_compile,
        )
        owner_of(model).install(key, self._make_wrapper)

    def refresh(self):
        """Installs a fresh wrapper and rebuilds the train function (one retrace).

        What the stock-layer path calls after changing a stock layer's rate.
        """
        owner_of(self.model).rebuild(self._make_wrapper)

    def abort(self):
        """Ends the current `fit` as failed: undoes the callbacks' changes (see `on_abort`)."""
        model = self.model
        if model is not None:
            owner_of(model).abort()  # runs `_reset`, registered in `begin`

    def end(self, keep_function=True):
        """Ends the current `fit`: restores the model's step and forgets the registrations."""
        model = self.model
        if model is not None:
            owner_of(model).end(keep_function=keep_function)
        self._reset(keep_rates=True)

    # The wrapper ---------------------------------------------------------------------------------

    def _make_wrapper(self, original):
        """A new step function: computes every scheduled rate, then runs `original`."""
        knot_groups = [list(g) for g in self._knot_groups]
        fn_groups = list(self._fn_groups)
        if not knot_groups and not fn_groups:

            def plain_step(*args, **kwargs):
                return original(*args, **kwargs)

            return plain_step
        rates = _Rates(knot_groups, fn_groups)
        return rate_step.make_step(self.model, original, rates)


def _clean(r):
    # A NaN from a user schedule drops nothing rather than everything.
    return ops.clip(ops.where(ops.isnan(r), 0.0, r), 0.0, 1.0)


def knot_rate(step, knots):
    """The rate at `step` of a layer whose `rate_schedule` holds `knots` (a, b, v0, v1)."""
    return _clean(two_knots(step, knots[0], knots[1], knots[2], knots[3]))


class _Rates:
    """The scheduled layers of one wrapper and the two ways of computing their rates."""

    def __init__(self, knot_groups, fn_groups):
        self.fn_groups = fn_groups
        # One leader per group: the step writes only the leaders' rates (see `_link`).
        self.knot_leaders = [g[0] for g in knot_groups]
        leaders = self.knot_leaders + [lead[0] for g in fn_groups for lead in g.groups]
        self.variables = [layer.rate_variable for layer in leaders]
        self.scales = [ops.convert_to_tensor(g.leader_scales, "float32") for g in fn_groups]

    def as_list(self, step, knots):
        """One float32 scalar per leader (JAX; `knots`: each leader's knots). Kept
        unstacked: under XLA on JAX, stacking 50 schedules and slicing the rates back
        out cost 30% of a dispatch-bound step (CPU proxy of a GPU step; see
        benchmarks/RESULTS.md)."""
        out = [knot_rate(step, k) for k in knots]
        for group in self.fn_groups:
            value = ops.cast(group.fn(step), "float32")
            out.extend(_clean(value * s) for s in group.leader_scales)
        return out

    def as_vector(self, step, knots):
        """Every leader's rate as one vector (torch: a handful of eager kernels;
        TensorFlow: measured faster than one scalar each). `knots`: each knot
        leader's knots."""
        parts = []
        if knots:
            k = ops.stack(knots)
            parts.append(two_knots(step, k[:, 0], k[:, 1], k[:, 2], k[:, 3]))
        for group, scale in zip(self.fn_groups, self.scales):
            parts.append(ops.cast(group.fn(step), "float32") * scale)
        return _clean(parts[0] if len(parts) == 1 else ops.concatenate(parts))


def _describe(callback):
    name = getattr(callback, "log_key", None)
    kind = type(callback).__name__
    return f"{kind}(log_name={name!r})" if name else kind


def traceable(fn, step_dtype):
    """None if `fn(step)` traces with a scalar tensor step, else the reason it does not."""
    try:
        shape = rate_step.scalar_shape(fn, step_dtype)
    except Exception as e:  # noqa: BLE001 - any failure means "evaluate on the host"
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if shape != ():
        return f"it returns shape {shape}, not a scalar"
    return None
