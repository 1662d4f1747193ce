"""Inverted dropout with a counter-based mask: element i is kept or dropped by a hash of (seed, i).

The mask is a pure function of the seed, the rate and the flat (C-order) element index, so the
CUDA kernel reproduces it bit for bit without a random-number state:

    mix32(h):  h ^= h >> 16; h *= 0x7feb352d; h ^= h >> 15; h *= 0x846ca68b; h ^= h >> 16
    key = mix32(seed);  h = mix32(mix32(i ^ key) + key);  u = (h >> 8) * 2**-24
    keep element i  iff  u >= rate;  kept values are scaled by 1 / (1 - rate)

All arithmetic wraps around in uint32. ``u >= rate`` is evaluated exactly, as the integer
comparison ``(h >> 8) >= ceil(rate * 2**24)`` (see :func:`keep_threshold`).

On a kernel backend (``backend.current().runs_kernels``) forward and backward run the kernels of
``kernels/dropout.cu``, which compute the same hash on the device. dtypes: float32, bfloat16 and
float16 (float64 on numpy only); outputs and the mask have the input's dtype, the mask holding 0
or ``1 / (1 - rate)`` rounded to it, and products are computed in float32 and rounded once.

``seed`` is an int, or ``(base, calls)`` with ``calls`` a one-element uint32 array: the seed is
then ``base + calls[0]`` and the call adds one to ``calls``. On a kernel backend ``calls`` is
device memory read and advanced by the kernel itself, so a captured training step (a CUDA
graph) draws a new mask at every replay (the Dropout layer keeps its call count there).
"""
import math

import numpy as np

from .. import backend
from . import launch, precision

_MAX_BLOCKS = 2048     # grid-stride kernels: enough blocks to fill any GPU; more only adds launch cost


def mix32(h):
    """The 32-bit finaliser above, on a uint32 array (wraps around; returns a new array)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x7FEB352D)
    h = h ^ (h >> np.uint32(15))
    h = h * np.uint32(0x846CA68B)
    return h ^ (h >> np.uint32(16))


def keep_threshold(rate):
    """The integer that ``h >> 8`` must reach to keep an element: ``ceil(rate * 2**24)``."""
    return math.ceil(float(rate) * 2 ** 24)


def _host_seed(seed):
    """The int seed of a call (NumPy path): an int as it is, or ``base + calls[0]``, counting the call."""
    if not isinstance(seed, tuple):
        return seed
    base, calls = seed
    value = int(base) + int(calls[0])
    calls[0] += 1
    return value


def _kernel_seed(seed):
    """``(base, calls)`` kernel arguments: a tuple's own, or an int with a new zero counter."""
    if isinstance(seed, tuple):
        return np.uint32(int(seed[0]) % 2 ** 32), seed[1]
    return np.uint32(int(seed) % 2 ** 32), backend.current().zeros((1,), np.uint32)


def dropout_keep(size, rate, seed):
    """Boolean keep-mask of ``size`` elements (flat, C order) for ``rate`` and a uint32 ``seed``."""
    key = mix32(np.array([int(seed) % 2 ** 32], dtype=np.uint32))
    index = np.arange(size, dtype=np.uint64).astype(np.uint32)   # flat index mod 2**32, as a uint32 counter
    h = mix32(mix32(index ^ key) + key)
    return (h >> np.uint32(8)) >= np.uint32(keep_threshold(rate))


def dropout_forward(x, rate, seed):
    """Drop elements of x with probability ``rate``, scale the rest by ``1 / (1 - rate)``.

    x any shape; ``0 <= rate < 1``; ``seed`` an int (used modulo 2**32) or ``(base, calls)`` (see
    the module doc). Returns ``(y, mask)``,
    both x's shape and dtype, mask holding 0 or ``1 / (1 - rate)``, so that ``y = x * mask``.
    """
    if not 0 <= rate < 1:
        raise ValueError(f"dropout rate must be in [0, 1); received {rate!r}.")
    if backend.current().runs_kernels:
        return _dropout_forward_kernel(x, rate, seed)
    keep = dropout_keep(x.size, rate, _host_seed(seed)).reshape(x.shape)
    mask = keep.astype(x.dtype) * _scale(rate, x.dtype)
    return _times(x, mask), mask


def dropout_backward(dy, mask):
    """Gradient of :func:`dropout_forward`: ``dy * mask``."""
    if backend.current().runs_kernels:
        return _dropout_backward_kernel(dy, mask)
    return _times(dy, mask)


def spatial_dropout2d_forward(x, rate, seed):
    """Dropout of whole channels: ``x`` (N, H, W, C); channel (image, ch) is kept as Dropout keeps
    flat element ``image * C + ch`` for the same seed. Returns ``(y, mask)``, mask (N, C)."""
    if not 0 <= rate < 1:
        raise ValueError(f"dropout rate must be in [0, 1); received {rate!r}.")
    n, c = x.shape[0], x.shape[-1]
    if backend.current().runs_kernels:
        x, = _arrays("spatial_dropout2d_forward", [x])
        mask = launch.empty((n, c), x.dtype)
        count = launch.i32(mask.size, "dropout_mask: elements")
        launch.run("dropout.cu", "dropout_mask", launch.blocks_for(count, cap=_MAX_BLOCKS), launch.THREADS,
                   mask, count, *_kernel_seed(seed), launch.counters(1), np.uint32(keep_threshold(rate)),
                   np.float32(1.0 / (1.0 - rate)))
        return _channel_mask_multiply(x, mask), mask
    keep = dropout_keep(n * c, rate, _host_seed(seed)).reshape(n, c)
    mask = keep.astype(x.dtype) * _scale(rate, x.dtype)
    return _times(x, mask[:, None, None, :]), mask


def spatial_dropout2d_backward(dy, mask):
    """Gradient of :func:`spatial_dropout2d_forward`: ``dy * mask`` broadcast over H and W."""
    if backend.current().runs_kernels:
        return _channel_mask_multiply(dy, mask)
    return _times(dy, mask[:, None, None, :])


def _scale(rate, dtype):
    """``1 / (1 - rate)`` as the mask holds it: rounded to float32, then once more to a 16-bit dtype."""
    if precision.is_half(dtype):
        return precision.narrow(np.float32(1.0 / (1.0 - rate)), dtype)
    return np.dtype(dtype).type(1.0 / (1.0 - rate))


def _times(x, mask):
    """``x * mask``; 16-bit: in float32, rounded once (as the kernels)."""
    if precision.is_half(x.dtype):
        return precision.narrow(precision.widen(x) * precision.widen(mask), x.dtype)
    return x * mask


def _arrays(op, arrays):
    """Same-shaped (or, for a mask, any-shaped) arrays of one float dtype a dropout kernel reads."""
    return launch.inputs(op, *arrays, dtype=precision.FLOATS)


def _channel_mask_multiply(x, mask):
    x, mask = _arrays("channel_mask_multiply", [x, mask])
    y = launch.empty(x.shape, x.dtype)
    count = launch.i32(x.size, "channel_mask_multiply: elements")
    launch.run("dropout.cu", "channel_mask_multiply", launch.blocks_for(count, cap=_MAX_BLOCKS), launch.THREADS,
               x, mask, y, count, x.shape[1] * x.shape[2], x.shape[3])
    return y


def _dropout_forward_kernel(x, rate, seed):
    x, = _arrays("dropout_forward", [x])
    y, mask = launch.empty(x.shape, x.dtype), launch.empty(x.shape, x.dtype)
    n = launch.i32(x.size, "dropout_forward: elements")
    scale = np.float32(1.0 / (1.0 - rate))   # rounded as the NumPy path's x.dtype.type(...)
    launch.run("dropout.cu", "dropout_forward", launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS,
               x, y, mask, n, *_kernel_seed(seed), launch.counters(1), np.uint32(keep_threshold(rate)), scale)
    return y, mask


def _dropout_backward_kernel(dy, mask):
    if tuple(dy.shape) != tuple(mask.shape):
        raise ValueError(f"dropout_backward needs dy and mask of one shape; received {tuple(dy.shape)} "
                         f"and {tuple(mask.shape)}.")
    dy, mask = _arrays("dropout_backward", [dy, mask])
    dx = launch.empty(dy.shape, dy.dtype)
    n = launch.i32(dx.size, "dropout_backward: elements")
    launch.run("dropout.cu", "dropout_backward", launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS,
               dy, mask, dx, n)
    return dx
