"""Dice and Tversky losses over all elements (Keras's ``axis=None``): the loss as a 0-d array and
its gradient, NumPy reference and kernels (``kernels/loss_overlap.cu``) side by side.

``overlap_forward(y_true, y_pred, tversky, alpha, beta)`` returns ``(loss, stats)``; ``stats``
holds the three sums the gradient needs (on the device: nothing waits for the host), and
``overlap_backward(y_true, y_pred, stats, ...)`` returns ``d loss / d y_pred``.

Dtypes: ``y_pred`` float32, bfloat16 or float16 (float64 on numpy only), the gradient in that
dtype; targets float32 (16-bit ones widened, exactly); the loss and the sums float32 (float64
stats on numpy). Both backends widen a 16-bit ``y_pred`` and round the gradient once.
"""
import numpy as np

from .. import backend
from . import launch, precision
from .loss import EPSILON, _dense_kernel_arrays, _wide, value_dtype

_FILE = "loss_overlap.cu"
_MAX_PARTIALS = 256
_MAX_BLOCKS = 2048


def _sums(y, p, tversky):
    if tversky:
        return np.sum(y * p), np.sum(y * (1 - p)), np.sum(p * (1 - y))
    return np.sum(y * p), np.sum(y), np.sum(p)


def _denominator(s, tversky, alpha, beta, eps):
    return s[0] + alpha * s[1] + beta * s[2] + eps if tversky else s[1] + s[2] + eps


def overlap_forward(y_true, y_pred, tversky=False, alpha=0.5, beta=0.5, eps=EPSILON):
    """``(loss, stats)``: dice ``1 - 2 sum(y p) / (sum(y) + sum(p) + eps)`` or tversky
    ``1 - sum(y p) / (sum(y p) + alpha sum(y (1 - p)) + beta sum(p (1 - y)) + eps)``."""
    if backend.current().runs_kernels:
        y, p = _dense_kernel_arrays("dice/tversky loss", y_true, y_pred)
        n = launch.i32(p.size, "dice/tversky loss: elements")
        blocks = launch.blocks_for(n, cap=_MAX_PARTIALS)
        partial, stats = launch.empty((3 * blocks,)), launch.empty((4,))
        launch.run(_FILE, "overlap_sum_partials", blocks, launch.THREADS, y, p, partial, n, int(tversky))
        launch.run(_FILE, "overlap_finish", 1, launch.THREADS, partial, blocks, stats, int(tversky),
                   launch.f32(alpha), launch.f32(beta), launch.f32(eps))
        return stats[3:].reshape(()), stats
    s = _sums(*_wide(y_true, y_pred), tversky)
    scale = 1 if tversky else 2
    loss = 1 - scale * s[0] / _denominator(s, tversky, alpha, beta, eps)
    return np.asarray(loss, dtype=value_dtype(y_pred.dtype)), np.array(s, dtype=np.float64)


def overlap_backward(y_true, y_pred, stats, tversky=False, alpha=0.5, beta=0.5, eps=EPSILON):
    """``d loss / d y_pred`` from the forward's ``stats``; y_pred's shape and dtype."""
    if backend.current().runs_kernels:
        y, p = _dense_kernel_arrays("dice/tversky loss", y_true, y_pred)
        dx = launch.empty(p.shape, p.dtype)
        n = launch.i32(dx.size, "dice/tversky loss: elements")
        launch.run(_FILE, "overlap_backward", launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS,
                   y, p, stats, dx, n, int(tversky), launch.f32(alpha), launch.f32(beta), launch.f32(eps))
        return dx
    dtype, y_true = y_pred.dtype, precision.widen(y_true)
    denom = _denominator(stats, tversky, alpha, beta, eps)
    ddenom = y_true - alpha * y_true + beta * (1 - y_true) if tversky else 1
    scale = 1 if tversky else 2
    return precision.narrow(-scale * (y_true * denom - stats[0] * ddenom) / denom ** 2, dtype)
