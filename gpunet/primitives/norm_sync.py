"""Synchronized batch normalization's backward, given the batch sums of every rank.

``batch_norm_backward_from_sums(dy, x, gamma, mean, inv_std, dgamma_sum, dbeta_sum)`` is
``batch_norm_backward`` with its two per-channel sums supplied instead of computed from this
rank's rows: ``dx = (dy - dbeta_sum / M - x_hat * dgamma_sum / M) * inv_std * gamma``, M this
rank's rows. With ``dbeta_sum = sum_r (m_r / sum m) * sum(dy_r)`` (and the like for dgamma)
over all ranks, this is the gradient of the loss over the global batch, in this rank's units
(its loss is its own mean), which is what the gradient reduction then weights by m_r / sum m.
On a kernel backend it is ``kernels/norm.cu``'s ``batch_norm_backward_input``.

dtypes: ``dy`` and ``x`` float32, bfloat16 or float16 (one of them; float64 on numpy only), ``dx``
of dy's dtype, rounded once from float32 arithmetic; the (C,) vectors are float32 (16-bit ones
are widened), as in ``norm``.
"""
import numpy as np

from .. import backend
from . import launch, norm, precision

__all__ = ["batch_norm_backward_from_sums"]

_MAX_BLOCKS = 2048


def batch_norm_backward_from_sums(dy, x, gamma, mean, inv_std, dgamma_sum, dbeta_sum):
    """``dy``, ``x`` (..., C); the rest (C,) (``gamma`` may be None: a scale of 1). Returns ``dx``."""
    if backend.current().runs_kernels:
        return _backward_from_sums_kernel(dy, x, gamma, mean, inv_std, dgamma_sum, dbeta_sum)
    dtype = dy.dtype
    dy, x, gamma, mean, inv_std, dgamma_sum, dbeta_sum = norm._widened(dy, x, gamma, mean, inv_std, dgamma_sum,
                                                                       dbeta_sum)
    rows = dy.size // dy.shape[-1]
    x_hat = (x - mean) * inv_std
    scale = inv_std * gamma if gamma is not None else inv_std
    return precision.narrow((dy - dbeta_sum / rows - x_hat * (dgamma_sum / rows)) * scale, dtype)


def _backward_from_sums_kernel(dy, x, gamma, mean, inv_std, dgamma_sum, dbeta_sum):
    op = "batch_norm_backward_from_sums"
    dy, x = norm._activations(op, dy, x)
    gamma, mean, inv_std, dgamma_sum, dbeta_sum = norm._params(op, gamma, mean, inv_std, dgamma_sum, dbeta_sum)
    if gamma is None:
        gamma = backend.current().xp.ones(x.shape[-1], dtype=np.float32)
    dx = launch.empty(x.shape, dy.dtype)
    launch.i32(x.size, f"{op}: elements")
    launch.run("norm.cu", "batch_norm_backward_input", launch.blocks_for(x.size, cap=_MAX_BLOCKS), launch.THREADS,
               dy, x, mean, inv_std, gamma, dgamma_sum, dbeta_sum, dx, x.size, x.shape[-1])
    return dx
