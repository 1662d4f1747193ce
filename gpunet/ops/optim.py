"""Optimizer updates: one fused in-place step per optimizer over one parameter, plus clipping.

Every update follows Keras 3's formula (``keras/src/optimizers``), including the order of
its products, so that a float32 step here matches Keras's to rounding. ``lr`` is the learning
rate of this step (the schedule already evaluated); ``weight_decay`` is Keras's decoupled
decay ``p -= p * weight_decay * lr``, applied before the update, fused into the same
call so that one kernel launch does both.

Arrays are updated in place (``=`` into the slots and the parameter); each slot has the
parameter's shape and dtype. Slots an option does not use are passed as ``None``: SGD's
``velocity`` when ``momentum == 0``, Adam's ``v_hat`` without AMSGrad, RMSprop's
``momentum_buf`` when ``momentum == 0`` and ``average_grad`` when not centered.

The clipping helpers return new arrays and never touch the caller's gradients.
"""
import math

import numpy as np

__all__ = [
    "sgd_update", "adam_update", "adamw_update", "rmsprop_update",
    "apply_weight_decay", "clip_by_value", "clip_by_norm", "clip_by_global_norm",
]


def apply_weight_decay(param, lr, weight_decay):
    """Decoupled weight decay in place: ``param -= param * weight_decay * lr`` (Keras's order)."""
    if weight_decay:
        param -= param * weight_decay * lr


def sgd_update(param, grad, velocity, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    """One SGD step in place.

    Plain: ``p -= lr * g``. With momentum (``velocity`` an array of p's shape):
    ``velocity = momentum * velocity - lr * g`` then ``p += velocity``, or with Nesterov
    ``p += momentum * velocity - lr * g`` (the updated velocity).
    """
    apply_weight_decay(param, lr, weight_decay)
    if velocity is None:
        param -= grad * lr
        return
    velocity *= momentum
    velocity -= grad * lr
    if nesterov:
        param += velocity * momentum - grad * lr
    else:
        param += velocity


def adam_update(param, grad, m, v, lr, beta_1, beta_2, epsilon, step, v_hat=None, weight_decay=0.0):
    """One Adam step in place; ``step`` counts from 1 on the first update.

    ``m += (g - m) * (1 - beta_1)``; ``v += (g**2 - v) * (1 - beta_2)``;
    AMSGrad (``v_hat`` given): ``v_hat = max(v_hat, v)`` and ``v_hat`` replaces ``v`` below;
    ``p -= m * alpha / (sqrt(v) + epsilon)`` with the bias correction folded into
    ``alpha = lr * sqrt(1 - beta_2**step) / (1 - beta_1**step)``.
    """
    if step < 1:
        raise ValueError(f"adam_update: step counts from 1; received step={step}.")
    apply_weight_decay(param, lr, weight_decay)
    alpha = lr * math.sqrt(1.0 - beta_2 ** step) / (1.0 - beta_1 ** step)
    m += (grad - m) * (1.0 - beta_1)
    v += (grad * grad - v) * (1.0 - beta_2)
    second = v
    if v_hat is not None:
        np.maximum(v_hat, v, out=v_hat)
        second = v_hat
    param -= (m * alpha) / (np.sqrt(second) + epsilon)


def adamw_update(param, grad, m, v, lr, weight_decay, beta_1, beta_2, epsilon, step, v_hat=None):
    """AdamW: the decoupled decay ``p -= p * weight_decay * lr``, then the Adam step above."""
    adam_update(param, grad, m, v, lr, beta_1, beta_2, epsilon, step, v_hat=v_hat,
                weight_decay=weight_decay)


def rmsprop_update(param, grad, velocity, momentum_buf, lr, rho, momentum, epsilon,
                   average_grad=None, weight_decay=0.0):
    """One RMSprop step in place.

    ``velocity = rho * velocity + (1 - rho) * g**2``; centered (``average_grad`` given):
    ``average_grad = rho * average_grad + (1 - rho) * g`` and the denominator is
    ``sqrt(velocity - average_grad**2 + epsilon)``, else ``sqrt(velocity + epsilon)``;
    ``increment = lr * g / denominator``; with momentum (``momentum_buf`` given):
    ``momentum_buf = momentum * momentum_buf + increment`` and ``p -= momentum_buf``,
    else ``p -= increment``.
    """
    apply_weight_decay(param, lr, weight_decay)
    velocity *= rho
    velocity += (grad * grad) * (1.0 - rho)
    if average_grad is not None:
        average_grad *= rho
        average_grad += grad * (1.0 - rho)
        denominator = velocity - average_grad * average_grad + epsilon
    else:
        denominator = velocity + epsilon
    increment = (grad * lr) / np.sqrt(denominator)
    if momentum_buf is not None:
        momentum_buf *= momentum
        momentum_buf += increment
        param -= momentum_buf
    else:
        param -= increment


def clip_by_value(grad, clipvalue):
    """``grad`` clipped elementwise to ``[-clipvalue, clipvalue]`` (a new array)."""
    return grad.clip(-clipvalue, clipvalue)


def clip_by_norm(grad, clipnorm):
    """``grad * clipnorm / max(||grad||, clipnorm)``: rescaled only when its L2 norm exceeds clipnorm."""
    norm = float(np.sqrt((grad * grad).sum()))
    return grad * clipnorm / max(norm, clipnorm)


def clip_by_global_norm(grads, clipnorm):
    """All ``grads`` rescaled together so that their joint L2 norm is at most ``clipnorm``.

    As in Keras, a non-finite joint norm turns every gradient into NaN rather than into
    zeros, so that a diverged step is visible instead of silently skipped.
    """
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    scale = clipnorm / max(norm, clipnorm) if math.isfinite(norm) else math.nan
    return [g * scale for g in grads]
