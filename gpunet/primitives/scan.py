"""Cumulative sums and products along one axis (kernels/scan.cu), NumPy reference beside.

    y = scan.cumulative("sum", x, axis, reverse=False)    x (..., L, ...) -> y of x's shape and dtype
    dx = scan.cumsum_backward(dy, axis)                    reversed cumulative sum of dy
    dx = scan.cumprod_backward(dy, x, y, axis)             reversed cumsum of dy * y, over x

The scan is sequential along the axis, in float32 (16-bit inputs widened, each output rounded once
to the input's dtype), on every backend: NumPy's ``add.accumulate`` / ``multiply.accumulate`` on
float32 run in the same order as the kernel's thread, so the two agree to float32 rounding of the
same operations. ``cumprod_backward`` divides by ``x``: exact for non-zero inputs only (a zero
input gives inf / NaN gradients, as the division does in JAX's own formula for products).
"""
import numpy as np

from .. import backend
from . import elementwise_nd as E
from . import launch, precision

__all__ = ["cumulative", "cumsum_backward", "cumprod_backward"]

_FILE = "scan.cu"
_NUMPY = {"sum": np.add, "prod": np.multiply}


def _lines(shape, axis):
    """(outer, length, inner) of ``shape`` around ``axis``."""
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return outer, int(shape[axis]), inner


def cumulative(op, x, axis, reverse=False):
    """Cumulative ``op`` ("sum" or "prod") of ``x`` along ``axis`` (a non-negative int), from the
    end of the axis when ``reverse``; same shape and dtype as ``x`` (integers: float32 on kernels)."""
    if backend.current().runs_kernels:
        x, = E._kernel_inputs("cumulative_" + op, [x], precision.FLOATS)
        out = launch.empty(x.shape, x.dtype)
        outer, length, inner = _lines(x.shape, axis)
        lines = launch.i32(outer * inner, f"cumulative_{op}: lines")
        launch.i32(x.size, f"cumulative_{op}: elements")
        if lines and length:
            launch.run(_FILE, "cumulative_" + op, launch.blocks_for(lines, cap=2048), launch.THREADS, x, out, lines,
                       length, inner, int(bool(reverse)))
        return out
    wide = precision.widen(x)
    if reverse:
        wide = np.flip(wide, axis)
    out = _NUMPY[op].accumulate(wide, axis=axis, dtype=wide.dtype)
    if reverse:
        out = np.flip(out, axis)
    out = np.ascontiguousarray(out)
    return precision.narrow(out, x.dtype) if precision.is_half(x.dtype) else out


def cumsum_backward(dy, axis):
    """The gradient of a cumulative sum: each input feeds every output at or after it."""
    return cumulative("sum", dy, axis, reverse=True)


def cumprod_backward(dy, x, y, axis):
    """The gradient of a cumulative product for non-zero ``x``: d y_k / d x_j = y_k / x_j (k >= j),
    so dx_j = (sum over k >= j of dy_k * y_k) / x_j."""
    return E.binary("divide", cumulative("sum", E.binary("multiply", dy, y), axis, reverse=True), x)
