"""Fused update steps of Adagrad, Adadelta, Adamax, Nadam and Lion, in place, Keras 3's formulas
in Keras's order of operations: NumPy reference and kernels (``kernels/optim_extra.cu``) side by side.

``lr`` is this step's learning rate; ``weight_decay`` is Keras's decoupled decay
``p -= p * weight_decay * lr``, done first in the same launch. Per-step constants (bias
corrections, Nadam's momentum schedule) are computed by the caller in double precision.
On a kernel backend the parameter and its slots must be C-contiguous float32 arrays of the
backend (they are updated in place).
"""
import numpy as np

from .. import backend
from . import launch

_FILE = "optim_extra.cu"
_MAX_BLOCKS = 2048


def _decay(param, lr, weight_decay):
    if weight_decay:
        param -= param * weight_decay * lr


def _launch(kernel, param, grad, slots, *settings):
    """One grid-stride launch of ``kernel(p, g, *slots, n, *settings)`` after checking the arrays."""
    be = backend.current()
    grad, = launch.inputs(kernel, grad)
    for what, array in [("param", param)] + [(f"slot {i}", s) for i, s in enumerate(slots)]:
        if not isinstance(array, be.xp.ndarray) or array.dtype != np.float32 or not array.flags.c_contiguous:
            raise TypeError(f"{kernel} on the {be.name} backend updates its {what} in place, so it must be a "
                            f"C-contiguous float32 {be.xp.__name__} array; received {type(array).__name__} "
                            f"of dtype {array.dtype}.")
        if array.size != grad.size:
            raise ValueError(f"{kernel}: the {what} has {array.size} elements; the gradient has {grad.size}.")
    n = launch.i32(grad.size, f"{kernel}: elements")
    launch.run(_FILE, kernel, launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS, param, grad, *slots, n,
               *(launch.f32(s) for s in settings))


def adagrad_update(param, grad, accumulator, lr, epsilon, weight_decay=0.0):
    """``acc += g^2``; ``p -= lr * g / sqrt(acc + epsilon)``."""
    if backend.current().runs_kernels:
        return _launch("adagrad_update", param, grad, [accumulator], lr, epsilon, weight_decay or 0.0)
    _decay(param, lr, weight_decay)
    accumulator += np.square(grad)
    param -= (lr * grad) / np.sqrt(accumulator + epsilon)


def adadelta_update(param, grad, acc_grad, acc_delta, lr, rho, epsilon, weight_decay=0.0):
    """Zeiler's Adadelta scaled by ``lr``, as Keras 3."""
    if backend.current().runs_kernels:
        return _launch("adadelta_update", param, grad, [acc_grad, acc_delta], lr, rho, 1 - rho, epsilon,
                       weight_decay or 0.0)
    _decay(param, lr, weight_decay)
    acc_grad[...] = rho * acc_grad + (1 - rho) * np.square(grad)
    delta = -(np.sqrt(acc_delta + epsilon) * grad / np.sqrt(acc_grad + epsilon))
    acc_delta[...] = rho * acc_delta + (1 - rho) * np.square(delta)
    param += lr * delta


def adamax_update(param, grad, m, u, lr, beta_1, beta_2, epsilon, step, weight_decay=0.0):
    """``m += (g - m)(1 - b1)``; ``u = max(b2 u, |g|)``; ``p -= lr m / ((1 - b1^step)(u + eps))``."""
    correction = 1 - beta_1 ** step
    if backend.current().runs_kernels:
        return _launch("adamax_update", param, grad, [m, u], lr, 1 - beta_1, beta_2, epsilon, correction,
                       weight_decay or 0.0)
    _decay(param, lr, weight_decay)
    m += (grad - m) * (1 - beta_1)
    np.maximum(beta_2 * u, np.abs(grad), out=u)
    param -= (lr * m) / (np.float32(correction) * (u + epsilon))


def nadam_schedule(beta_1, step):
    """``(m_scale, g_scale)`` of Keras's Nadam at ``step`` (from 1): the momentum schedule
    ``u_t = b1 (1 - 0.5 * 0.96^t)`` and its running product, in double precision."""
    def u(t):
        return beta_1 * (1.0 - 0.5 * 0.96 ** t)
    product = 1.0
    for t in range(1, step + 1):
        product *= u(t)
    return u(step + 1) / (1 - product * u(step + 1)), (1 - u(step)) / (1 - product)


def nadam_update(param, grad, m, v, lr, beta_1, beta_2, epsilon, step, weight_decay=0.0):
    """Keras 3's Nadam (Dozat 2016) at ``step`` (from 1)."""
    m_scale, g_scale = nadam_schedule(beta_1, step)
    correction = 1 - beta_2 ** step
    if backend.current().runs_kernels:
        return _launch("nadam_update", param, grad, [m, v], lr, 1 - beta_1, 1 - beta_2, epsilon, m_scale, g_scale,
                       correction, weight_decay or 0.0)
    _decay(param, lr, weight_decay)
    m += (grad - m) * (1 - beta_1)
    v += (np.square(grad) - v) * (1 - beta_2)
    m_hat = np.float32(m_scale) * m + np.float32(g_scale) * grad
    v_hat = v / np.float32(correction)
    param -= (m_hat * lr) / (np.sqrt(v_hat) + epsilon)


def lion_update(param, grad, m, lr, beta_1, beta_2, weight_decay=0.0):
    """``p -= lr * sign(b1 m + (1 - b1) g)``; ``m = b2 m + (1 - b2) g`` (Chen et al. 2023)."""
    if backend.current().runs_kernels:
        return _launch("lion_update", param, grad, [m], lr, beta_1, 1 - beta_1, beta_2, 1 - beta_2,
                       weight_decay or 0.0)
    _decay(param, lr, weight_decay)
    param -= lr * np.sign(m * beta_1 + grad * (1 - beta_1))
    m[...] = m * beta_2 + grad * (1 - beta_2)
