"""Keras 3's Adagrad, Adadelta, Adamax, Nadam and Lion, each one fused kernel launch per
parameter (``gpunet/primitives/optim_extra.py``). Defaults, slot names and slot order are
Keras's, so that weight files with optimizer state move both ways.
"""
import math

from .optimizers import Optimizer
from .primitives import optim_extra as ops
from .schedules import _check_range

__all__ = ["Adagrad", "Adadelta", "Adamax", "Nadam", "Lion"]


class _KerasOptimizer(Optimizer):
    """Settings common to these optimizers; ``interleaved_slots``: Keras creates the slots of one
    variable together (momentum_0, velocity_0, momentum_1, ...) when it builds them as a list."""

    interleaved_slots = False

    def __init__(self, learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm,
                         name or type(self).__name__.lower())

    def _decay(self):
        return self.weight_decay or 0.0


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

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
