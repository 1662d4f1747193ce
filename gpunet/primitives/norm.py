"""Batch normalization over every axis but the last (channels), forward and backward.

Inputs are (..., C): (N, C) after a Dense, (N, H, W, C) after a conv. Statistics are per channel
over the other ``M = x.size / C`` values. Training uses the batch's mean and biased variance and
returns ``mean`` and ``inv_std = 1 / sqrt(var + epsilon)`` (C,), which is all its backward needs
besides ``x``, and ``var`` itself for the moving variance (a variance far below epsilon cannot be
recovered from ``inv_std``); inference uses the moving statistics. ``gamma`` None means a scale
of 1 and ``beta`` None an offset of 0 (BatchNormalization with ``scale=False`` / ``center=False``).

On a kernel backend (``backend.current().runs_kernels``) every op runs the kernels of
``kernels/norm.cu``; the functions named ``_<op>_kernel`` at the end of this file launch them.

dtypes: ``x``, ``y``, ``dy`` and ``dx`` are float32, bfloat16 or float16 (float64 on numpy only),
``y`` and ``dx`` of ``x``'s / ``dy``'s dtype. The statistics (mean, var, inv_std), the moving
statistics, gamma, beta and their gradients are float32 for 16-bit x (gamma / beta given in 16
bits are widened first): every sum accumulates in float32 and ``y`` / ``dx`` are rounded once
where they are stored, in the kernels and in the NumPy reference (``precision.widen`` / ``narrow``).
"""
import numpy as np

from .. import backend
from . import cast, epilogue, launch, precision

__all__ = [
    "batch_norm_train_forward", "batch_norm_backward",
    "batch_norm_inference_forward", "batch_norm_inference_backward",
    "batch_norm_update_moving_stats",
]


def _rows(a):
    return a.reshape(-1, a.shape[-1])


def _affine(x_hat, gamma, beta):
    y = x_hat * gamma if gamma is not None else x_hat
    return y + beta if beta is not None else y


def batch_norm_train_forward(x, gamma, beta, epsilon, activation=None):
    """Normalise with batch statistics. ``x`` (..., C); ``gamma``, ``beta`` (C,) or None.

    Returns ``(y, mean, inv_std, var)``: ``y`` like ``x``; the others (C,): the batch mean,
    ``1 / sqrt(var + epsilon)`` (what backward needs) and the biased batch variance ``var`` (what
    batch_norm_update_moving_stats needs). ``activation``: an ``epilogue.Epilogue`` applied to y
    in the same pass (the activation layer after a BatchNormalization), or None.
    """
    if backend.current().runs_kernels:
        return _batch_norm_train_forward_kernel(x, gamma, beta, epsilon, activation)
    dtype, (x, gamma, beta) = x.dtype, _widened(x, gamma, beta)
    rows = _rows(x)
    mean = rows.mean(axis=0)
    centered = rows - mean
    # Two passes (mean, then squares of the centred values) stay accurate when |mean| >> std.
    var = np.mean(centered * centered, axis=0)
    inv_std = 1 / np.sqrt(var + epsilon)
    y = epilogue.activate(_affine(centered * inv_std, gamma, beta), activation)
    return precision.narrow(y.reshape(x.shape), dtype), mean, inv_std, var


def batch_norm_backward(dy, x, gamma, mean, inv_std):
    """Gradient of the training forward. ``dy``, ``x`` (..., C); ``mean``, ``inv_std`` from it.

    Returns ``(dx, dgamma, dbeta)``, ``dx`` like ``x``, the others (C,). The batch statistics
    depend on ``x``, so ``dx = gamma * inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat))``.
    """
    if backend.current().runs_kernels:
        return _batch_norm_backward_kernel(dy, x, gamma, mean, inv_std)
    dtype, (dy, x, gamma) = dy.dtype, _widened(dy, x, gamma)
    dy_rows, count = _rows(dy), dy.size // dy.shape[-1]
    x_hat = (_rows(x) - mean) * inv_std
    dbeta = dy_rows.sum(axis=0)
    dgamma = np.sum(dy_rows * x_hat, axis=0)
    scale = inv_std * gamma if gamma is not None else inv_std
    dx = (dy_rows - dbeta / count - x_hat * (dgamma / count)) * scale
    return precision.narrow(dx.reshape(x.shape), dtype), dgamma, dbeta


def batch_norm_inference_forward(x, gamma, beta, moving_mean, moving_var, epsilon, activation=None):
    """Normalise with fixed statistics: ``(x - moving_mean) / sqrt(moving_var + epsilon)``,
    then scale and offset (and ``activation``, as in the training forward). ``x`` (..., C), the
    rest (C,) (``gamma``, ``beta`` may be None)."""
    if backend.current().runs_kernels:
        return _batch_norm_inference_forward_kernel(x, gamma, beta, moving_mean, moving_var, epsilon, activation)
    dtype, (x, gamma, beta) = x.dtype, _widened(x, gamma, beta)
    inv_std = 1 / np.sqrt(moving_var + epsilon)
    return precision.narrow(epilogue.activate(_affine((x - moving_mean) * inv_std, gamma, beta), activation), dtype)


def batch_norm_inference_backward(dy, x, gamma, moving_mean, moving_var, epsilon):
    """Gradient of the inference forward (statistics are constants here, e.g. a frozen layer).

    Returns ``(dx, dgamma, dbeta)``: ``dx`` like ``x``, the others (C,).
    """
    if backend.current().runs_kernels:
        return _batch_norm_inference_backward_kernel(dy, x, gamma, moving_mean, moving_var, epsilon)
    dtype, (dy, x, gamma) = dy.dtype, _widened(dy, x, gamma)
    inv_std = 1 / np.sqrt(moving_var + epsilon)
    dy_rows = _rows(dy)
    dbeta = dy_rows.sum(axis=0)
    dgamma = np.sum(dy_rows * ((_rows(x) - moving_mean) * inv_std), axis=0)
    scale = inv_std * gamma if gamma is not None else inv_std
    return precision.narrow(dy * scale, dtype), dgamma, dbeta


def batch_norm_update_moving_stats(moving_mean, moving_var, mean, var, momentum):
    """In place: ``moving = momentum * moving + (1 - momentum) * batch`` for mean and variance.

    ``mean`` and ``var`` are the training forward's batch mean and biased batch variance, as
    Keras stores them. All arrays (C,).
    """
    if backend.current().runs_kernels:
        return _batch_norm_update_moving_stats_kernel(moving_mean, moving_var, mean, var, momentum)
    moving_mean *= momentum
    moving_mean += (1 - momentum) * mean
    moving_var *= momentum
    moving_var += (1 - momentum) * var


def _widened(*arrays):
    """The NumPy reference's operands: 16-bit arrays as float32 (exact), the rest (None) as they are."""
    return [None if a is None else precision.widen(a) for a in arrays]


# Kernel paths (kernels/norm.cu): x / y / dy / dx in float32, bfloat16 or float16, every (C,)
# vector float32; every step, reductions included, is a kernel.

_MAX_CHUNKS = 64     # row chunks of a column reduction: blocks enough for a GPU, few partial sums
_MAX_BLOCKS = 2048   # grid-stride kernels: enough blocks to fill a GPU; more only add launch cost


def _scale_and_offset(gamma, beta, channels):
    """``gamma`` and ``beta``, with ones and zeros for a missing one (x * 1 + 0 == x exactly)."""
    xp = backend.current().xp
    gamma = xp.ones(channels, dtype=np.float32) if gamma is None else gamma
    beta = xp.zeros(channels, dtype=np.float32) if beta is None else beta
    return gamma, beta


def _activations(op, *arrays):
    """x, dy (one dtype of precision.FLOATS) on the backend, checked as the kernels' T."""
    return launch.inputs(op, *arrays, dtype=precision.FLOATS)


def _params(op, *vectors):
    """(C,) vectors as float32 on the backend: 16-bit gamma / beta widened (exact), None kept."""
    return launch.inputs(op, *[None if v is None else cast.cast(v, np.float32) if precision.is_half(v.dtype) else v
                               for v in vectors])


@launch.plan
def _column_layout(rows, channels):
    """A column reduction's grid and ``chunk_rows, lanes`` for (rows, channels)."""
    lanes = launch.channel_lanes(channels)
    chunk_rows = max(4 * (launch.THREADS // lanes), -(-rows // _MAX_CHUNKS))
    chunks = max(1, -(-rows // chunk_rows))
    return (-(-channels // lanes), chunks), chunk_rows, lanes


def _column_sums(kernel, rows, channels, *args, outputs=2, tail=()):
    """Per-channel reductions over ``rows`` rows in one launch of ``kernel``, which writes
    ``outputs`` (C,) results (its chunks finished by each channel tile's last block). ``args``
    come before the outputs in the kernel's signature, ``tail`` after the layout arguments."""
    launch.i32(rows * channels, f"{kernel}: elements")
    grid, chunk_rows, lanes = _column_layout(rows, channels)
    results = [launch.empty((channels,)) for _ in range(outputs)]
    partial = launch.empty((2, grid[1], channels))
    launch.run("norm.cu", kernel, grid, launch.THREADS, *args, *results, partial, launch.counters(grid[0]),
               rows, channels, chunk_rows, lanes, *tail)
    return results


def _launch_elementwise(kernel, count, *args):
    """Launch a grid-stride kernel over ``count`` elements, one thread each."""
    launch.i32(count, f"{kernel}: elements")
    launch.run("norm.cu", kernel, launch.blocks_for(count, cap=_MAX_BLOCKS), launch.THREADS, *args)


def _inv_std_kernel(var, epsilon):
    inv_std = launch.empty(var.shape)
    _launch_elementwise("batch_norm_inv_std", var.size, var, inv_std, var.size, float(epsilon))
    return inv_std


def _normalize_kernel(x, mean, inv_std, gamma, beta, activation=None):
    gamma, beta = _scale_and_offset(gamma, beta, x.shape[-1])
    y = launch.empty(x.shape, x.dtype)
    _launch_elementwise("batch_norm_normalize", x.size, x, mean, inv_std, gamma, beta, y, x.size, x.shape[-1],
                        *epilogue.kernel_settings(activation))
    return y


def _batch_norm_train_forward_kernel(x, gamma, beta, epsilon, activation=None):
    x, = _activations("batch_norm_train_forward", x)
    gamma, beta = _params("batch_norm_train_forward", gamma, beta)
    rows, channels = x.size // x.shape[-1], x.shape[-1]
    mean, var, inv_std = _column_sums("batch_norm_statistics", rows, channels, x, outputs=3,
                                      tail=(launch.f32(epsilon),))
    return _normalize_kernel(x, mean, inv_std, gamma, beta, activation), mean, inv_std, var


def _batch_norm_backward_kernel(dy, x, gamma, mean, inv_std):
    dy, x = _activations("batch_norm_backward", dy, x)
    gamma, mean, inv_std = _params("batch_norm_backward", gamma, mean, inv_std)
    gamma, _ = _scale_and_offset(gamma, None, x.shape[-1])
    rows, channels = x.size // x.shape[-1], x.shape[-1]
    dbeta, dgamma = _column_sums("batch_norm_backward_sums", rows, channels, dy, x, mean, inv_std)
    dx = launch.empty(x.shape, dy.dtype)
    _launch_elementwise("batch_norm_backward_input", x.size, dy, x, mean, inv_std, gamma, dgamma, dbeta, dx,
                        x.size, channels)
    return dx, dgamma, dbeta


def _batch_norm_inference_forward_kernel(x, gamma, beta, moving_mean, moving_var, epsilon, activation=None):
    x, = _activations("batch_norm_inference_forward", x)
    gamma, beta, moving_mean, moving_var = _params(
        "batch_norm_inference_forward", gamma, beta, moving_mean, moving_var)
    return _normalize_kernel(x, moving_mean, _inv_std_kernel(moving_var, epsilon), gamma, beta, activation)


def _batch_norm_inference_backward_kernel(dy, x, gamma, moving_mean, moving_var, epsilon):
    dy, x = _activations("batch_norm_inference_backward", dy, x)
    gamma, moving_mean, moving_var = _params("batch_norm_inference_backward", gamma, moving_mean, moving_var)
    gamma, _ = _scale_and_offset(gamma, None, x.shape[-1])
    rows, channels = x.size // x.shape[-1], x.shape[-1]
    inv_std = _inv_std_kernel(moving_var, epsilon)
    dbeta, dgamma = _column_sums("batch_norm_backward_sums", rows, channels, dy, x, moving_mean, inv_std)
    dx = launch.empty(x.shape, dy.dtype)
    _launch_elementwise("batch_norm_inference_backward_input", x.size, dy, inv_std, gamma, dx, x.size, channels)
    return dx, dgamma, dbeta


def _batch_norm_update_moving_stats_kernel(moving_mean, moving_var, mean, var, momentum):
    op = "batch_norm_update_moving_stats"
    for name, a in (("moving_mean", moving_mean), ("moving_var", moving_var)):
        if a.dtype != np.float32 or not a.flags.c_contiguous:
            raise TypeError(f"{op} on the {backend.current().name} backend updates {name} in place and "
                            f"needs a C-contiguous float32 array; received dtype {a.dtype}.")
    mean, var = launch.inputs(op, mean, var)
    _launch_elementwise(op, mean.size, moving_mean, moving_var, mean, var, mean.size,
                        float(momentum), float(1 - momentum))
