"""Broadcasting elementwise math, strided copies and reductions: the array level of ``gn.ops``.

Every function takes and returns backend arrays. The NumPy reference is NumPy itself (its
broadcasting, type promotion and NaN rules are the contract); on a kernel backend each runs a
float32 kernel of ``kernels/elementwise_nd.cu``, one template instantiated per op:

* ``binary(op, a, b)`` / ``where(cond, a, b)``: the output index is split into coordinates and
  each input read at ``sum(coord * stride)``, a broadcast axis having stride 0 (``meta`` below).
* ``unary(op, x)``: one element per thread. NumPy has no erf: ``erf_reference`` is the reference
  (float64 series / continued fraction); the kernel's CUDA ``erff`` is within 2 ulp of float32
  (cudasim's g++ ``erff`` within 1), so the two agree to a few float32 ulp.
* ``reduce(op, x, axis, keepdims)`` / ``arg_reduce``: the reduced axes are moved last by a strided
  copy, then one warp reduces each row.

Integer and bool inputs run the float32 kernels (exact up to 2**24); comparisons return bool and
arg reductions int32 on every backend. Gradients are composed from these in ``gpunet/ops``.

Dtypes: float32, bfloat16 and float16 on every backend (float64 on numpy); the float inputs of one
call share one dtype, which the result has (``where``'s condition is read as float32). 16-bit
values are computed in float32 and rounded once where stored: one rounding per op, a reduction's
float32 sum (or mean) included; copies (transpose, broadcast_to) and max / min are exact. The
NumPy reference widens 16-bit inputs (``precision.widen``), computes and narrows once.
"""
import math

import numpy as np

from .. import backend
from . import launch, precision

_FILE = "elementwise_nd.cu"
_MAX_BLOCKS = 2048
_ROWS_PER_BLOCK = 8      # row kernels: one warp per row, 256-thread blocks
MAX_DIMS = 8

COMPARISONS = ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal", "logical_and", "logical_or",
               "logical_xor")   # bool results
_NUMPY_BINARY = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide,
                 "power": np.power, "maximum": np.maximum, "minimum": np.minimum, "equal": np.equal,
                 "not_equal": np.not_equal, "less": np.less, "less_equal": np.less_equal,
                 "greater": np.greater, "greater_equal": np.greater_equal, "logical_and": np.logical_and,
                 "logical_or": np.logical_or, "logical_xor": np.logical_xor}
_NUMPY_UNARY = {"negative": np.negative, "square": np.square, "sqrt": np.sqrt, "exp": np.exp, "log": np.log,
                "log1p": np.log1p, "abs": np.abs, "sign": np.sign, "erf": lambda x: erf_reference(x),
                "rsqrt": lambda x: 1 / np.sqrt(x), "logical_not": np.logical_not}
_NUMPY_REDUCE = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}


def binary(op, a, b):
    """``op(a, b)`` with NumPy broadcasting; ``op`` is a key of ``_NUMPY_BINARY``."""
    if backend.current().runs_kernels:
        out = _broadcast_kernel("broadcast_" + op, [a, b])
        return out.astype(bool) if op in COMPARISONS else out
    out = np.asarray(_NUMPY_BINARY[op](precision.widen(a), precision.widen(b)))
    return out if op in COMPARISONS else _rounded(out, np.result_type(a, b))


def where(cond, a, b):
    """``a`` where ``cond`` is true, else ``b``; the three broadcast together."""
    if backend.current().runs_kernels:
        return _broadcast_kernel("broadcast_where", [a, b], cond)
    return np.where(cond, a, b)


def unary(op, x):
    """``op(x)`` elementwise; ``op`` is a key of ``_NUMPY_UNARY``."""
    if backend.current().runs_kernels:
        x, = _kernel_inputs("unary_" + op, [x], precision.FLOATS)
        out = launch.empty(x.shape, x.dtype)
        launch.run(_FILE, "unary_" + op, launch.blocks_for(x.size, cap=_MAX_BLOCKS), launch.THREADS, x, out, x.size)
        return out.astype(bool) if op == "logical_not" else out
    out = np.asarray(_NUMPY_UNARY[op](precision.widen(x)))
    return out if op == "logical_not" else _rounded(out, x.dtype)


def _erf_series(terms):
    """Maclaurin coefficients of erf(x) / x as a polynomial in x**2, highest power first:
    2/sqrt(pi) * (-1)**k / (k! (2k + 1))."""
    c, out = 2.0 / math.sqrt(math.pi), []
    for k in range(terms):
        out.append(c / (2 * k + 1))
        c *= -1.0 / (k + 1)
    return out[::-1]


# (series terms for |x| < 2, continued-fraction terms for 2 <= |x| < 6): the float64 pair is
# accurate to ~1e-15 (gradient checks), the other to ~1e-9 relative, well inside float32's 6e-8.
_ERF_PLAN = {True: (_erf_series(30), 60), False: (_erf_series(22), 30)}


def erf_reference(x):
    """erf of a float array, in its dtype: computed in float64, the Maclaurin series below |x| = 2
    and ``1 - erfc`` from erfc's continued fraction above (1 beyond 6, where erfc < 2e-17)."""
    series, fraction_terms = _ERF_PLAN[x.dtype == np.float64]
    x64 = np.asarray(x, np.float64)
    a = np.abs(x64)
    out = np.sign(x64)            # +-1 beyond 6 (and NaN stays NaN)
    small = a < 2.0
    xs = x64[small]
    t, acc = xs * xs, np.full(xs.shape, series[0])
    for c in series[1:]:
        acc *= t
        acc += c
    out[small] = acc * xs
    middle = (a >= 2.0) & (a < 6.0)
    am = a[middle]
    f = am.copy()                 # erfc(a) = exp(-a^2) / sqrt(pi) / (a + (1/2) / (a + 1 / (a + (3/2) / ...)))
    for k in range(fraction_terms, 0, -1):
        f = am + (k / 2) / f
    out[middle] = np.copysign(1.0 - np.exp(-am * am) / math.sqrt(math.pi) / f, x64[middle])
    return out.astype(x.dtype, copy=False)


def _rounded(out, dtype):
    """The reference's one rounding: ``out`` (computed in float32) narrowed to a 16-bit ``dtype``;
    any other result as NumPy made it (its promotion rules are the contract)."""
    return precision.narrow(out, dtype) if precision.is_half(dtype) else out


def normalize_axis(op, axis, ndim):
    """``axis`` (None, an int or a sequence) as a sorted tuple of non-negative axes, checked."""
    axes = tuple(range(ndim)) if axis is None else (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= int(a) < max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for an input of rank {ndim}.")
        out.append(int(a) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: axis {axis} names an axis twice.")
    return tuple(sorted(out)) if ndim else ()


def reduce(op, x, axis=None, keepdims=False):
    """``sum`` / ``mean`` / ``max`` / ``min`` of ``x`` over ``axis`` (None: all), as NumPy."""
    axes = normalize_axis(op, axis, x.ndim)
    if backend.current().runs_kernels:
        rows_view, out_shape = _rows_last(op, x, axes, keepdims)
        kernel = "reduce_sum_rows" if op in ("sum", "mean") else f"reduce_{op}_rows"
        cols = rows_view.shape[1]
        if cols == 0 and op in ("max", "min"):
            raise ValueError(f"{op}: cannot reduce an empty axis (input shape {tuple(x.shape)}).")
        scale = 1.0 / cols if op == "mean" and cols else 1.0
        out = launch.empty((rows_view.shape[0],), rows_view.dtype)
        _row_kernel(kernel, rows_view, out, launch.f32(scale))
        return out.reshape(out_shape)
    return _rounded(np.asarray(_NUMPY_REDUCE[op](precision.widen(x), axis=axes, keepdims=keepdims)), x.dtype)


def arg_reduce(op, x, axis=None, keepdims=False):
    """``argmax`` / ``argmin`` (int32) over one ``axis``, or over the flattened input when None."""
    if axis is None:
        x, axis = x.reshape(-1), 0
    axes = normalize_axis(op, axis, x.ndim)
    if backend.current().runs_kernels:
        rows_view, out_shape = _rows_last(op, x, axes, keepdims)
        if rows_view.shape[1] == 0:
            raise ValueError(f"{op}: cannot reduce an empty axis (input shape {tuple(x.shape)}).")
        out = launch.empty((rows_view.shape[0],), dtype=np.int32)
        _row_kernel(op + "_rows", rows_view, out)
        return out.reshape(out_shape)
    found = (np.argmax if op == "argmax" else np.argmin)(x, axis=axes[0], keepdims=keepdims)
    return np.asarray(found, dtype=np.int32)


def transpose(x, axes):
    """``x`` with its axes permuted (a C-contiguous copy)."""
    if backend.current().runs_kernels:
        x, = _kernel_inputs("transpose", [x], precision.FLOATS)
        strides = _contiguous_strides(x.shape)
        shape = tuple(x.shape[a] for a in axes)
        return _strided_copy(x, shape, [strides[a] for a in axes])
    return np.ascontiguousarray(np.transpose(x, axes))


def broadcast_to(x, shape):
    """``x`` repeated along broadcast axes to ``shape`` (a C-contiguous copy)."""
    shape = tuple(int(s) for s in shape)
    if backend.current().runs_kernels:
        x, = _kernel_inputs("broadcast_to", [x], precision.FLOATS)
        return _strided_copy(x, shape, _broadcast_strides("broadcast_to", x.shape, shape))
    return np.ascontiguousarray(np.broadcast_to(x, shape))


def sum_to_shape(dy, shape):
    """Sum ``dy`` over the axes that broadcasting added or stretched to reach ``shape``: the
    gradient of a broadcast input. ``dy`` unchanged when it already has ``shape``."""
    shape = tuple(shape)
    if tuple(dy.shape) == shape:
        return dy
    lead = dy.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and dy.shape[lead + i] != 1)
    return reduce("sum", dy, axes, keepdims=False).reshape(shape)


# -- kernel plumbing ---------------------------------------------------------------------------------

_META = {}   # (out shape, input strides) -> the meta array on the backend, reused by later launches


def _kernel_inputs(op, arrays, dtype=np.float32):
    """C-contiguous arrays on the backend of ``dtype`` (float32, or one shared dtype of a tuple
    such as ``precision.FLOATS``); ints and bools converted to float32, other floats refused."""
    arrays = [a.astype(np.float32) if a.dtype.kind in "biu" else a for a in arrays]
    # launch.inputs makes 0-d arrays 1-d (ascontiguousarray); keep each array's own shape
    return [c.reshape(a.shape) for a, c in zip(arrays, launch.inputs(op, *arrays, dtype=dtype))]


def _contiguous_strides(shape):
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= int(size)
    return strides[::-1]


def _broadcast_strides(op, in_shape, out_shape):
    """Element strides of a contiguous ``in_shape`` array read as ``out_shape`` (0 on broadcast axes)."""
    lead = len(out_shape) - len(in_shape)
    if lead < 0:
        raise ValueError(f"{op}: cannot broadcast shape {tuple(in_shape)} to {tuple(out_shape)}.")
    own = _contiguous_strides(in_shape)
    strides = [0] * lead
    for size, want, stride in zip(in_shape, out_shape[lead:], own):
        if size != want and size != 1:
            raise ValueError(f"{op}: cannot broadcast shape {tuple(in_shape)} to {tuple(out_shape)}.")
        strides.append(stride if size == want and size != 1 else 0)
    return strides


def _merged(shape, stride_sets):
    """Drop size-1 axes and merge neighbours that every input walks contiguously: fewer divisions."""
    keep = [d for d, s in enumerate(shape) if s != 1]
    shape = [shape[d] for d in keep]
    stride_sets = [[strides[d] for d in keep] for strides in stride_sets]
    d = len(shape) - 1
    while d > 0:
        if all(s[d - 1] == s[d] * shape[d] for s in stride_sets):
            shape[d - 1] *= shape[d]
            del shape[d]
            for s in stride_sets:
                del s[d - 1]
        d -= 1
    return shape or [1], [s or [0] for s in stride_sets]


def _meta(op, shape, stride_sets):
    shape, stride_sets = _merged(list(shape), [list(s) for s in stride_sets])
    if len(shape) > MAX_DIMS:
        raise ValueError(f"{op}: the kernels take at most {MAX_DIMS} axes after merging; received {len(shape)}.")
    key = (backend.current().name, tuple(shape), tuple(tuple(s) for s in stride_sets))
    meta = _META.get(key)
    if meta is None:
        values = np.array([*shape, *[v for s in stride_sets for v in s]], dtype=np.int32)
        meta = _META[key] = backend.current().asarray(values, dtype=np.int32)
    return meta, len(shape)


def _broadcast_kernel(kernel, arrays, cond=None):
    """``kernel(a, b, out, ...)``, or with ``cond`` (read as float32) ``kernel(cond, a, b, out, ...)``."""
    arrays = _kernel_inputs(kernel, arrays, precision.FLOATS)
    if cond is not None:
        arrays = _kernel_inputs(kernel, [cond]) + arrays
    try:
        shape = tuple(int(s) for s in np.broadcast_shapes(*[tuple(a.shape) for a in arrays]))
    except ValueError:
        raise ValueError(f"{kernel}: shapes {', '.join(str(tuple(a.shape)) for a in arrays)} do not broadcast "
                         "together.") from None
    out = launch.empty(shape, arrays[-1].dtype)
    n = launch.i32(out.size, f"{kernel}: elements")
    if n:
        meta, ndim = _meta(kernel, shape, [_broadcast_strides(kernel, a.shape, shape) for a in arrays])
        launch.run(_FILE, kernel, launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS, *arrays, out, n, ndim, meta)
    return out


def _strided_copy(x, shape, strides):
    out = launch.empty(shape, x.dtype)
    n = launch.i32(out.size, "strided_copy: elements")
    if n:
        meta, ndim = _meta("strided_copy", shape, [strides])
        launch.run(_FILE, "strided_copy", launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS, x, out, n, ndim, meta,
                   0)
    return out


def _rows_last(op, x, axes, keepdims):
    """``x`` as a contiguous (rows, cols) array with ``axes`` last, and the reduction's output shape."""
    x, = _kernel_inputs(op, [x], precision.FLOATS)
    kept = [a for a in range(x.ndim) if a not in axes]
    if axes != tuple(range(x.ndim - len(axes), x.ndim)):
        x = transpose(x, kept + list(axes))
    rows = int(np.prod([x.shape[i] for i in range(len(kept))])) if kept else 1
    cols = int(np.prod(x.shape[len(kept):])) if axes else 1
    out_shape = tuple(1 if a in axes else s for a, s in enumerate(_original_shape(x, kept, axes))) if keepdims \
        else tuple(x.shape[:len(kept)])
    return x.reshape(rows, cols), out_shape


def _original_shape(x, kept, axes):
    shape = [0] * x.ndim
    for position, a in enumerate(kept + list(axes)):
        shape[a] = x.shape[position]
    return shape


def _row_kernel(kernel, rows_view, out, *tail):
    rows, cols = rows_view.shape
    launch.i32(rows_view.size, f"{kernel}: elements")
    launch.run(_FILE, kernel, launch.blocks_for(rows, _ROWS_PER_BLOCK, cap=_MAX_BLOCKS), launch.THREADS,
               rows_view, out, rows, cols, *tail)
