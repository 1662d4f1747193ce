"""Adafactor's step (Keras 3's form), in place: NumPy reference and kernels
(``kernels/optim_adafactor.cu``) side by side.

``adafactor_update(param, grad, r, c, v, lr, step, ...)``: a parameter of rank >= 2, seen as
(batches, rows, cols), keeps factored second moments ``r`` (batches, rows) and ``c``
(batches, cols) (shaped as the parameter without its last, or second-to-last, axis); one of
lower rank keeps ``v`` of its own shape. ``lr`` is this step's rate, already capped by
``1 / sqrt(step)`` when Keras's ``relative_step`` asks for it.
"""
import math

import numpy as np

from .. import backend
from . import launch
from .loss import _finish_sum

_FILE = "optim_adafactor.cu"
_MAX_BLOCKS = 2048
_MAX_PARTIALS = 256


def _mean_square(x):
    """0-d device array: mean of x^2 (regularize.cu's penalty sum with l2 = 1, over x.size)."""
    from .regularize import penalty
    return penalty(x, 0.0, 1.0, x.size)


def adafactor_update(param, grad, r, c, v, lr, step, beta_2_decay=-0.8, epsilon_1=1e-30, epsilon_2=1e-3,
                     clip_threshold=1.0, weight_decay=0.0, decay_lr=None):
    """One Adafactor step at ``step`` (from 1); ``r``, ``c`` for rank >= 2, ``v`` below (others None).
    The weight decay uses ``decay_lr`` (the rate before the relative-step cap; default ``lr``)."""
    decay_lr = lr if decay_lr is None else decay_lr
    rho = min(lr, 1.0 / math.sqrt(step))
    beta = 1.0 - step ** beta_2_decay
    factored = param.ndim >= 2
    if backend.current().runs_kernels:
        return _adafactor_kernels(param, grad, r, c, v, decay_lr, rho, beta, epsilon_1, epsilon_2, clip_threshold,
                                  weight_decay, factored)
    if weight_decay:
        param -= param * weight_decay * decay_lr
    alpha = max(epsilon_2, float(np.sqrt(np.mean(np.square(param))))) * rho
    regulated = np.square(grad) + epsilon_1
    if factored:
        r[...] = beta * r + (1 - beta) * np.mean(regulated, axis=-1)
        c[...] = beta * c + (1 - beta) * np.mean(regulated, axis=-2)
        v_hat = np.expand_dims(r / np.mean(r, axis=-1, keepdims=True), -1) * np.expand_dims(c, -2)
    else:
        v[...] = beta * v + (1 - beta) * regulated
        v_hat = v
    u = grad / np.sqrt(v_hat)
    u_hat = u / max(1.0, float(np.sqrt(np.mean(np.square(u)))) / clip_threshold)
    param -= (alpha * u_hat).astype(param.dtype)


def _adafactor_kernels(param, grad, r, c, v, lr, rho, beta, eps1, eps2, clip, weight_decay, factored):
    grad, = launch.inputs("adafactor_update", grad)
    n = launch.i32(param.size, "adafactor_update: elements")
    grid = launch.blocks_for(n, cap=_MAX_BLOCKS)
    if weight_decay:
        launch.run(_FILE, "adafactor_decay", grid, launch.THREADS, param, n, launch.f32(weight_decay), launch.f32(lr))
    param_ms = _mean_square(param)
    rows, cols = (int(param.shape[-2]), int(param.shape[-1])) if factored else (1, 1)
    batches = param.size // (rows * cols) if factored else 1
    r_mean = launch.empty((batches,))
    if factored:
        launch.run(_FILE, "adafactor_row_col", launch.blocks_for(batches * (rows + cols), cap=_MAX_BLOCKS),
                   launch.THREADS, grad, r, c, batches, rows, cols, launch.f32(beta), launch.f32(eps1))
        launch.run(_FILE, "adafactor_row_means", launch.blocks_for(batches), launch.THREADS, r, r_mean, batches, rows)
        v = launch.empty((1,))
    else:
        launch.run(_FILE, "adafactor_velocity", grid, launch.THREADS, grad, v, n, launch.f32(beta), launch.f32(eps1))
        r = c = launch.empty((1,))
    partial = launch.empty((launch.blocks_for(n, cap=_MAX_PARTIALS),))
    launch.run(_FILE, "adafactor_u_squares", partial.size, launch.THREADS, grad, r, c, r_mean, v, partial, n, rows,
               cols, int(factored))
    u_ms = _finish_sum(partial, n)
    launch.run(_FILE, "adafactor_apply", grid, launch.THREADS, param, grad, r, c, r_mean, v, param_ms, u_ms, n,
               rows, cols, int(factored), launch.f32(rho), launch.f32(eps2), launch.f32(clip))
