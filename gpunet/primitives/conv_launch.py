"""conv.py's kernel paths (kernels/conv.cu): launch plans and launches of the forward,
input-gradient, filter-gradient and bias-gradient kernels, and the split reductions' buffers.

x / w / dy are float32, bfloat16 or float16 (the kernels are templates on the element type;
b, dw and db stay float32). Every call launches conv.cu kernels, nothing is computed in NumPy.
A block owns a ``_TILE x _TILE`` tile of its GEMM's output. conv.py re-exports these names:
conv_half, tensorcore_conv and depthwise reach them as ``conv._...``.
"""
import math

from . import launch, precision, tensorcore
from .conv_plan import _expect_shape, _plan

_TILE = 64                  # conv.cu's TILE_M == TILE_N
_TILE_K = 16                # conv.cu's TILE_K: filter-gradient splits are multiples of it
_BIAS_COLUMNS = 32          # conv.cu's BIAS_COLS: channels one bias_backward block owns
_SPLIT_BLOCKS = 128         # split a long gradient reduction until about this many blocks run...
_SPLIT_MIN_PIXELS = 256     # ...keeping at least this many pixels in each filter-gradient split
_SPLIT_MIN_ROWS = 512       # ...and this many rows in each bias-gradient split


def _geometry(x_shape, w_shape, out_hw, strides, padding, dilation):
    """conv.cu's geometry arguments of the forward conv x (*) w: sizes, strides, top/left pads."""
    values = (*x_shape, *out_hw, w_shape[3], *w_shape[:2], *strides, padding[0][0],
              padding[1][0], *dilation)
    return tuple(int(v) for v in values)


def _splits(count, blocks, minimum, multiple=1):
    """``(splits, per_split)``: cut a reduction over ``count`` items, the same way for the same shapes.

    Nothing to reduce (a batch of 0) is one empty split: the kernel writes zeros."""
    if count == 0:
        return 1, multiple
    splits = max(1, min(math.ceil(_SPLIT_BLOCKS / blocks), count // minimum))
    per_split = math.ceil(math.ceil(count / splits) / multiple) * multiple
    return math.ceil(count / per_split), per_split


@launch.plan
def _forward_plan(op, x_shape, w_shape, strides, padding, dilation):
    """conv2d_forward's output shape, grid and geometry arguments for these shapes."""
    kh, kw, cin, cout = w_shape
    out_hw = _plan(x_shape[1:3], (kh, kw), strides, padding, dilation)[0]
    y_shape = (x_shape[0], *out_hw, cout)
    launch.i32(math.prod(y_shape), f"{op}: elements of y {y_shape}")
    grid = launch.grid_for((x_shape[0] * out_hw[0] * out_hw[1], cout), (_TILE, _TILE))
    return y_shape, grid, tuple(launch.pack(*_geometry(x_shape, w_shape, out_hw, strides, padding, dilation)))


def _conv2d_forward_kernel(x, w, b, strides, padding, dilation, activation=None, fold=None):
    op = "conv2d_forward"
    x, w = launch.inputs(op, x, w, dtype=precision.FLOATS)   # b stays float32
    y_shape, grid, geometry = _forward_plan(op, x.shape, w.shape, strides, padding, dilation)
    if b is not None:
        b, = launch.inputs(op, b)
        _expect_shape(op, "b", b.shape, (w.shape[3],))
    y = launch.empty(y_shape, x.dtype)
    gate, has_gate, act, alpha = tensorcore.epilogue_args(op, fold, activation, y_shape, x)
    launch.run("conv.cu", op, grid, launch.THREADS, x, w, launch.placeholder() if b is None else b, y, gate,
               0 if b is None else 1, has_gate, act, alpha, *geometry)
    return y


@launch.plan
def _input_gradient_plan(op, dy_shape, w_shape, x_shape, strides, padding, dilation, names):
    """conv2d_backward_input's grid and geometry arguments; checks dy and w against x_shape."""
    n, h, wd, cin = (int(v) for v in x_shape)
    kh, kw, _, cout = w_shape
    out_hw = _plan((h, wd), (kh, kw), strides, padding, dilation)[0]
    _expect_shape(op, "w", w_shape, (kh, kw, cin, cout))
    _expect_shape(op, names[0], dy_shape, (n, *out_hw, cout))
    launch.i32(n * h * wd * cin, f"{op}: elements of {names[1]} {(n, h, wd, cin)}")
    sh, sw = strides
    # blockIdx.z is the phase (row phase * sw + column phase); the largest phase has this many pixels.
    phase_pixels = n * math.ceil(h / sh) * math.ceil(wd / sw)
    grid = (*launch.grid_for((phase_pixels, cin), (_TILE, _TILE)), sh * sw)
    geometry = _geometry((n, h, wd, cin), w_shape, out_hw, strides, padding, dilation)
    return (n, h, wd, cin), grid, tuple(launch.pack(*geometry))


def _input_gradient_kernel(op, dy, w, b, x_shape, strides, padding, dilation, names=("dy", "dx"),
                           activation=None, fold=None):
    """conv2d_backward_input (b None) or the transposed conv's forward (dy its x, plus b).

    ``names``: what the caller calls the gathered input (dy) and the output (dx), for errors;
    ``activation`` (the transposed conv's forward) or ``fold``: the epilogue (see ``epilogue``)."""
    dy, w = launch.inputs(op, dy, w, dtype=precision.FLOATS)   # b stays float32
    dx_shape, grid, geometry = _input_gradient_plan(op, dy.shape, w.shape, tuple(x_shape), strides, padding,
                                                    dilation, names)
    if b is not None:
        b, = launch.inputs(op, b)
        _expect_shape(op, "b", b.shape, (dx_shape[3],))
    dx = launch.empty(dx_shape, dy.dtype)
    gate, has_gate, act, alpha = tensorcore.epilogue_args(op, fold, activation, dx_shape, dy)
    launch.run("conv.cu", "conv2d_backward_input", grid, launch.THREADS, dy, w,
               launch.placeholder() if b is None else b, dx, gate, 0 if b is None else 1, has_gate, act, alpha,
               *geometry)
    return dx


@launch.plan
def _filter_gradient_plan(op, dy_shape, x_shape, w_shape, strides, padding, dilation, names, with_bias):
    """conv2d_backward_filter's grid, splits, partial shape and arguments for these shapes."""
    kh, kw, cin, cout = (int(v) for v in w_shape)
    out_hw = _plan(x_shape[1:3], (kh, kw), strides, padding, dilation)[0]
    if tuple(dy_shape[1:3]) != out_hw:
        raise ValueError(f"{op}: {names[0]} has spatial size {tuple(dy_shape[1:3])}; "
                         f"the geometry gives {out_hw}.")
    _expect_shape(op, names[1], x_shape, (*x_shape[:3], cin))
    _expect_shape(op, names[0], dy_shape, (x_shape[0], *out_hw, cout))
    pixels, rows = x_shape[0] * out_hw[0] * out_hw[1], kh * kw * cin + with_bias
    tiles = launch.grid_for((rows, cout), (_TILE, _TILE))
    splits, per_split = _splits(pixels, tiles[0] * tiles[1], _SPLIT_MIN_PIXELS, _TILE_K)
    launch.i32(splits * rows * cout, f"{op}: elements of the split filter gradients")
    geometry = _geometry(x_shape, (kh, kw, cin, cout), out_hw, strides, padding, dilation)
    return (*tiles, splits), (splits, rows, cout), tuple(launch.pack(per_split, with_bias, *geometry))


_MAX_BLOCKS = 2048          # grid-stride sum_splits: enough blocks to fill a GPU


def _output(op, name, shape):
    """An output array for a conv kernel, refused when its element count overflows the kernel's
    32-bit indexes (tensorcore_conv's kernels; this file's plans check their own)."""
    launch.i32(math.prod(shape), f"{op}: elements of {name} {tuple(shape)}")
    return launch.empty(shape)


def _sum_splits(partial, splits, shape):
    """The chunks of a split reduction, ``partial (splits, *shape)``, summed in order (for a kernel
    that does not finish its splits itself: depthwise.py's)."""
    if splits == 1:
        return partial.reshape(shape)
    out = launch.empty(shape)
    count = out.size
    launch.run("conv.cu", "sum_splits", launch.blocks_for(count, cap=_MAX_BLOCKS), launch.THREADS,
               partial, out, count, splits)
    return out


def _split_outputs(splits, shape, tiles):
    """A split reduction's output, its partials (a placeholder when unsplit) and arrival counters."""
    partial = launch.empty((splits, *shape)) if splits > 1 else launch.placeholder()
    return launch.empty(shape), partial, launch.counters(tiles)


def _filter_gradient_kernel(dy, x, w_shape, strides, padding, dilation, op, names, with_bias=False):
    """im2col(x).T @ dy on conv.cu, in one launch however its pixels are split.
    ``op`` and ``names`` (the caller's names for dy and x) are what errors quote. ``with_bias``:
    returns ``(dw, db)``, db the product's extra row (im2col(x) with a column of ones)."""
    dy, x = launch.inputs(op, dy, x, dtype=precision.FLOATS)   # dw (and db) float32 whatever their dtype
    w_shape = tuple(int(v) for v in w_shape)
    grid, partial_shape, arguments = _filter_gradient_plan(op, dy.shape, x.shape, w_shape, strides, padding,
                                                           dilation, names, int(with_bias))
    both, partial, counters = _split_outputs(partial_shape[0], partial_shape[1:], grid[0] * grid[1])
    launch.run("conv.cu", "conv2d_backward_filter", grid, launch.THREADS, x, dy, both, partial, counters,
               *arguments)
    if with_bias:
        return both[:-1].reshape(w_shape), both[-1]
    return both.reshape(w_shape)


def _bias_backward_kernel(dy):
    dy, = launch.inputs("bias_backward", dy, dtype=precision.FLOATS)   # db float32
    channels = dy.shape[-1]
    rows = dy.size // channels
    column_blocks = math.ceil(channels / _BIAS_COLUMNS)
    splits, per_split = _splits(rows, column_blocks, _SPLIT_MIN_ROWS)
    db, partial, counters = _split_outputs(splits, (channels,), column_blocks)
    launch.run("conv.cu", "bias_backward", (column_blocks, splits), launch.THREADS, dy, db, partial, counters,
               rows, channels, per_split)
    return db
