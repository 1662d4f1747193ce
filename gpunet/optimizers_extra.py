"""Keras 3's Adagrad, Adadelta, Adamax, Nadam, Lion and Adafactor. Defaults, slot names and
slot order are Keras's, so that weight files with optimizer state move both ways.

On a kernel backend Adagrad, Adadelta, Adamax, Nadam and Lion update every parameter in one
fused kernel launch (``gpunet/primitives/optim_extra.py``) that reads the rate, the per-step
constants and a LossScaleOptimizer's skip flag from the optimizer's device step state and counts
the step there, as SGD and Adam do: a training step with them can be captured (jit_compile=True).
Adafactor runs several launches per parameter with its per-step constants from the host.
"""
import math

from .optimizers import Optimizer
from .primitives import optim_extra as ops
from .schedules import _check_range

__all__ = ["Adagrad", "Adadelta", "Adamax", "Nadam", "Lion", "Adafactor"]


class _KerasOptimizer(Optimizer):
    """Settings common to these optimizers; ``interleaved_slots``: Keras creates the slots of one
    variable together (momentum_0, velocity_0, momentum_1, ...) when it builds them as a list."""

    interleaved_slots = False

    def __init__(self, learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         name or type(self).__name__.lower())

    def _decay(self):
        return self.weight_decay or 0.0

    def _update_all(self, indices, params, grads, lr, step=None):
        """Every parameter in one launch (``_update_many``) while the subclass keeps its own
        ``update_step``; True when the device counted the step (``step`` given)."""
        if not self._fuses():
            return super()._update_all(indices, params, grads, lr, step)
        count = 1 if self._host_iterations is None else self._host_iterations + 1   # unused with ``step``
        self._update_many(indices, params, grads, 0.0 if lr is None else lr, count, step)
        return step is not None


class Adagrad(_KerasOptimizer):
    """Per-coordinate rates from the running sum of squared gradients. Slot: ``accumulator``,
    starting at ``initial_accumulator_value``."""

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        _check_range("Adagrad", "initial_accumulator_value", initial_accumulator_value, 0.0, math.inf)
        _check_range("Adagrad", "epsilon", epsilon, 0.0, math.inf)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def slot_names(self):
        return ["accumulator"]

    def build(self, params):
        pending = self._pending_slots
        super().build(params)
        if pending is None:   # fresh slots start at the initial value, loaded ones keep theirs
            for accumulator in self._slots["accumulator"]:
                accumulator[...] = self.initial_accumulator_value

    def update_step(self, index, param, grad, lr):
        ops.adagrad_update(param, grad, self.slot("accumulator", index), lr, self.epsilon, self._decay())

    def _fuses(self):
        return self._fused_update(Adagrad)

    def _update_many(self, indices, params, grads, lr, count, step):
        ops.adagrad_update_many(params, grads, [self.slot("accumulator", i) for i in indices], lr, self.epsilon,
                                self._decay(), count, device_step=step)

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adadelta(_KerasOptimizer):
    """Zeiler's Adadelta (scaled by ``learning_rate``, as Keras). Slots: ``accumulated_grad``,
    ``accumulated_delta_var``."""

    interleaved_slots = True

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        _check_range("Adadelta", "rho", rho, 0.0, 1.0)
        _check_range("Adadelta", "epsilon", epsilon, 0.0, math.inf)
        self.rho, self.epsilon = rho, epsilon

    def slot_names(self):
        return ["accumulated_grad", "accumulated_delta_var"]

    def update_step(self, index, param, grad, lr):
        ops.adadelta_update(param, grad, self.slot("accumulated_grad", index),
                            self.slot("accumulated_delta_var", index), lr, self.rho, self.epsilon, self._decay())

    def _fuses(self):
        return self._fused_update(Adadelta)

    def _update_many(self, indices, params, grads, lr, count, step):
        ops.adadelta_update_many(params, grads, [self.slot("accumulated_grad", i) for i in indices],
                                 [self.slot("accumulated_delta_var", i) for i in indices], lr, self.rho, self.epsilon,
                                 self._decay(), count, device_step=step)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Adamax(_KerasOptimizer):
    """Adam with the infinity norm. Slots: ``momentum``, ``norm``."""

    interleaved_slots = True

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        _check_range("Adamax", "beta_1", beta_1, 0.0, 1.0, high_open=True)
        _check_range("Adamax", "beta_2", beta_2, 0.0, 1.0)
        _check_range("Adamax", "epsilon", epsilon, 0.0, math.inf)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def slot_names(self):
        return ["momentum", "norm"]

    def update_step(self, index, param, grad, lr):
        ops.adamax_update(param, grad, self.slot("momentum", index), self.slot("norm", index), lr, self.beta_1,
                          self.beta_2, self.epsilon, self.iterations + 1, self._decay())

    def _fuses(self):
        return self._fused_update(Adamax)

    def _kernel_betas(self):
        return self.beta_1, 0.0   # the kernel's bias correction 1 - beta_1^t

    def _update_many(self, indices, params, grads, lr, count, step):
        ops.adamax_update_many(params, grads, [self.slot("momentum", i) for i in indices],
                               [self.slot("norm", i) for i in indices], lr, self.beta_1, self.beta_2, self.epsilon,
                               count, self._decay(), device_step=step)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class Nadam(Adamax):
    """Adam with Nesterov momentum and Keras's momentum schedule ``b1 (1 - 0.5 * 0.96^t)``.

    Slots: ``momentum``, ``velocity``. Keras also keeps the schedule's running product as a
    variable; gpunet recomputes it from ``iterations``.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay, clipnorm, clipvalue,
                         global_clipnorm, name)

    def slot_names(self):
        return ["momentum", "velocity"]

    def update_step(self, index, param, grad, lr):
        ops.nadam_update(param, grad, self.slot("momentum", index), self.slot("velocity", index), lr, self.beta_1,
                         self.beta_2, self.epsilon, self.iterations + 1, self._decay())

    def _fuses(self):
        return self._fused_update(Nadam)

    def _kernel_betas(self):
        return self.beta_1, self.beta_2   # the momentum schedule and 1 - beta_2^t

    def _update_many(self, indices, params, grads, lr, count, step):
        ops.nadam_update_many(params, grads, [self.slot("momentum", i) for i in indices],
                              [self.slot("velocity", i) for i in indices], lr, self.beta_1, self.beta_2, self.epsilon,
                              count, self._decay(), device_step=step)


class Lion(_KerasOptimizer):
    """The sign of an interpolated momentum (Chen et al., 2023). Slot: ``momentum``."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        if not 0 < beta_1 <= 1:
            raise ValueError(f"Lion beta_1 must be in the (0, 1] range, otherwise the optimizer degenerates to "
                             f"SignSGD; received beta_1={beta_1!r}.")
        _check_range("Lion", "beta_2", beta_2, 0.0, 1.0)
        self.beta_1, self.beta_2 = beta_1, beta_2

    def slot_names(self):
        return ["momentum"]

    def update_step(self, index, param, grad, lr):
        ops.lion_update(param, grad, self.slot("momentum", index), lr, self.beta_1, self.beta_2, self._decay())

    def _fuses(self):
        return self._fused_update(Lion)

    def _update_many(self, indices, params, grads, lr, count, step):
        ops.lion_update_many(params, grads, [self.slot("momentum", i) for i in indices], lr, self.beta_1, self.beta_2,
                             self._decay(), count, device_step=step)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}


class Adafactor(_KerasOptimizer):
    """Adafactor (Shazeer & Stern, 2018) as Keras 3 has it: second moments factored into row and
    column means for weights of rank >= 2, a step ``min(lr, 1 / sqrt(t))`` scaled by the weight's
    RMS (at least ``epsilon_2``), updates clipped to RMS ``clip_threshold``.

    Slots, per weight and in Keras's saved order: ``r`` and ``c`` (the factored moments: the
    weight's shape without its last, or its second-to-last, axis; 0-d for weights of rank < 2)
    and ``velocity`` (the weight's shape; the moment itself for weights of rank < 2).
    """

    def __init__(self, learning_rate=0.001, beta_2_decay=-0.8, epsilon_1=1e-30, epsilon_2=1e-3, clip_threshold=1.0,
                 relative_step=True, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_2_decay, self.epsilon_1, self.epsilon_2 = beta_2_decay, epsilon_1, epsilon_2
        self.clip_threshold, self.relative_step = clip_threshold, bool(relative_step)

    interleaved_slots = True   # Keras builds r, c and velocity of one weight together

    def slot_names(self):
        return ["r", "c", "velocity"]

    @staticmethod
    def slot_shape(name, shape):
        """The shape of slot ``name`` for a weight of ``shape`` (unused slots are 0-d)."""
        shape = tuple(shape)
        factored = len(shape) >= 2
        if name == "r":
            return shape[:-1] if factored else ()
        if name == "c":
            return shape[:-2] + shape[-1:] if factored else ()
        return shape   # Keras keeps it for every weight (a factored one's is recomputed each step)

    def build(self, params):
        pending = self._pending_slots
        self._pending_slots = None
        super().build(params)
        for name in self.slot_names():
            self._slots[name] = [_zeros_like_module(p, self.slot_shape(name, p.shape)) for p in params]
        if pending is not None:
            self._load_slots(pending)

    def update_step(self, index, param, grad, lr):
        from .primitives import optim_adafactor
        rate = lr
        if not callable(self._learning_rate) and self.relative_step:
            rate = min(lr, 1.0 / math.sqrt(self.iterations + 1))
        factored = param.ndim >= 2
        optim_adafactor.adafactor_update(
            param, grad, self.slot("r", index) if factored else None, self.slot("c", index) if factored else None,
            None if factored else self.slot("velocity", index), rate, self.iterations + 1, self.beta_2_decay,
            self.epsilon_1, self.epsilon_2, self.clip_threshold, self._decay(), decay_lr=lr)

    def get_config(self):
        return {**super().get_config(), "beta_2_decay": self.beta_2_decay, "epsilon_1": self.epsilon_1,
                "epsilon_2": self.epsilon_2, "clip_threshold": self.clip_threshold,
                "relative_step": self.relative_step}


def _zeros_like_module(param, shape):
    from .optimizers import _module_of
    return _module_of(param).zeros(shape, dtype=param.dtype)
