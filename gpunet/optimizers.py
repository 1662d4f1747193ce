"""Optimizers with Keras 3's names, defaults and update formulas, and learning-rate schedules.

    opt = gn.optimizers.Adam(learning_rate=1e-3)
    opt.apply(grads, params)        # Keras's order; in place; builds the slots on the first call
    opt.iterations                  # updates applied so far
    opt.learning_rate = 1e-4        # a float replaces the rate or the schedule

Each step follows Keras's ``BaseOptimizer.apply``: gradients are clipped (``clipnorm`` per
array, ``global_clipnorm`` jointly, or ``clipvalue``; at most one), the learning rate is the
schedule evaluated at ``iterations`` (0 on the first step), ``weight_decay`` decays each
parameter by ``p * weight_decay * lr`` before its update, then the optimizer's own update
runs (``gpunet/primitives/optim.py``) and ``iterations`` grows by one.
"""
import math
import warnings

import numpy as np

from . import backend, utils
from .autodiff import raw
from .optimizers_step import DeviceStep
from .primitives import optim as optim_ops, optim_state
from .schedules import (CosineDecay, ExponentialDecay, LearningRateSchedule, _check_positive,
                        _check_range, _is_number, _subclasses, deserialize_schedule, schedules,
                        serialize_schedule)

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop",
    "LearningRateSchedule", "ExponentialDecay", "CosineDecay", "schedules",
    "get", "serialize", "deserialize",
]


# -- optimizers -------------------------------------------------------------------------
def _module_of(array):
    """The array module that owns ``array``: slots live where their parameter lives."""
    return np if isinstance(array, np.ndarray) else backend.current().xp


# Keras-only settings that may appear in a Keras-saved config; gpunet supports their defaults.
_KERAS_ONLY_DEFAULTS = {"use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                        "loss_scale_factor": None, "gradient_accumulation_steps": None}


class Optimizer(DeviceStep):
    """Base optimizer: learning rate or schedule, clipping, weight decay, per-parameter slots.

    Subclasses list their slots in ``slot_names()`` and define ``update_step``. State for an
    exact resume is ``get_state()`` / ``set_state(state)``.
    """

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        owner = type(self).__name__
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        given = {k: v for k, v in clips.items() if v is not None}
        if len(given) > 1:
            raise ValueError(f"{owner}: only one of clipnorm, clipvalue and global_clipnorm can be set; "
                             f"received {', '.join(f'{k}={v}' for k, v in given.items())}.")
        for what, value in given.items():
            _check_positive(owner, what, value)
        if weight_decay is not None:
            _check_range(owner, "weight_decay", weight_decay, 0.0, math.inf)
        self.name = name or owner.lower()
        self.weight_decay, self.clipnorm = weight_decay, clipnorm
        self.clipvalue, self.global_clipnorm = clipvalue, global_clipnorm
        self._step = None            # StepState (device step count, rate, loss scale) on kernel backends
        self._device_stale = False   # the host counted steps the device state has not seen
        self._growth_steps = 0       # a LossScaleOptimizer's dynamic_growth_steps, read by the kernels
        self.iterations = 0
        self.learning_rate = learning_rate
        self._slots = None           # {slot name: [array per parameter]} once built
        self._param_shapes = None    # shapes of the parameters the slots were built for
        self._pending_slots = None   # slots from set_state() before the first apply()
        self._variables = None       # the variables of the last apply(), for apply(grads) alone

    # -- learning rate ------------------------------------------------------------------
    @property
    def learning_rate(self):
        """The learning rate of the next step (a float). Set a float, a schedule or a callable."""
        return self.current_learning_rate()

    @learning_rate.setter
    def learning_rate(self, value):
        if callable(value):
            self._learning_rate = value
        elif _is_number(value) and value >= 0:
            self._learning_rate = float(value)
        else:
            raise ValueError(f"{type(self).__name__}: learning_rate must be a float >= 0, a "
                             f"LearningRateSchedule or a callable step -> rate; received {value!r}.")

    def current_learning_rate(self):
        """The schedule evaluated at ``iterations`` (or the constant rate), as a float."""
        rate = self._learning_rate
        return float(rate(self.iterations)) if callable(rate) else rate

    # -- the step -------------------------------------------------------------------------
    def slot_names(self):
        """Names of the per-parameter slots, in the order ``get_state`` lists them."""
        return []

    def update_step(self, index, param, grad, lr):
        raise NotImplementedError(f"{type(self).__name__} must define update_step(index, param, grad, lr).")

    def slot(self, name, index):
        """Slot ``name`` of parameter ``index`` (an array shaped like that parameter)."""
        return self._slots[name][index]

    def build(self, params):
        """Create zero slots shaped like ``params`` (called by the first ``apply``)."""
        self._slots = {name: [_module_of(p).zeros_like(p) for p in params] for name in self.slot_names()}
        self._param_shapes = [tuple(p.shape) for p in params]
        if backend.current().runs_kernels and self._step is None:   # the step count moves to the device
            self._step = optim_state.StepState(self.iterations)
        if self._pending_slots is not None:
            pending, self._pending_slots = self._pending_slots, None
            try:
                self._load_slots(pending)
            except ValueError:
                self._slots = self._param_shapes = None
                raise

    @property
    def built(self):
        return self._param_shapes is not None

    def apply_gradients(self, grads_and_vars):
        """Keras's custom-loop form: ``apply_gradients(zip(grads, model.trainable_weights))``; the
        gradients may be gn.Tensors from ``GradientTape.gradient``."""
        pairs = list(grads_and_vars)
        self.apply([g for g, _ in pairs], [v for _, v in pairs])

    def scale_loss(self, loss):
        """Keras's hook for a custom step: the loss to differentiate (a LossScaleOptimizer scales it)."""
        return loss

    def apply(self, grads, trainable_variables=None):
        """Keras's ``apply(grads, trainable_variables)``: update the variables in place from
        ``grads`` (two lists matched by position; gradients may be gn.Tensors from
        ``GradientTape.gradient``). ``trainable_variables=None`` updates the variables of the
        previous call, as Keras updates those the optimizer was built with.

        A ``None`` gradient leaves its variable alone. The first call builds the slots; later
        calls must pass variables of the same shapes in the same order.
        """
        if trainable_variables is None:
            if getattr(self, "_variables", None) is None:
                raise ValueError(f"{type(self).__name__}.apply(grads) without trainable_variables needs an earlier "
                                 "call that named them: pass apply(grads, model.trainable_variables).")
            trainable_variables = self._variables
        grads = [raw(g) for g in grads]   # gn.Tensors from GradientTape.gradient
        self._variables = list(trainable_variables)
        self._apply(self._variables, grads)

    def _apply(self, params, grads):
        """The update of ``params`` (backend arrays) from ``grads``: what ``apply`` and fit run."""
        params, grads = list(params), list(grads)
        if len(params) != len(grads):
            raise ValueError(f"{type(self).__name__}.apply got {len(params)} parameters and "
                             f"{len(grads)} gradients.")
        if not params:
            return
        if not self.built:
            self.build(params)
        self._check_params(params, grads)
        pairs = [(i, p, g) for i, (p, g) in enumerate(zip(params, grads)) if g is not None]
        if not pairs:
            raise ValueError(f"{type(self).__name__}.apply: every gradient is None.")
        clipped = self._clip([g for _, _, g in pairs])
        self._step_once([i for i, _, _ in pairs], [p for _, p, _ in pairs], clipped)

    def _update_all(self, indices, params, grads, lr, step=None):
        """One step of every parameter: ``update_step`` each (returns False), or (built-in
        optimizers, when a subclass keeps their ``update_step``) one multi-tensor op, a single
        kernel launch that, given ``step``, takes the rate from the device and counts the step
        there (returns True)."""
        lr = self.current_learning_rate() if lr is None else lr
        for index, param, grad in zip(indices, params, grads):
            self.update_step(index, param, grad, lr)
        return False

    def _fuses(self):
        """True when ``_update_all`` is one multi-tensor kernel that honours the device state's skip
        flag and counts the step (SGD, Adam, AdamW, RMSprop, and optimizers_extra's Adagrad, Adadelta,
        Adamax, Nadam, Lion, unless a subclass changes the update)."""
        return False

    def _fused_update(self, cls):
        """True when ``update_step`` is ``cls``'s own, so that its one-launch form may replace it."""
        return type(self).update_step is cls.update_step

    def _check_params(self, params, grads):
        if [tuple(p.shape) for p in params] != self._param_shapes:
            raise ValueError(f"{type(self).__name__} was built for parameters of shapes "
                             f"{self._param_shapes}; received {[tuple(p.shape) for p in params]}. "
                             "Use a new optimizer for other parameters.")
        for i, (p, g) in enumerate(zip(params, grads)):
            if g is not None and tuple(g.shape) != tuple(p.shape):
                raise ValueError(f"{type(self).__name__}: gradient {i} has shape {tuple(g.shape)}; "
                                 f"its parameter has shape {tuple(p.shape)}.")

    def _clip(self, grads):
        if self.clipnorm:
            return [optim_ops.clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm:
            return optim_ops.clip_by_global_norm(grads, self.global_clipnorm)
        if self.clipvalue:
            return [optim_ops.clip_by_value(g, self.clipvalue) for g in grads]
        return grads

    # -- state --------------------------------------------------------------------------
    def get_state(self):
        """Everything an exact resume needs, as NumPy arrays in this order (Keras's variable order):

        ``iterations`` (int64 scalar); ``learning_rate`` (float64 scalar, only while the rate
        is a constant rather than a schedule); then, for each slot in ``slot_names()`` order,
        that slot of every parameter: ``"<slot>_0" ... "<slot>_<n-1>"`` (Adam: ``momentum_*``
        then ``velocity_*``). Before the first ``apply`` there are no slots yet.
        """
        state = {"iterations": np.array(self.iterations, dtype=np.int64)}
        if not callable(self._learning_rate):
            state["learning_rate"] = np.array(self._learning_rate, dtype=np.float64)
        if self.built:
            for name, arrays in self._slots.items():
                for i, array in enumerate(arrays):
                    state[f"{name}_{i}"] = np.array(backend.current().to_numpy(array), copy=True)
        elif self._pending_slots is not None:
            state.update({k: v.copy() for k, v in self._pending_slots.items()})
        return state

    def set_state(self, state):
        """Restore ``get_state()``'s dict. Before the first ``apply`` the slots wait for it."""
        state = dict(state)
        if "iterations" not in state:
            raise ValueError(f"{type(self).__name__}.set_state: the state has no 'iterations'; "
                             f"received keys {sorted(state)}.")
        iterations = int(np.asarray(state.pop("iterations")))
        rate = state.pop("learning_rate", None)
        slots = {k: np.asarray(v) for k, v in state.items()}
        if self.built:
            self._load_slots(slots)
        else:
            self._pending_slots = slots or None
        self.iterations = iterations
        if rate is not None:
            self.learning_rate = float(np.asarray(rate))

    def _load_slots(self, slots):
        expected = [f"{name}_{i}" for name, arrays in self._slots.items() for i in range(len(arrays))]
        if sorted(slots) != sorted(expected):
            raise ValueError(f"{type(self).__name__}.set_state: expected slots {expected}; "
                             f"received {sorted(slots)}.")
        targets = {f"{name}_{i}": a for name, arrays in self._slots.items() for i, a in enumerate(arrays)}
        for key, target in targets.items():
            if tuple(slots[key].shape) != tuple(target.shape):
                raise ValueError(f"{type(self).__name__}.set_state: slot {key!r} has shape "
                                 f"{tuple(target.shape)}; received shape {tuple(slots[key].shape)}.")
        for key, target in targets.items():
            target[...] = _module_of(target).asarray(slots[key], dtype=target.dtype)

    # -- config -------------------------------------------------------------------------
    def _learning_rate_config(self):
        rate = self._learning_rate
        if isinstance(rate, LearningRateSchedule):
            return serialize_schedule(rate)
        if callable(rate):
            warnings.warn(f"{type(self).__name__}: a plain callable learning rate cannot be saved; "
                          f"the config keeps its current value {self.current_learning_rate()}.", stacklevel=3)
            return self.current_learning_rate()
        return rate

    def get_config(self):
        """Everything ``__init__`` needs: ``type(opt).from_config(opt.get_config())`` rebuilds it."""
        return {"name": self.name, "learning_rate": self._learning_rate_config(),
                "weight_decay": self.weight_decay, "clipnorm": self.clipnorm,
                "global_clipnorm": self.global_clipnorm, "clipvalue": self.clipvalue}

    @classmethod
    def from_config(cls, config):
        """Rebuild from ``get_config()`` (a Keras-saved config works too)."""
        if cls is Optimizer:
            raise TypeError("Optimizer.from_config needs a concrete class: call e.g. "
                            "Adam.from_config(config), or optimizers.deserialize(serialize(opt)).")
        config = utils.without_keras_defaults(config, _KERAS_ONLY_DEFAULTS, cls.__name__)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = deserialize_schedule(config["learning_rate"])
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} learning_rate={self.current_learning_rate():g}>"


# The four of Keras's first names (sgd, adam, adamw, rmsprop) live in optimizers_core.py, the
# others in optimizers_extra.py; they all join the registry here.
from .optimizers_core import SGD, Adam, AdamW, RMSprop  # noqa: E402

_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}

# Keras's other optimizers live in optimizers_extra.py; they join the registry here.
from .optimizers_extra import *  # noqa: E402,F401,F403  Adagrad, Adadelta, Adamax, Nadam, Lion
from . import optimizers_extra  # noqa: E402

__all__ += optimizers_extra.__all__
_BY_NAME.update({name.lower(): globals()[name] for name in optimizers_extra.__all__})


def serialize(optimizer):
    """``{"class_name": "Adam", "config": {...}}``: enough to rebuild the optimizer (not its state)."""
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config, custom_objects=None):
    """The optimizer a ``serialize`` dict describes; ``custom_objects`` maps names to user classes."""
    known = {**_subclasses(Optimizer), **(custom_objects or {})}
    name = config.get("class_name") if isinstance(config, dict) else None
    cls = known.get(name) or _BY_NAME.get(str(name).lower())
    if cls is None:
        raise ValueError(f"Unknown optimizer class {name!r}; known: {', '.join(sorted(known))}.")
    return cls.from_config(config.get("config", {}))


def get(identifier):
    """An optimizer from a name (``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``; defaults),
    an ``Optimizer`` (returned as is) or a ``serialize`` dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.strip().lower() in _BY_NAME:
        return _BY_NAME[identifier.strip().lower()]()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"Unknown optimizer {identifier!r}; expected one of "
                     f"{', '.join(repr(n) for n in _BY_NAME)}, an Optimizer object or a serialize() dict.")


# Keras's LossScaleOptimizer (mixed_float16) wraps any of the above.
from .optimizers_loss_scale import LossScaleOptimizer  # noqa: E402

__all__ += ["LossScaleOptimizer"]
