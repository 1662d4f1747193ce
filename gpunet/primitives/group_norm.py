"""Normalization over groups of values inside a sample: LayerNormalization (over the last axis)
and GroupNormalization (over all pixels of each group of channels), forward and backward.

``x`` is read as ``(outer, p, C)``: LayerNormalization passes ``p = 1`` (each row of the last
axis is one group, ``groups = 1``), GroupNormalization ``outer = batch`` and ``p`` = the pixels,
with ``groups`` groups of ``C / groups`` channels. Statistics: the mean and the biased variance
of each (outer, group); ``inv_std = 1 / sqrt(var + epsilon)``, shape ``(outer, groups)``, which
with x is all backward needs. ``gamma``, ``beta``: (C,) or None. ``rms``: Keras 3's
``rms_scaling``, ``y = x * inv_std * gamma`` (x not centred; no beta).

On a kernel backend the ops run ``kernels/group_norm.cu`` (one block per group, fixed-order
block sums); the per-channel gradients of gamma and beta are summed by ``conv.bias_backward``.

dtypes: ``x``, ``y``, ``dy``, ``dx`` float32, bfloat16 or float16 (float64 on numpy only); ``y`` /
``dx`` of the input's dtype, rounded once from float32 arithmetic (kernels and NumPy reference
alike: ``precision.widen`` / ``narrow``). ``mean``, ``inv_std``, ``gamma``, ``beta`` and their
gradients are float32 for 16-bit inputs (16-bit gamma / beta are widened); the gamma gradient's
terms are float32 too, and ``conv.bias_backward`` sums a 16-bit dy into a float32 beta gradient.
"""
import numpy as np

from .. import backend
from . import conv, launch, norm, precision

__all__ = ["group_norm_forward", "group_norm_backward"]

_FILE = "group_norm.cu"


def _grouped(a, p, groups):
    """``a`` as ``(outer, p, groups, C / groups)``."""
    c = a.shape[-1]
    return a.reshape(-1, p, groups, c // groups)


def group_norm_forward(x, gamma, beta, groups, p, epsilon, rms=False):
    """``(y, mean, inv_std)``: y like x; mean and inv_std ``(outer, groups)``."""
    if backend.current().runs_kernels:
        return _forward_kernel(x, gamma, beta, groups, p, epsilon, rms)
    dtype, (x, gamma, beta) = x.dtype, norm._widened(x, gamma, beta)
    xg = _grouped(x, p, groups)
    mean = xg.mean(axis=(1, 3))
    centered = xg - mean[:, None, :, None]
    inv_std = 1 / np.sqrt((centered * centered).mean(axis=(1, 3)) + epsilon)
    y = (xg if rms else centered) * inv_std[:, None, :, None]
    y = y.reshape(x.shape)
    if gamma is not None:
        y = y * gamma
    if beta is not None and not rms:
        y = y + beta
    return precision.narrow(y.astype(x.dtype, copy=False), dtype), mean, inv_std


def group_norm_backward(dy, x, gamma, mean, inv_std, groups, p, rms=False):
    """``(dx, dgamma, dbeta)`` of :func:`group_norm_forward`; dgamma / dbeta ``(C,)``."""
    if backend.current().runs_kernels:
        return _backward_kernel(dy, x, gamma, mean, inv_std, groups, p, rms)
    dtype, (dy, x, gamma, mean, inv_std) = dy.dtype, norm._widened(dy, x, gamma, mean, inv_std)
    s = inv_std[:, None, :, None]
    xg, dyg = _grouped(x, p, groups), _grouped(dy, p, groups)
    g = _grouped(dy * gamma if gamma is not None else dy, p, groups)
    x_hat = (xg - mean[:, None, :, None]) * s
    if rms:
        b = (g * xg).mean(axis=(1, 3), keepdims=True)
        dx = s * (g - x_hat * s * b)
        terms = dyg * xg * s
    else:
        a = g.mean(axis=(1, 3), keepdims=True)
        b = (g * x_hat).mean(axis=(1, 3), keepdims=True)
        dx = s * (g - a - x_hat * b)
        terms = dyg * x_hat
    c = x.shape[-1]
    dgamma = terms.reshape(-1, c).sum(axis=0)
    return precision.narrow(dx.reshape(x.shape).astype(dy.dtype, copy=False), dtype), dgamma, \
        dy.reshape(-1, c).sum(axis=0)


def _rows_of(x, groups, p):
    c = x.shape[-1]
    if c % groups or x.size % (p * c):
        raise ValueError(f"group_norm: x of shape {tuple(x.shape)} does not split into {groups} groups "
                         f"of channels over {p} values per sample.")
    return launch.i32(x.size // (p * c) * groups, "group_norm: rows")


def _forward_kernel(x, gamma, beta, groups, p, epsilon, rms):
    op = "group_norm_forward"
    x, = norm._activations(op, x)
    gamma, beta = norm._params(op, gamma, beta)
    rows = _rows_of(x, groups, p)
    y = launch.empty(x.shape, x.dtype)
    mean, inv_std = launch.empty((rows // groups, groups)), launch.empty((rows // groups, groups))
    absent = launch.placeholder()   # a float32 pointer for a missing gamma / beta, never read
    launch.run(_FILE, op, max(int(rows), 1), 256, x, absent if gamma is None else gamma,
               absent if beta is None else beta,
               y, mean, inv_std, rows, p, x.shape[-1], groups, launch.f32(epsilon), int(rms),
               int(gamma is not None), int(beta is not None))
    return y, mean, inv_std


def _backward_kernel(dy, x, gamma, mean, inv_std, groups, p, rms):
    op = "group_norm_backward"
    dy, x = norm._activations(op, dy, x)
    gamma, mean, inv_std = norm._params(op, gamma, mean, inv_std)
    rows = _rows_of(x, groups, p)
    dx, terms = launch.empty(x.shape, dy.dtype), launch.empty(x.shape)
    launch.run(_FILE, op, max(int(rows), 1), 256, dy, x, launch.placeholder() if gamma is None else gamma, mean,
               inv_std, dx, terms, rows, p, x.shape[-1], groups, int(rms), int(gamma is not None))
    return dx, conv.bias_backward(terms), conv.bias_backward(dy)
