"""The one owner of a model's `train_step` slot and of the train function built from it.

Two parts of the package change what a model's train step does: the schedule
callbacks (rates computed inside the compiled step, see `callbacks/_in_step.py`)
and `RDropModel` with `consistency_every > 1` (two traced variants of one step).
Both go through the model's `StepOwner`; nothing else writes the slot. See
docs/architecture.md ("The train step").

A `fit` that installs a step wrapper opens a session on the owner. The session
ends with the fit's `on_train_end`, which restores the model's own step and train
function. Keras skips `on_train_end` when `fit` raises (an exception in a callback,
Ctrl-C) and keeps its cached train function, so the owner also takes the model's
`make_train_function` for the length of the session: Keras calls it first thing
in every `fit` and `train_on_batch`, never during one, so a call while a session
is open means that session's `fit` failed. The owner then aborts it (runs the
restore actions its parties registered, restores the step and the train
function) before the new `fit` builds anything.
"""

import functools
import weakref

from keras_dropouts import _internals

_OWNERS = weakref.WeakKeyDictionary()


def per_model(registry, model, factory):
    """`registry[model]` (a `WeakKeyDictionary`), made by `factory(model)` on first use."""
    value = registry.get(model)
    if value is None:
        value = registry[model] = factory(model)
    return value


def owner_of(model):
    """The `StepOwner` of `model` (created on first use)."""
    return per_model(_OWNERS, model, StepOwner)


class StepOwner:
    """Installs, caches and removes step wrappers of one model; ends failed sessions."""

    def __init__(self, model):
        self._model_ref = weakref.ref(model)
        self._session = None
        self._restore = []  # callables run, newest first, when a session is aborted
        self._installed = False
        self._saved_step = None  # the model's own instance `train_step`, if it had one
        self._saved_function = None
        self._cache = {}

    @property
    def model(self):
        return self._model_ref()

    # Sessions --------------------------------------------------------------------------------

    @property
    def session(self):
        """The token of the open session (the `fit` it belongs to), or None."""
        return self._session

    def begin(self, token):
        """Opens the session of the `fit` identified by `token` (joins it if open).

        A different open session belongs to a `fit` that never ended: it is aborted.
        Returns True when a new session was opened.
        """
        if self._session is token:
            return False
        if self._session is not None:
            self.abort()
        self._session = token
        self._restore = []
        _internals.set_instance_attribute(self.model, "make_train_function", self._make_train_function)
        return True

    def on_abort(self, fn):
        """Registers `fn()` to undo a party's changes if the session's `fit` fails."""
        self._restore.append(fn)

    def end(self, keep_function=True):
        """Ends the session normally: restores the model's own step (and, unless
        `keep_function` is False, the train function it had)."""
        self._uninstall(keep_function=keep_function)
        self._close()

    def abort(self):
        """Ends a session whose `fit` failed: undoes every party's changes, then
        restores the model's own step and train function."""
        restore, self._restore = self._restore, []
        try:
            for fn in reversed(restore):
                fn()
        finally:
            self._uninstall(keep_function=True)
            self._close()

    def _close(self):
        self._session = None
        self._restore = []
        model = self.model
        if model is not None:
            _internals.pop_instance_attribute(model, "make_train_function")

    def _make_train_function(self, force=False):
        # Only a new `fit` or `train_on_batch` gets here (see the module docstring).
        self.abort()
        return self.model.make_train_function(force=force)

    # The slot -----------------------------------------------------------------------------------

    def original_step(self):
        """The step the model runs without a wrapper of ours (its own, or its class's)."""
        model = self.model
        if self._installed:
            own = self._saved_step
        else:
            own = _internals.get_instance_attribute(model, "train_step")
        return own if own is not None else type(model).train_step.__get__(model)

    def install(self, key, make_step):
        """Runs `make_step(original_step)` as the model's step, with its train function.

        A (wrapper, train function) pair is cached under `key` and reused by later
        installs with an equal key (e.g. the next `fit` with the same targets).
        """
        model = self.model
        self._take_over(model)
        # What the train function is built from besides `key`: a new `compile()` makes
        # a new optimizer and loss (and sets no train function), so it misses the cache.
        basis = (self._saved_function, self._saved_step, model.optimizer, _internals.compiled_loss_object(model))
        key = (tuple(id(x) for x in basis), key)
        cached = self._cache.get(key)
        if cached is not None:
            step, function, _ = cached
            _internals.set_instance_attribute(model, "train_step", step)
            model.train_function = function
            return
        self.rebuild(make_step)
        step = _internals.get_instance_attribute(model, "train_step")
        self._cache[key] = (step, model.train_function, basis)  # `basis` pins the ids
        while len(self._cache) > 8:
            self._cache.pop(next(iter(self._cache)))

    def rebuild(self, make_step):
        """Installs a new wrapper from `make_step` and retraces the train function.

        `jax.jit` caches traces by function, so every rebuild needs a new wrapper
        object: `make_step` must return one.
        """
        model = self.model
        self._take_over(model)
        _internals.set_instance_attribute(model, "train_step", make_step(self.original_step()))
        type(model).make_train_function(model, force=True)

    def _take_over(self, model):
        if not self._installed:
            self._saved_step = _internals.get_instance_attribute(model, "train_step")
            self._saved_function = model.train_function
            self._installed = True

    def _uninstall(self, keep_function=True):
        model = self.model
        if not self._installed or model is None:
            return
        if self._saved_step is None:
            _internals.pop_instance_attribute(model, "train_step")
        else:
            _internals.set_instance_attribute(model, "train_step", self._saved_step)
        model.train_function = self._saved_function if keep_function else None
        self._installed = False
        self._saved_step = None
        self._saved_function = None

    # Variants (R-Drop) --------------------------------------------------------------------------

    def variants(self, build, configures):
        """One train function per entry of `configures`, all from the current step.

        For each entry: `configure()` sets the model up (read when the function
        traces), then `build()` makes the train function. Each variant traces its
        own new callable of the step (`jax.jit` caches traces by function, so two
        builds from one callable would share a trace); the slot is left as it was.
        """
        model = self.model
        own = _internals.get_instance_attribute(model, "train_step")
        step = own if own is not None else type(model).train_step.__get__(model)
        functions = []
        try:
            for configure in configures:
                configure()
                _internals.set_instance_attribute(model, "train_step", functools.partial(_call, step))
                functions.append(build())
        finally:
            if own is None:
                _internals.pop_instance_attribute(model, "train_step")
            else:
                _internals.set_instance_attribute(model, "train_step", own)
        return functions


def _call(step, *args, **kwargs):
    return step(*args, **kwargs)
