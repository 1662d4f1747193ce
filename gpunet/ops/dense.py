"""Fully connected layer: ``y = x @ w + b``, forward and backward side by side.

Shapes: x (N, in), w (in, out) as Keras stores a Dense kernel, b (out,) or None, y (N, out).
Higher-rank inputs are the layer's business (it folds the leading axes into N).

On a kernel backend (``backend.current().runs_kernels``) both ops run the float32 kernels of
``kernels/gemm.cu``: a tiled SGEMM per product (the bias added in its epilogue) and a
column-sum kernel for the bias gradient; the functions named ``_dense_*_kernel`` launch them.
"""
import numpy as np

from .. import backend
from . import launch

_GEMM_BLOCK = (256, 1, 1)     # gemm.cu's THREADS
_GEMM_TILE = (64, 64)         # gemm.cu's BLOCK_N (columns of C), BLOCK_M (rows of C)
_BIAS_BLOCK = (32, 8, 1)      # gemm.cu's BIAS_COLS x BIAS_ROWS


def dense_forward(x, w, b=None):
    """``x @ w (+ b)``: x (N, in), w (in, out), b (out,) or None -> y (N, out), in x's dtype."""
    if backend.current().runs_kernels:
        return _dense_forward_kernel(x, w, b)
    y = x @ w
    if b is not None:
        y += b
    return y


def dense_backward(dy, x, w, need_dx=True, need_db=True):
    """Gradients of :func:`dense_forward` from dy (N, out) and the saved input x (N, in).

    Returns ``(dx, dw, db)``: dx (N, in) or None when ``need_dx`` is False (a first layer
    needs no input gradient), dw (in, out), db (out,) or None when ``need_db`` is False.
    Every gradient is written, not accumulated.
    """
    if backend.current().runs_kernels:
        return _dense_backward_kernel(dy, x, w, need_dx, need_db)
    dx = dy @ w.T if need_dx else None
    dw = x.T @ dy
    # A ones-vector product reduces over the batch with the same BLAS call a GPU would use.
    db = np.ones(dy.shape[0], dtype=dy.dtype) @ dy if need_db else None
    return dx, dw, db


def _gemm(kernel, inputs, out, m, k, n, *flags):
    """Launch the gemm.cu product ``kernel(*inputs, out, m, k, n, *flags)`` writing ``out`` (m, n)."""
    for what, size in (("rows x depth", m * k), ("depth x columns", k * n), ("rows x columns", m * n)):
        launch.i32(size, f"{kernel}: {what}")      # the kernel indexes with 32-bit ints
    grid = launch.grid_for((n, m), _GEMM_TILE)
    launch.run("gemm.cu", kernel, grid, _GEMM_BLOCK, *inputs, out, m, k, n, *flags)


def _dense_forward_kernel(x, w, b):
    x, w = launch.inputs("dense_forward", x, w)
    (m, k), n = x.shape, w.shape[1]
    # The kernel reads b only when has_bias is 1; a pointer must still be passed.
    bias, = launch.inputs("dense_forward", b) if b is not None else (launch.zeros((1,)),)
    y = launch.empty((m, n))
    _gemm("dense_forward", (x, w, bias), y, m, k, n, int(b is not None))
    return y


def _dense_backward_kernel(dy, x, w, need_dx, need_db):
    dy, x, w = launch.inputs("dense_backward", dy, x, w)
    (batch, out_features), in_features = dy.shape, w.shape[0]
    dx = None
    if need_dx:
        dx = launch.empty((batch, in_features))
        _gemm("dense_backward_input", (dy, w), dx, batch, out_features, in_features)
    dw = launch.empty((in_features, out_features))
    _gemm("dense_backward_filter", (x, dy), dw, in_features, batch, out_features)
    db = None
    if need_db:
        db = launch.empty((out_features,))
        grid = launch.grid_for((out_features,), _BIAS_BLOCK[:1])
        launch.run("gemm.cu", "dense_backward_bias", grid, _BIAS_BLOCK, dy, db, batch, out_features)
    return dx, dw, db
