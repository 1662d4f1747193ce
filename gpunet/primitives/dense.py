"""Fully connected layer: ``y = x @ w + b``, forward and backward side by side.

Shapes: x (N, in), w (in, out) as Keras stores a Dense kernel, b (out,) or None, y (N, out).
Higher-rank inputs are the layer's business (it folds the leading axes into N). Both ops check
these shapes against each other on every backend and name the op in the error.

On a kernel backend (``backend.current().runs_kernels``) both ops run the kernels of
``kernels/gemm.cu``: a tiled SGEMM per product (the bias and an activation added in its
epilogue, an activation's gradient folded into the input gradient's), the bias gradient a row
of the filter gradient's product (a column-sum kernel when only db is wanted); the functions
named ``_dense_*_kernel`` launch them.

Under ``gn.config.set_float32_matmul_precision("high")`` the three float32 products run as
TF32 instead (``tensorcore.matmul``: kernels/tc_gemm.cu, or the NumPy reference with the
operands rounded to TF32); the bias gradient stays a float32 column sum, and an activation or
its folded gradient is then a kernel of its own.

16-bit operands (bfloat16 / float16: a layer under a mixed policy passes x and its kernel cast to
the compute dtype; the bias may be float32 or that dtype and is used as float32): y and dx come
out in that dtype, dw and db in float32. The products run on tensor cores where they exist
(``tensorcore.matmul``: bf16 / fp16 mma, float32 sums, then ``tc_finish`` adds the bias, applies
the activation or the folded gradient in float32 and rounds once); elsewhere (the cuda backend
below sm_80) gemm.cu's kernels instantiated for the 16-bit type (load T, compute float32, store
T once). db: gemm.cu's ``dense_backward_bias<T>``, float32. The NumPy reference widens the inputs
to float32, computes as for float32 and narrows y and dx once (``precision``).
"""
import math

import numpy as np

from .. import backend, config
from . import epilogue as epilogues
from . import launch, precision, tensorcore

_GEMM_BLOCK = (256, 1, 1)     # gemm.cu's THREADS
_GEMM_TILE = (64, 64)         # gemm.cu's BLOCK_M (rows of C), BLOCK_N (columns of C)
_GEMM_K = 16                  # gemm.cu's BLOCK_K
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


def dense_forward(x, w, b=None, activation=None):
    """``act(x @ w (+ b))``: x (N, in), w (in, out), b (out,) or None -> y (N, out), in x's dtype.

    ``activation``: an ``epilogue.Epilogue`` applied by the product's own kernel, or None."""
    _check_shapes("dense_forward", x, w, b)
    if precision.is_half(x.dtype):
        return _dense_forward_half(x, w, b, activation)
    if config.tf32_enabled(x, w) and tensorcore.usable():
        return epilogues.activate(tensorcore.matmul(x, w, b, op="dense_forward"), activation)
    if backend.current().runs_kernels:
        return _dense_forward_kernel(x, w, b, activation)
    y = x @ w
    if b is not None:
        y += b
    return epilogues.activate(y, activation)


def dense_backward(dy, x, w, need_dx=True, need_db=True, need_dw=True, fold=None):
    """Gradients of :func:`dense_forward` from dy (N, out) and the saved input x (N, in).

    Returns ``(dx, dw, db)``: dx (N, in), dw (in, out), db (out,), each None when its ``need_*``
    is False (a first layer needs no input gradient, a frozen layer no weight gradients).
    ``fold = (y, Epilogue)``: dx comes out multiplied by the derivative of the activation whose
    output y (N, in) was this layer's input (see ``epilogue``). Every gradient is written, not
    accumulated; on a kernel backend db comes from dw's product (a row of ones appended to x).
    """
    _check_shapes("dense_backward", x, w, dy=dy)
    if precision.is_half(dy.dtype):
        return _dense_backward_half(dy, x, w, need_dx, need_db, need_dw, fold)
    if config.tf32_enabled(dy, x, w) and tensorcore.usable():   # else FFMA, as PyTorch on pre-sm_80
        return _dense_backward_tf32(dy, x, w, need_dx, need_db, need_dw, fold)
    if backend.current().runs_kernels:
        return _dense_backward_kernel(dy, x, w, need_dx, need_db, need_dw, fold)
    dx = epilogues.apply_fold(dy @ w.T, fold) if need_dx else None
    dw = x.T @ dy if need_dw else None
    # A ones-vector product reduces over the batch with the same BLAS call a GPU would use.
    db = np.ones(dy.shape[0], dtype=dy.dtype) @ dy if need_db else None
    return dx, dw, db


def _dense_backward_tf32(dy, x, w, need_dx, need_db, need_dw, fold=None):
    """dense_backward's products on TF32 tensor cores (precision "high"); db as in "highest"."""
    dx = tensorcore.matmul(dy, w, trans_b=True, op="dense_backward") if need_dx else None
    dw = tensorcore.matmul(x, dy, trans_a=True, op="dense_backward") if need_dw else None
    db = None
    if need_db and backend.current().runs_kernels:
        db = _dense_backward_kernel(dy, x, w, False, True, False, None)[2]
    elif need_db:
        db = np.ones(dy.shape[0], dtype=dy.dtype) @ dy
    return epilogues.apply_fold(dx, fold), dw, db


def _dense_forward_half(x, w, b, activation):
    op = "dense_forward"
    dtype = tensorcore.same_dtype(op, ("x", "w"), x, w)
    b = tensorcore.float32_bias(op, b)
    if not backend.current().runs_kernels:
        y = precision.widen(x) @ precision.widen(w)
        if b is not None:
            y += b
        return precision.narrow(epilogues.activate(y, activation), dtype)
    if tensorcore.usable():
        return tensorcore.matmul(x, w, b, op=op, out_dtype=dtype, activation=activation)
    return _dense_forward_kernel(x, w, b, activation)


def _dense_backward_half(dy, x, w, need_dx, need_db, need_dw, fold):
    op = "dense_backward"
    dtype = tensorcore.same_dtype(op, ("dy", "x", "w"), dy, x, w)
    if not backend.current().runs_kernels:
        dy32, x32 = precision.widen(dy), precision.widen(x)
        fold32 = None if fold is None else (precision.widen(fold[0]), fold[1])
        dx = precision.narrow(epilogues.apply_fold(dy32 @ precision.widen(w).T, fold32), dtype) if need_dx else None
        dw = x32.T @ dy32 if need_dw else None
        db = np.ones(dy.shape[0], dtype=np.float32) @ dy32 if need_db else None
        return dx, dw, db
    if not tensorcore.usable():
        return _dense_backward_kernel(dy, x, w, need_dx, need_db, need_dw, fold)
    dx = tensorcore.matmul(dy, w, trans_b=True, op=op, out_dtype=dtype, fold=fold) if need_dx else None
    dw = tensorcore.matmul(x, dy, trans_a=True, op=op) if need_dw else None
    db = _dense_backward_kernel(dy, x, w, False, True, False, None)[2] if need_db else None
    return dx, dw, db


@launch.plan
def _gemm_plan(kernel, m, k, n, extra_rows=0, split=True):
    """The grid (``(x, y)``, or ``(x, y, splits)`` when K is split), the ``m, k, n`` arguments and
    ``k_per_split`` of a gemm.cu product writing (m + extra_rows, n).

    The longer side of the output goes on grid axis x, so no size of a layer meets the 65,535-block
    limit of axis y: with ``m * n < 2**31`` the shorter side has at most 725 tiles."""
    rows = m + extra_rows
    for what, size in (("rows x depth", rows * k), ("depth x columns", k * n), ("rows x columns", rows * n)):
        launch.i32(size, f"{kernel}: {what}")      # the kernel indexes with 32-bit ints
    row_tiles, col_tiles = launch.grid_for((rows, n), _GEMM_TILE)
    grid = (row_tiles, col_tiles) if rows >= n else (col_tiles, row_tiles)   # gemm.cu's rule
    splits, per_split = gemm_splits(rows, k, n) if split else (1, k)
    return (*grid, splits) if splits > 1 else grid, tuple(launch.pack(m, k, n)), per_split


_SMS = 108                    # SMs assumed (an A100's), as the tensor-core path assumes
_SPLIT_BLOCKS = 2 * _SMS      # split K until about this many blocks run...
_SPLIT_MIN_TILES = 4          # ...keeping at least this many k-tiles (of 16) in each split...
_SPLIT_MAX = 16               # ...and at most this many splits (the last block of a tile adds them all)
_SPLIT_MIN_FMAS = 2 ** 22     # below this a product is too small for idle SMs to matter


def gemm_splits(rows, k, n):
    """``(splits, k_per_split)`` for gemm.cu's (rows, k) @ (k, n): K is split only when the output's
    64 x 64 tiles would fill fewer than half the SMs and the product is big enough for that to
    matter; each split takes whole k-tiles, at least _SPLIT_MIN_TILES of them."""
    tiles = math.ceil(rows / _GEMM_TILE[0]) * math.ceil(n / _GEMM_TILE[1])
    k_tiles = math.ceil(k / _GEMM_K)
    if 2 * tiles > _SMS or rows * k * n < _SPLIT_MIN_FMAS or k_tiles < 2 * _SPLIT_MIN_TILES:
        return 1, max(k, 1)
    splits = min(math.ceil(_SPLIT_BLOCKS / tiles), k_tiles // _SPLIT_MIN_TILES, _SPLIT_MAX)
    per_split = math.ceil(k_tiles / splits) * _GEMM_K
    return math.ceil(k / per_split), per_split


def _gemm(kernel, inputs, out, m, k, n, *flags, extra_rows=0, split=True):
    """Launch the gemm.cu product ``kernel(*inputs, out, m, k, n, *flags[, partial, k_per_split,
    arrivals])`` writing ``out``. ``split`` (dense_forward, dense_backward_input): K split as
    gemm_splits says, each split's sums in a float32 partial buffer, the last block of each output
    tile adding them (one launch either way). The weight gradient is not split: its output (in,
    out) has tiles enough unless both are small, and the split path would cost it registers."""
    grid, sizes, per_split = _gemm_plan(kernel, m, k, n, extra_rows, split)
    if not split:
        launch.run("gemm.cu", kernel, grid, _GEMM_BLOCK, *inputs, out, *sizes, *flags)
        return
    splits, tiles = grid[2] if len(grid) == 3 else 1, grid[0] * grid[1]
    partial = launch.empty((splits, m + extra_rows, n)) if splits > 1 else launch.placeholder()
    arrivals = launch.counters(tiles if splits > 1 else 1)
    launch.run("gemm.cu", kernel, grid, _GEMM_BLOCK, *inputs, out, *sizes, *flags, partial, per_split, arrivals)


def _dense_forward_kernel(x, w, b, activation):
    x, w = launch.inputs("dense_forward", x, w, dtype=precision.FLOATS)   # b stays float32
    (m, k), n = x.shape, w.shape[1]
    # The kernel reads b only when has_bias is 1; a pointer must still be passed.
    bias, = launch.inputs("dense_forward", b) if b is not None else (launch.placeholder(),)
    y = launch.empty((m, n), x.dtype)
    _gemm("dense_forward", (x, w, bias), y, m, k, n, int(b is not None), *epilogues.kernel_settings(activation))
    return y


def _dense_backward_kernel(dy, x, w, need_dx, need_db, need_dw, fold):
    dy, x, w = launch.inputs("dense_backward", dy, x, w, dtype=precision.FLOATS)   # dw, db float32
    (batch, out_features), in_features = dy.shape, w.shape[0]
    dx = dw = db = None
    if need_dx:
        dx = launch.empty((batch, in_features), dy.dtype)
        _gemm("dense_backward_input", (dy, w), dx, batch, out_features, in_features,
              *tensorcore.epilogue_args("dense_backward", fold, None, dx.shape, dy))
    if need_dw:
        both = int(need_db)   # the bias gradient as one more row of the filter gradient's product
        dw = launch.empty((in_features + both, out_features))
        _gemm("dense_backward_filter", (x, dy), dw, in_features, batch, out_features, both, extra_rows=both,
              split=False)
        if both:
            return dx, dw[:in_features], dw[in_features]
    if need_db:
        db = launch.empty((out_features,))
        grid = launch.grid_for((out_features,), _BIAS_BLOCK[:1])
        launch.run("gemm.cu", "dense_backward_bias", grid, _BIAS_BLOCK, dy, db, batch, out_features)
    return dx, dw, db
