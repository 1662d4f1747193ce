"""SGD, Adam, AdamW and RMSprop with Keras 3's defaults, slot names and update formulas (their
kernels: gpunet/primitives/optim.py); the base class and the registry are in optimizers.py."""
import math

from .optimizers import Optimizer
from .primitives import optim as optim_ops
from .schedules import _check_range

__all__ = ["SGD", "Adam", "AdamW", "RMSprop"]


class SGD(Optimizer):
    """Gradient descent, optionally with (Nesterov) momentum. Slot: ``momentum`` when momentum > 0."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name="SGD"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        _check_range("SGD", "momentum", momentum, 0.0, 1.0)
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def slot_names(self):
        return ["momentum"] if self.momentum != 0 else []

    def _fuses(self):
        return self._fused_update(SGD)

    def update_step(self, index, param, grad, lr):
        velocity = self.slot("momentum", index) if self.momentum != 0 else None
        optim_ops.sgd_update(param, grad, velocity, lr, self.momentum, self.nesterov,
                             weight_decay=self.weight_decay or 0.0)

    def _update_all(self, indices, params, grads, lr, step=None):
        if not self._fused_update(SGD):
            return super()._update_all(indices, params, grads, lr, step)
        velocities = [self.slot("momentum", i) for i in indices] if self.momentum != 0 else None
        optim_ops.sgd_update_many(params, grads, velocities, lr, self.momentum, self.nesterov,
                                  weight_decay=self.weight_decay or 0.0, step=step)
        return step is not None

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam with Keras's epsilon-hat form; ``amsgrad`` keeps the running maximum of ``velocity``.

    Slots: ``momentum``, ``velocity`` (and ``velocity_hat`` with amsgrad).
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name="adam"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        owner = type(self).__name__
        _check_range(owner, "beta_1", beta_1, 0.0, 1.0, high_open=True)
        _check_range(owner, "beta_2", beta_2, 0.0, 1.0, high_open=True)
        _check_range(owner, "epsilon", epsilon, 0.0, math.inf)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, bool(amsgrad)

    def slot_names(self):
        return ["momentum", "velocity"] + (["velocity_hat"] if self.amsgrad else [])

    def _moments(self, index):
        v_hat = self.slot("velocity_hat", index) if self.amsgrad else None
        return self.slot("momentum", index), self.slot("velocity", index), v_hat

    def _fuses(self):
        return self._fused_update(Adam) or self._fused_update(AdamW)

    def _kernel_betas(self):
        return self.beta_1, self.beta_2

    def update_step(self, index, param, grad, lr):
        m, v, v_hat = self._moments(index)
        optim_ops.adam_update(param, grad, m, v, lr, self.beta_1, self.beta_2, self.epsilon,
                              self.iterations + 1, v_hat=v_hat, weight_decay=self.weight_decay or 0.0)

    def _update_all(self, indices, params, grads, lr, step=None):
        if not (self._fused_update(Adam) or self._fused_update(AdamW)):
            return super()._update_all(indices, params, grads, lr, step)
        v_hats = [self.slot("velocity_hat", i) for i in indices] if self.amsgrad else None
        # Adam's step (from 1); with ``step`` the kernel reads it from the device instead
        count = 1 if self._host_iterations is None else self._host_iterations + 1
        optim_ops.adam_update_many(params, grads, [self.slot("momentum", i) for i in indices],
                                   [self.slot("velocity", i) for i in indices], lr, self.beta_1, self.beta_2,
                                   self.epsilon, count, v_hats=v_hats,
                                   weight_decay=self.weight_decay or 0.0, step=step)
        return step is not None

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p -= p * weight_decay * lr`` each step."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None, name="adamw"):
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay must be a float; received weight_decay=None.")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay,
                         clipnorm, clipvalue, global_clipnorm, name)

    def update_step(self, index, param, grad, lr):
        m, v, v_hat = self._moments(index)
        optim_ops.adamw_update(param, grad, m, v, lr, self.weight_decay, self.beta_1, self.beta_2,
                               self.epsilon, self.iterations + 1, v_hat=v_hat)


class RMSprop(Optimizer):
    """RMSprop with plain momentum; ``centered`` divides by the estimated variance instead.

    Slots: ``velocity``, then ``momentum`` when momentum > 0, then ``average_gradient`` when centered.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name="rmsprop"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        _check_range("RMSprop", "rho", rho, 0.0, 1.0)
        _check_range("RMSprop", "momentum", momentum, 0.0, 1.0)
        _check_range("RMSprop", "epsilon", epsilon, 0.0, math.inf)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, bool(centered)

    def slot_names(self):
        return ["velocity"] + (["momentum"] if self.momentum > 0 else []) + \
            (["average_gradient"] if self.centered else [])

    def _fuses(self):
        return self._fused_update(RMSprop)

    def update_step(self, index, param, grad, lr):
        momentum_buf = self.slot("momentum", index) if self.momentum > 0 else None
        average = self.slot("average_gradient", index) if self.centered else None
        optim_ops.rmsprop_update(param, grad, self.slot("velocity", index), momentum_buf, lr, self.rho,
                                 self.momentum, self.epsilon, average_grad=average,
                                 weight_decay=self.weight_decay or 0.0)

    def _update_all(self, indices, params, grads, lr, step=None):
        if not self._fused_update(RMSprop):
            return super()._update_all(indices, params, grads, lr, step)
        optim_ops.rmsprop_update_many(
            params, grads, [self.slot("velocity", i) for i in indices],
            [self.slot("momentum", i) for i in indices] if self.momentum > 0 else None, lr, self.rho,
            self.momentum, self.epsilon,
            average_grads=[self.slot("average_gradient", i) for i in indices] if self.centered else None,
            weight_decay=self.weight_decay or 0.0, step=step)
        return step is not None

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}
