"""Memory-bound NumPy passes split over the leading (batch) axis on ``parallel``'s threads.

Each function does what its one-line NumPy equivalent does, with the same result bit for bit
(every element is computed by the same operation; only which thread computes it differs).
The numpy backend's ops use them around their GEMMs; on a kernel backend they are not called.
"""
import numpy as np

from . import parallel

__all__ = ["copy_into", "add_into", "add_bias", "relu_inplace", "relu_backward"]


def copy_into(dst, src, parts=((),)):
    """``dst[...] = src`` for arrays of one shape (any strides), samples split over threads.

    ``parts``: copy only ``dst[:, *index] = src[:, *index]`` for each index (one pass a part).
    """
    def copy(rows):
        for index in parts:
            np.copyto(dst[(rows, *index)], src[(rows, *index)])
    parallel.run(copy, dst.shape[0], work=dst.size)


def add_into(dst, src):
    """``dst += src`` for arrays of one shape (any strides), samples split over threads."""
    def add(part):
        d = dst[part]
        np.add(d, src[part], out=d)
    parallel.run(add, dst.shape[0], work=dst.size)


def _rows(a):
    """``a`` as a 2-D array (-1, last axis), a view; None when that would need a copy."""
    if a.ndim == 0:
        return None
    try:
        return np.reshape(a, (-1, a.shape[-1]), copy=False)
    except (ValueError, TypeError):   # TypeError: NumPy < 2.1 has no copy=
        return None


def add_bias(y, b):
    """``y += b`` in place; ``y`` (..., C), ``b`` (C,)."""
    rows = _rows(y)
    if rows is None:
        y += b
        return

    def add(part):
        r = rows[part]
        np.add(r, b, out=r)
    parallel.run(add, rows.shape[0], work=rows.size)


def _flat(a):
    """A 1-D view of a C-contiguous array, or None for other layouts."""
    return a.reshape(-1) if a.flags.c_contiguous else None


def relu_inplace(y):
    """``y = max(y, 0)`` in place (NaN stays NaN, as ``np.maximum`` keeps it)."""
    flat = _flat(y)
    if flat is None:
        np.maximum(y, 0, out=y)
        return

    def clamp(part):
        piece = flat[part]
        np.maximum(piece, 0, out=piece)
    parallel.run(clamp, flat.size)


def relu_backward(dy, x):
    """``dy * (x > 0)`` as a new array of dy's shape and dtype."""
    dy_flat, x_flat = _flat(dy), _flat(x)
    if dy_flat is None or x_flat is None or dy.shape != x.shape:
        return dy * (x > 0)
    dx = np.empty(dy.shape, dtype=dy.dtype)
    dx_flat = dx.reshape(-1)

    def mask(part):
        np.multiply(dy_flat[part], x_flat[part] > 0, out=dx_flat[part])
    parallel.run(mask, dx_flat.size)
    return dx
