"""More of keras.ops's math: rsqrt, the logical ops, moments, norm, linspace.

``rsqrt`` and the logical ops are functors of ``kernels/elementwise_nd.cu`` (``unary_rsqrt``,
``broadcast_logical_and`` ...); ``moments`` and ``norm`` are compositions of the reductions and
elementwise ops in ``math.py`` (their kernels, and their gradients, recorded op by op).
"""
import builtins

import numpy as np

from ..autodiff import as_tensor, operands, record
from ..primitives import elementwise_nd as E
from ..primitives import precision
from .array import squeeze
from .core import cast, convert_to_tensor
from .math import abs as _abs, max as _max, mean, min as _min, multiply, not_equal, power, sqrt, square, subtract
from .math import sum as _sum, clip

__all__ = ["rsqrt", "logical_and", "logical_or", "logical_xor", "logical_not", "moments", "norm", "linspace"]


def rsqrt(x):
    """``1 / sqrt(x)`` elementwise (integers give float32). Kernel: CUDA's ``rsqrtf`` (within 2
    float32 ulp). The gradient is ``-0.5 * y**3``."""
    t = as_tensor(x, "rsqrt")
    if not precision.is_float(t.dtype):
        t = as_tensor(t, "rsqrt", "float32")

    def backward(dy, needs, y):
        cube = E.binary("multiply", E.unary("square", y), y)
        return (E.binary("multiply", dy, E.binary("multiply", cube, y.dtype.type(-0.5))),)
    return record("rsqrt", E.unary("rsqrt", t.data), (t,), backward, save_output=True)


def _logical(op):
    def logical(x1, x2):
        a, b = operands(op, x1, x2)
        return record(op, E.binary(op, a.data, b.data), (a, b), None)
    logical.__name__ = op
    logical.__doc__ = (f"Elementwise ``{op.replace('_', ' ')}`` of ``x1`` and ``x2`` read as bools (non-zero, NaN "
                       "included, is true), broadcast; a bool tensor, no gradient.")
    return logical


logical_and, logical_or, logical_xor = map(_logical, ("logical_and", "logical_or", "logical_xor"))


def logical_not(x):
    """Elementwise ``not x`` (true where x is 0 or False); a bool tensor, no gradient."""
    t = as_tensor(x, "logical_not")
    return record("logical_not", E.unary("logical_not", t.data), (t,), None)


def moments(x, axes, keepdims=False, synchronized=False):
    """``(mean, variance)`` of ``x`` over ``axes`` (an int or a sequence), the variance divided by
    the count. 16-bit inputs are computed in float32 and the results clipped to float16's range
    and cast back, as Keras does. ``synchronized=True`` (a cross-device reduction, TensorFlow only
    in Keras) is refused."""
    if synchronized:
        raise NotImplementedError("moments: synchronized=True is not supported (Keras has it on TensorFlow only); "
                                  "gn.layers.BatchNormalization(synchronized=True) syncs statistics across devices.")
    t = as_tensor(x, "moments")
    dtype = t.dtype
    axes = E.normalize_axis("moments", axes, t.ndim)
    if precision.is_half(dtype) or not precision.is_float(dtype):
        t = cast(t, "float32")
    centre = mean(t, axis=axes, keepdims=True)
    variance = mean(square(subtract(t, centre)), axis=axes, keepdims=True)
    if not keepdims:
        centre, variance = squeeze(centre, axis=axes), squeeze(variance, axis=axes)
    if precision.is_half(dtype):
        top = float(np.finfo(np.float16).max)
        centre, variance = (cast(clip(v, -top, top), dtype) for v in (centre, variance))
    return centre, variance


# -- norm -------------------------------------------------------------------------------------------

_VECTOR_ORDS = "None, 'fro' (2-D only), 'nuc' (unsupported), inf, -inf, 0 or a number"


def _vector_norm(t, ord, axis):
    if ord is None or ord == 2:
        return sqrt(_sum(square(t), axis=axis, keepdims=True))
    if ord == np.inf:
        return _max(_abs(t), axis=axis, keepdims=True)
    if ord == -np.inf:
        return _min(_abs(t), axis=axis, keepdims=True)
    if ord == 0:
        return cast(_sum(cast(not_equal(t, 0.0), t.dtype), axis=axis, keepdims=True), t.dtype)
    if ord == 1:
        return _sum(_abs(t), axis=axis, keepdims=True)
    return power(_sum(power(_abs(t), float(ord)), axis=axis, keepdims=True), 1.0 / float(ord))


def _matrix_norm(t, ord, axes):
    rows, cols = axes
    if ord is None or ord == "fro":
        return sqrt(_sum(square(t), axis=axes, keepdims=True))
    pick = {1: (_max, rows, cols), -1: (_min, rows, cols), np.inf: (_max, cols, rows), -np.inf: (_min, cols, rows)}
    if ord in ("nuc", 2, -2):
        raise NotImplementedError(f"norm: ord={ord!r} of a matrix needs singular values, which gpunet has no kernel "
                                  "for; supported: None, 'fro', 1, -1, inf, -inf.")
    if isinstance(ord, str) or ord not in pick:
        raise ValueError(f"norm: invalid ord {ord!r} for a matrix norm; supported: None, 'fro', 1, -1, inf, -inf.")
    extreme, summed, over = pick[ord]
    return extreme(_sum(_abs(t), axis=summed, keepdims=True), axis=over, keepdims=True)


def norm(x, ord=None, axis=None, keepdims=False):
    """The vector norm of ``x`` over one ``axis``, or the matrix norm over two, as
    ``np.linalg.norm``: ``axis=None`` with ``ord=None`` is the 2-norm of the flattened tensor, with
    another ``ord`` the vector (1-D) or matrix (2-D) norm. Vector ords: None / 2, 1, inf, -inf, 0
    and other numbers; matrix: None / "fro", 1, -1, inf, -inf ("nuc", 2, -2 are refused). Integer
    inputs give float32. Shape: ``x``'s without ``axis`` (kept as 1 with ``keepdims``)."""
    t = as_tensor(x, "norm")
    if not precision.is_float(t.dtype):
        t = cast(t, "float32")
    if axis is None:
        if ord is not None and t.ndim not in (1, 2):
            raise ValueError(f"norm: ord={ord!r} with axis=None needs a 1-D or 2-D input; received shape {t.shape}.")
        axes = tuple(range(t.ndim))
    else:
        axes = tuple(int(a) % builtins.max(t.ndim, 1) for a in ((axis,) if isinstance(axis, (int, np.integer))
                                                                  else axis))
        E.normalize_axis("norm", axes, t.ndim)
    if ord is None and axis is None:
        out = sqrt(_sum(square(t), axis=axes, keepdims=True))
    elif len(axes) == 1:
        if isinstance(ord, str):
            raise ValueError(f"norm: invalid ord {ord!r} for a vector norm; supported: {_VECTOR_ORDS}.")
        out = _vector_norm(t, ord, axes[0])
    elif len(axes) == 2:
        out = _matrix_norm(t, ord, axes)
    else:
        raise ValueError(f"norm: axis must name one axis (vector norm) or two (matrix norm); received {axis!r}.")
    return out if keepdims else squeeze(out, axis=axes)


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """``num`` evenly spaced values from ``start`` to ``stop`` (included when ``endpoint``), as
    ``np.linspace``; ``start`` / ``stop`` may be arrays (the samples go along ``axis``). float32
    unless ``dtype``; with ``retstep``, ``(samples, step)``. Made on the host (like ``arange``:
    constants, not differentiated) and copied to the backend."""
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 0:
        raise ValueError(f"linspace: num must be a non-negative int; received {num!r}.")
    lo = np.asarray(start.numpy() if hasattr(start, "numpy") else start, np.float64)
    hi = np.asarray(stop.numpy() if hasattr(stop, "numpy") else stop, np.float64)
    values, step = np.linspace(lo, hi, int(num), endpoint=endpoint, retstep=True, axis=axis)
    dtype = precision.dtype_of(dtype or "float32")
    host = values.astype(np.float32) if precision.is_half(dtype) else values.astype(dtype)   # 16-bit: cast kernel
    out = convert_to_tensor(host, dtype=dtype)
    return (out, step) if retstep else out
