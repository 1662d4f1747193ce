"""Fully connected layer: ``y = x @ w + b``, forward and backward side by side.

Shapes: x (N, in), w (in, out) as Keras stores a Dense kernel, b (out,) or None, y (N, out).
Higher-rank inputs are the layer's business (it folds the leading axes into N). Both ops check
these shapes against each other on every backend and name the op in the error.

On a kernel backend (``backend.current().runs_kernels``) both ops run the float32 kernels of
``kernels/gemm.cu``: a tiled SGEMM per product (the bias added in its epilogue) and a
column-sum kernel for the bias gradient; the functions named ``_dense_*_kernel`` launch them.

Under ``gn.config.set_float32_matmul_precision("high")`` the three float32 products run as
TF32 instead (``tensorcore.matmul``: kernels/tc_gemm.cu, or the NumPy reference with the
operands rounded to TF32); the bias gradient stays a float32 column sum.
"""
import numpy as np

from .. import backend, config
from . import launch, tensorcore

_GEMM_BLOCK = (256, 1, 1)     # gemm.cu's THREADS
_GEMM_TILE = (64, 64)         # gemm.cu's BLOCK_M (rows of C), BLOCK_N (columns of C)
_BIAS_BLOCK = (32, 8, 1)      # gemm.cu's BIAS_COLS x BIAS_ROWS


def _shape_text(shape):
    return f"({', '.join(str(s) for s in shape)}{',' if len(shape) == 1 else ''})"


def _expect(op, name, array, expected, given):
    """A ValueError naming ``op`` unless ``array`` has shape ``expected`` (which ``given`` implies)."""
    if tuple(array.shape) != tuple(expected):
        raise ValueError(f"{op}: {name} has shape {_shape_text(array.shape)}; expected "
                         f"{_shape_text(expected)} for {given}.")


def _check_shapes(op, x, w, b=None, dy=None):
    """x (N, in), w (in, out), b (out,), dy (N, out) must agree: checked before either path runs."""
    if w.ndim != 2:
        raise ValueError(f"{op}: w has shape {_shape_text(w.shape)}; expected a 2-D kernel (in, out).")
    fan_in, units = w.shape
    w_text = f"w of shape {_shape_text(w.shape)}"
    _expect(op, "x", x, (x.shape[0] if x.ndim == 2 else "batch", fan_in), w_text)
    if b is not None:
        _expect(op, "b", b, (units,), w_text)
    if dy is not None:
        _expect(op, "dy", dy, (x.shape[0], units), f"x of shape {_shape_text(x.shape)} and {w_text}")


def dense_forward(x, w, b=None):
    """``x @ w (+ b)``: x (N, in), w (in, out), b (out,) or None -> y (N, out), in x's dtype."""
    _check_shapes("dense_forward", x, w, b)
    if config.tf32_enabled(x, w) and tensorcore.usable():
        return tensorcore.matmul(x, w, b, op="dense_forward")
    if backend.current().runs_kernels:
        return _dense_forward_kernel(x, w, b)
    y = x @ w
    if b is not None:
        y += b
    return y


def dense_backward(dy, x, w, need_dx=True, need_db=True, need_dw=True):
    """Gradients of :func:`dense_forward` from dy (N, out) and the saved input x (N, in).

    Returns ``(dx, dw, db)``: dx (N, in), dw (in, out), db (out,), each None when its ``need_*``
    is False (a first layer needs no input gradient, a frozen layer no weight gradients).
    Every gradient is written, not accumulated.
    """
    _check_shapes("dense_backward", x, w, dy=dy)
    if config.tf32_enabled(dy, x, w) and tensorcore.usable():   # else FFMA, as PyTorch on pre-sm_80
        return _dense_backward_tf32(dy, x, w, need_dx, need_db, need_dw)
    if backend.current().runs_kernels:
        return _dense_backward_kernel(dy, x, w, need_dx, need_db, need_dw)
    dx = dy @ w.T if need_dx else None
    dw = x.T @ dy if need_dw else None
    # A ones-vector product reduces over the batch with the same BLAS call a GPU would use.
    db = np.ones(dy.shape[0], dtype=dy.dtype) @ dy if need_db else None
    return dx, dw, db


def _dense_backward_tf32(dy, x, w, need_dx, need_db, need_dw):
    """dense_backward's products on TF32 tensor cores (precision "high"); db as in "highest"."""
    dx = tensorcore.matmul(dy, w, trans_b=True, op="dense_backward") if need_dx else None
    dw = tensorcore.matmul(x, dy, trans_a=True, op="dense_backward") if need_dw else None
    db = None
    if need_db and backend.current().runs_kernels:
        db = _dense_backward_kernel(dy, x, w, False, True, False)[2]
    elif need_db:
        db = np.ones(dy.shape[0], dtype=dy.dtype) @ dy
    return dx, dw, db


def _gemm(kernel, inputs, out, m, k, n, *flags):
    """Launch the gemm.cu product ``kernel(*inputs, out, m, k, n, *flags)`` writing ``out`` (m, n).

    The longer side of ``out`` goes on grid axis x, so no size of a layer meets the 65,535-block
    limit of axis y: with ``m * n < 2**31`` the shorter side has at most 725 tiles."""
    for what, size in (("rows x depth", m * k), ("depth x columns", k * n), ("rows x columns", m * n)):
        launch.i32(size, f"{kernel}: {what}")      # the kernel indexes with 32-bit ints
    row_tiles, col_tiles = launch.grid_for((m, n), _GEMM_TILE)
    grid = (row_tiles, col_tiles) if m >= n else (col_tiles, row_tiles)   # gemm.cu's rule
    launch.run("gemm.cu", kernel, grid, _GEMM_BLOCK, *inputs, out, m, k, n, *flags)


def _dense_forward_kernel(x, w, b):
    x, w = launch.inputs("dense_forward", x, w)
    (m, k), n = x.shape, w.shape[1]
    # The kernel reads b only when has_bias is 1; a pointer must still be passed.
    bias, = launch.inputs("dense_forward", b) if b is not None else (launch.zeros((1,)),)
    y = launch.empty((m, n))
    _gemm("dense_forward", (x, w, bias), y, m, k, n, int(b is not None))
    return y


def _dense_backward_kernel(dy, x, w, need_dx, need_db, need_dw):
    dy, x, w = launch.inputs("dense_backward", dy, x, w)
    (batch, out_features), in_features = dy.shape, w.shape[0]
    dx = dw = db = None
    if need_dx:
        dx = launch.empty((batch, in_features))
        _gemm("dense_backward_input", (dy, w), dx, batch, out_features, in_features)
    if need_dw:
        dw = launch.empty((in_features, out_features))
        _gemm("dense_backward_filter", (x, dy), dw, in_features, batch, out_features)
    if need_db:
        db = launch.empty((out_features,))
        grid = launch.grid_for((out_features,), _BIAS_BLOCK[:1])
        launch.run("gemm.cu", "dense_backward_bias", grid, _BIAS_BLOCK, dy, db, batch, out_features)
    return dx, dw, db
