"""Keras 3's ``LossScaleOptimizer``: dynamic loss scaling around another optimizer (mixed_float16).

    opt = gn.optimizers.LossScaleOptimizer(gn.optimizers.Adam(1e-3))
    model.compile(optimizer=opt, loss=...)      # fit scales the loss gradient by opt.dynamic_scale

Semantics (``keras/src/optimizers/loss_scale_optimizer.py``, its stateful ``apply``):

* ``fit`` multiplies the loss gradient that starts the backward pass by the scale (Keras
  multiplies the loss; the gradients are the same). In a custom loop call
  ``scale_loss(loss)`` before differentiating, as in Keras.
* ``apply(grads, variables)`` takes the scaled gradients. If any is non-finite (inf or NaN), the
  step is skipped: no weight or slot changes, the inner optimizer's ``iterations`` does not
  advance, the scale halves and the growth counter resets. Otherwise the gradients are divided
  by the scale, the inner optimizer applies them (its clipping, weight decay, schedule), and
  after ``dynamic_growth_steps`` finite steps in a row the scale doubles.
  (Keras's JAX trainer uses ``stateless_apply``, which doubles the scale before unscaling the
  growth step's gradients; gpunet follows ``apply``, where the step's own scale unscales them.)

On the kernel backends nothing of this waits for the host: the scale, the growth counter and
the skip flag live in the inner optimizer's device step state (``primitives/optim_state.py``);
one kernel unscales every gradient in place and clears the flag on a non-finite one, the fused
update kernel (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax, Nadam, Lion) does nothing
when the flag says skip, and its last block updates the scale. An inner optimizer without a fused
update (Adafactor, or a subclass with its own ``update_step``) reads
the flag on the host instead: one device-to-host read per step.

Not done as Keras does: the gradients of regularization penalties are added to the weights'
gradients unscaled inside the layers' backward, so under loss scaling they are divided by the
scale. Put the penalty on a model trained without loss scaling (bf16 needs none).
"""
import math
import numbers

import numpy as np

from . import backend
from .optimizers import Optimizer, deserialize, serialize
from .primitives import optim_state

__all__ = ["LossScaleOptimizer"]

# Keras's base-optimizer arguments: accepted at their defaults (old Keras configs carry them).
_BASE_DEFAULTS = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
                  "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                  "loss_scale_factor": None, "gradient_accumulation_steps": None}


def _check_arguments(initial_scale, dynamic_growth_steps, kwargs):
    if not kwargs.pop("dynamic", True):
        raise ValueError("LossScaleOptimizer no longer supports dynamic=False (as in Keras 3); set a fixed "
                         "scale by scaling the loss yourself.")
    for name, default in _BASE_DEFAULTS.items():
        if name in kwargs and kwargs.pop(name) != default:
            raise ValueError(f"LossScaleOptimizer does not support {name}; set {name} on the inner_optimizer.")
    if kwargs:
        raise ValueError(f"LossScaleOptimizer does not support the arguments {', '.join(sorted(kwargs))}.")
    if not isinstance(initial_scale, numbers.Real) or isinstance(initial_scale, bool) \
            or not math.isfinite(initial_scale) or initial_scale <= 0:
        raise ValueError(f"LossScaleOptimizer: initial_scale must be a finite number > 0; "
                         f"received initial_scale={initial_scale!r}.")
    if isinstance(dynamic_growth_steps, bool) or not isinstance(dynamic_growth_steps, (int, np.integer)) \
            or dynamic_growth_steps < 1:
        raise ValueError(f"LossScaleOptimizer: dynamic_growth_steps must be an int >= 1; "
                         f"received dynamic_growth_steps={dynamic_growth_steps!r}.")


class LossScaleOptimizer(Optimizer):
    """Dynamic loss scaling around ``inner_optimizer`` (Keras 3's class, names and defaults).

    Args:
        inner_optimizer: the optimizer that applies the unscaled gradients.
        initial_scale: the first loss scale (2**15).
        dynamic_growth_steps: finite steps in a row after which the scale doubles (2000).
    """

    def __init__(self, inner_optimizer, initial_scale=2.0 ** 15, dynamic_growth_steps=2000, name=None, **kwargs):
        if not isinstance(inner_optimizer, Optimizer) or isinstance(inner_optimizer, LossScaleOptimizer):
            raise TypeError(f"LossScaleOptimizer: inner_optimizer must be a gn.optimizers.Optimizer (not itself a "
                            f"LossScaleOptimizer); received {inner_optimizer!r}.")
        _check_arguments(initial_scale, dynamic_growth_steps, kwargs)
        self.name = name or "loss_scale_optimizer"
        self.inner_optimizer = inner_optimizer
        self.initial_scale, self.dynamic_growth_steps = float(initial_scale), int(dynamic_growth_steps)
        self._host = {"scale": self.initial_scale, "growth": 0}   # the numpy backend's scale and counter
        inner_optimizer._growth_steps = self.dynamic_growth_steps   # read by the update kernels

    # -- Keras's attributes ---------------------------------------------------------------
    @property
    def iterations(self):
        """The inner optimizer's updates (a skipped step does not count), an int."""
        return self.inner_optimizer.iterations

    @iterations.setter
    def iterations(self, value):
        self.inner_optimizer.iterations = value

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.inner_optimizer.learning_rate = value

    def current_learning_rate(self):
        return self.inner_optimizer.current_learning_rate()

    @property
    def _learning_rate(self):
        return self.inner_optimizer._learning_rate

    @property
    def dynamic_scale(self):
        """The current loss scale, a float (a device read on the kernel backends)."""
        state = self._state()
        return state.get(optim_state.SCALE) if state is not None else self._host["scale"]

    @property
    def step_counter(self):
        """Finite steps since the scale last changed, an int (Keras's ``step_counter``)."""
        state = self._state()
        return int(state.get(optim_state.GROWTH)) if state is not None else self._host["growth"]

    @property
    def built(self):
        return self.inner_optimizer.built

    def slot_names(self):
        return self.inner_optimizer.slot_names()

    def _state(self):
        """The inner optimizer's device StepState (made here if the inner has none yet), or None on numpy."""
        inner = self.inner_optimizer
        if inner._step is None and backend.current().runs_kernels:
            inner._step = optim_state.StepState(inner.iterations, scale=self._host["scale"])
            inner._step.set(optim_state.GROWTH, self._host["growth"])
        return inner._step

    # -- scaling --------------------------------------------------------------------------
    def penalty_scale(self):
        """The scale as regularizers.add_gradient takes it: ``(device state, index)`` on the kernel
        backends (read by the kernel, no host read), the float on numpy."""
        state = self._state()
        return (state.array, optim_state.SCALE) if state is not None else self._host["scale"]

    def scale_loss(self, loss):
        """``loss * dynamic_scale`` (Keras's method) for a custom training loop; reads the scale."""
        return loss * self.dynamic_scale

    def scale_gradient(self, dy, dtype=None):
        """The loss gradient that starts the backward pass, times the scale, without a host read:
        what ``fit`` uses in place of Keras's scaled loss. ``dy`` an array or a list (None kept);
        ``dtype`` the result's (a list for a list; None: dy's): a float32 gradient becomes a 16-bit
        one after the scale, rounded once."""
        if isinstance(dy, list):
            dtypes = dtype if isinstance(dtype, list) else [dtype] * len(dy)
            return [None if d is None else self.scale_gradient(d, t) for d, t in zip(dy, dtypes)]
        state = self._state()
        return optim_state.scale_seed(dy, state if state is not None else self._host["scale"], dtype)

    # -- the step -------------------------------------------------------------------------
    def _apply(self, params, grads):
        """Apply the scaled ``grads``: skip the step on a non-finite one, else unscale them and let
        the inner optimizer apply them; then update the scale (see the module docstring). On the
        kernel backends the gradient arrays are unscaled in place."""
        params, grads = list(params), list(grads)
        inner = self.inner_optimizer
        if len(params) != len(grads):
            raise ValueError(f"LossScaleOptimizer.apply got {len(params)} parameters and {len(grads)} gradients.")
        if not params:
            return
        state = self._state()
        if not inner.built:
            inner.build(params)
        inner._check_params(params, grads)
        pairs = [(i, p, g) for i, (p, g) in enumerate(zip(params, grads)) if g is not None]
        if not pairs:
            raise ValueError("LossScaleOptimizer.apply: every gradient is None.")
        indices, chosen, scaled = [i for i, _, _ in pairs], [p for _, p, _ in pairs], [g for _, _, g in pairs]
        if state is None:
            self._apply_on_host(indices, chosen, scaled)
        else:
            self._apply_on_device(state, indices, chosen, scaled)

    def _apply_on_host(self, indices, params, scaled):
        finite = optim_state.all_finite(scaled)
        if finite:
            unscaled = optim_state.unscale_gradients(scaled, self._host["scale"])
            self.inner_optimizer._step_once(indices, params, self.inner_optimizer._clip(unscaled))
        optim_state.finish_step_reference(self._host, finite, self.dynamic_growth_steps)

    def _apply_on_device(self, state, indices, params, scaled):
        inner = self.inner_optimizer
        unscaled = optim_state.unscale_gradients(scaled, state)   # clears the flag on a non-finite one
        clipped = inner._clip(unscaled)
        if inner._fuses() and inner._device_step() is not None:
            inner._step_once(indices, params, clipped)   # skips on the flag, finishes the step
            inner._host_iterations = None                # whether it counted: only the device knows
            return
        # An update of several launches cannot skip by itself: the host reads the flag (a sync).
        if state.get(optim_state.FINITE) != 0.0:
            inner._step_once(indices, params, clipped)
        optim_state.finish_step(state, state.settings((0, (0.0,)), growth_steps=self.dynamic_growth_steps))
        inner._device_stale = True   # the host's count is the exact one; the device re-reads it

    def _clip(self, grads):
        return grads   # the inner optimizer clips the unscaled gradients

    # -- state and config -----------------------------------------------------------------
    def get_state(self):
        """The inner optimizer's state plus ``step_counter`` (int64) and ``dynamic_scale`` (float64)."""
        return {**self.inner_optimizer.get_state(), "step_counter": np.array(self.step_counter, np.int64),
                "dynamic_scale": np.array(self.dynamic_scale, np.float64)}

    def set_state(self, state):
        """Restore ``get_state()``'s dict (a state without the loss-scale entries keeps the scale)."""
        state = dict(state)
        counter, scale = state.pop("step_counter", None), state.pop("dynamic_scale", None)
        self.inner_optimizer.set_state(state)
        if scale is not None:
            self._host = {"scale": float(np.asarray(scale)), "growth": int(np.asarray(counter or 0))}
            if self.inner_optimizer._step is not None:
                self.inner_optimizer._step.set(optim_state.SCALE, self._host["scale"])
                self.inner_optimizer._step.set(optim_state.GROWTH, self._host["growth"])

    def get_config(self):
        """Keras's config: name, the inner optimizer's ``serialize`` dict, initial_scale, dynamic_growth_steps."""
        return {"name": self.name, "inner_optimizer": serialize(self.inner_optimizer),
                "initial_scale": self.initial_scale, "dynamic_growth_steps": self.dynamic_growth_steps}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = config.pop("inner_optimizer")
        if isinstance(inner, dict):
            inner = deserialize(inner, custom_objects)
        return cls(inner, **config)

    def __repr__(self):
        return (f"<LossScaleOptimizer name={self.name!r} inner={self.inner_optimizer!r} "
                f"initial_scale={self.initial_scale:g} dynamic_growth_steps={self.dynamic_growth_steps}>")
