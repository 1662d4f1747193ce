"""Fused update steps of Adagrad, Adadelta, Adamax, Nadam and Lion, in place, Keras 3's formulas
in Keras's order of operations: NumPy reference and kernels (``kernels/optim_extra.cu``) side by side.

``lr`` is this step's learning rate; ``weight_decay`` is Keras's decoupled decay
``p -= p * weight_decay * lr``, done first in the same launch. Per-step constants (bias
corrections, Nadam's momentum schedule) are computed in double precision from ``step``.
On a kernel backend the parameter and its slots must be C-contiguous float32 arrays of the
backend (they are updated in place).

``*_update_many(params, grads, slots, lr, ..., step, device_step=None)``: every parameter; on a
kernel backend one launch that, given ``device_step`` (an optimizer's ``(StepState, settings)``,
optim_state.py), takes the rate, the per-step constants and the skip flag from the device state
and counts the step there (what a captured training step needs: no number from the host).
The result is that of the per-parameter function applied to each parameter in turn.
"""
import numpy as np

from .. import backend
from . import launch
from .optim import _many_kernel, _step_state

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


# -- every parameter at once ------------------------------------------------------------------

def _many(kernel, params, grads, slot_lists, device_step, lr, step, betas, *settings):
    state = device_step if device_step is not None else _step_state(None, lr, step, *betas)
    _many_kernel(kernel, params, grads, slot_lists, state, *(float(v) for v in settings), file=_FILE)


def adagrad_update_many(params, grads, accumulators, lr, epsilon, weight_decay=0.0, step=1, device_step=None):
    """:func:`adagrad_update` over every parameter."""
    if backend.current().runs_kernels:
        return _many("adagrad_update_many", params, grads, [accumulators], device_step, lr, step, (0.0, 0.0),
                     epsilon, weight_decay or 0.0)
    for param, grad, acc in zip(params, grads, accumulators):
        adagrad_update(param, grad, acc, lr, epsilon, weight_decay)


def adadelta_update_many(params, grads, acc_grads, acc_deltas, lr, rho, epsilon, weight_decay=0.0, step=1,
                         device_step=None):
    """:func:`adadelta_update` over every parameter."""
    if backend.current().runs_kernels:
        return _many("adadelta_update_many", params, grads, [acc_grads, acc_deltas], device_step, lr, step,
                     (0.0, 0.0), rho, 1 - rho, epsilon, weight_decay or 0.0)
    for param, grad, ag, ad in zip(params, grads, acc_grads, acc_deltas):
        adadelta_update(param, grad, ag, ad, lr, rho, epsilon, weight_decay)


def adamax_update_many(params, grads, ms, us, lr, beta_1, beta_2, epsilon, step, weight_decay=0.0,
                       device_step=None):
    """:func:`adamax_update` over every parameter at ``step`` (from 1)."""
    if backend.current().runs_kernels:
        return _many("adamax_update_many", params, grads, [ms, us], device_step, lr, step, (beta_1, 0.0),
                     1 - beta_1, beta_2, epsilon, weight_decay or 0.0)
    for param, grad, m, u in zip(params, grads, ms, us):
        adamax_update(param, grad, m, u, lr, beta_1, beta_2, epsilon, step, weight_decay)


def nadam_update_many(params, grads, ms, vs, lr, beta_1, beta_2, epsilon, step, weight_decay=0.0,
                      device_step=None):
    """:func:`nadam_update` over every parameter at ``step`` (from 1)."""
    if backend.current().runs_kernels:
        return _many("nadam_update_many", params, grads, [ms, vs], device_step, lr, step, (beta_1, beta_2),
                     1 - beta_1, 1 - beta_2, epsilon, weight_decay or 0.0)
    for param, grad, m, v in zip(params, grads, ms, vs):
        nadam_update(param, grad, m, v, lr, beta_1, beta_2, epsilon, step, weight_decay)


def lion_update_many(params, grads, ms, lr, beta_1, beta_2, weight_decay=0.0, step=1, device_step=None):
    """:func:`lion_update` over every parameter."""
    if backend.current().runs_kernels:
        return _many("lion_update_many", params, grads, [ms], device_step, lr, step, (0.0, 0.0),
                     beta_1, 1 - beta_1, beta_2, 1 - beta_2, weight_decay or 0.0)
    for param, grad, m in zip(params, grads, ms):
        lion_update(param, grad, m, lr, beta_1, beta_2, weight_decay)
