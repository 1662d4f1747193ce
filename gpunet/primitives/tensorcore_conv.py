"""2-D convolution on tensor cores (kernels/tc_conv.cu): forward and filter gradient, NHWC, for
float32 operands as TF32 and for bf16 / fp16 operands, float32 results. NumPy reference and kernel
launch side by side; shapes and padding exactly as in ``conv.py``:

    y = conv2d_forward(x, w, b, strides, padding, dilation)
        x (N, H, W, Cin), w (kh, kw, Cin, Cout), b (Cout,) float32 or None -> y (N, OH, OW, Cout)
    dx = conv2d_backward_input(dy, w, x_shape, strides, padding, dilation)
        dy (N, OH, OW, Cout), w (kh, kw, Cin, Cout) -> dx x_shape (N, H, W, Cin)
    dw = conv2d_backward_filter(dy, x, w_shape, strides, padding, dilation)
        dy (N, OH, OW, Cout), x (N, H, W, Cin) -> dw w_shape (kh, kw, Cin, Cout)

x, w (and dy) share one dtype: float32, ``ml_dtypes.bfloat16`` or ``np.float16``. The NumPy
reference rounds float32 operands to TF32 (``tensorcore.tf32_round``) and converts 16-bit ones
to float32 exactly, then multiplies in float32: the kernels compute the same exact products and
differ only in summation order (tests/test_kernels_tensorcore_conv.py derives the tolerance).

``conv.py`` routes float32 convs here under ``gn.config.set_float32_matmul_precision("high")``,
and ``conv_half`` every 16-bit conv. The input gradient of a strided conv (and with it a strided
transposed conv's forward) runs one GEMM per phase of the strides, as conv.cu's FFMA kernel does
(kernels/conv_phase.cuh): the dx pixels of a phase and the taps that reach them.
The filter gradient splits its pixels like conv.cu's (deterministic, conv.cu's ``sum_splits``).
Each product runs on the block tile ``tensorcore.tile_for`` picks for its GEMM (``plan`` says
which: 64 x 64, 128 x 128, 128 x 64, 128 x 32 or 256 x 32, the kernel name's ``_BMxBN`` suffix;
the 256 x 32 kernels are in tc_conv_tall.cu, the others in tc_conv.cu).
"""
import contextlib
import math

import numpy as np

from .. import backend, config
from . import conv, launch, tensorcore

__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_filter", "plan"]

_K_BYTES = 64        # TC_KBYTES


def _file(tile):
    """The kernels/ file of a tile's conv kernels."""
    return "tc_conv_tall.cu" if tile == tensorcore.TALL else "tc_conv.cu"


def plan(product, x_shape, w_shape, out_hw, strides, itemsize, sms=None, tiles=tensorcore.CONV_TILES):
    """``(tile, grid, splits, pixels_per_split)`` of one conv product on tensor cores: ``product`` is
    "forward", "input" or "filter"; x_shape (N, H, W, Cin), w_shape (kh, kw, Cin, Cout), out_hw the
    conv's output size. ``sms``: plan for that many SMs (default: the device's); ``tiles``: the
    candidates (tile_for's; benchmarks/tc_model.py compares with SMALL alone)."""
    n, h, wd, cin = x_shape
    kh, kw, _, cout = w_shape
    pixels = n * out_hw[0] * out_hw[1]
    if product == "forward":   # M = output pixels, N = Cout, K = kh kw Cin
        tile = tensorcore.tile_for(pixels, cout, kh * kw * cin, sms=sms, tiles=tiles)
        return tile, launch.grid_for((pixels, cout), (tile.bm, tile.bn)), 1, 0
    if product == "input":     # per phase: M = the largest phase's dx pixels, N = Cin, grid z = phases
        sh, sw = strides
        phase_pixels = n * math.ceil(h / sh) * math.ceil(wd / sw)
        tile = tensorcore.tile_for(phase_pixels, cin, kh * kw * cout, layers=sh * sw, sms=sms, tiles=tiles)
        return tile, (*launch.grid_for((phase_pixels, cin), (tile.bm, tile.bn)), sh * sw), 1, 0
    taps, k_tile = kh * kw * cin, _K_BYTES // itemsize   # filter: M = taps, N = Cout, K = pixels (split)

    def splits(tile):
        blocks = math.ceil(taps / tile.bm) * math.ceil(cout / tile.bn)
        return conv._splits(pixels, blocks, conv._SPLIT_MIN_PIXELS, k_tile)
    tile = tensorcore.tile_for(taps, cout, pixels, splits=splits, sms=sms, tiles=tiles)
    return (tile, (*launch.grid_for((taps, cout), (tile.bm, tile.bn)), splits(tile)[0]), *splits(tile))


def _kind(op, *arrays):
    dtypes = {a.dtype for a in arrays}
    kind = tensorcore.operand_type(arrays[0].dtype)
    if len(dtypes) != 1 or kind is None:
        raise TypeError(f"{op}: tensor-core operands must all be float32, bfloat16 or float16 (one dtype); "
                        f"received {', '.join(str(a.dtype) for a in arrays)}.")
    if not tensorcore.usable():
        raise RuntimeError(f"{op}: tensor-core convolutions need a GPU of compute capability 8.0 or newer.")
    return kind


def _rounded(a):
    return tensorcore.tf32_round(a) if a.dtype == np.float32 else a.astype(np.float32)


def conv2d_forward(x, w, b, strides, padding, dilation):
    """Cross-correlation of x with w (+ b) on tensor cores; see the module doc for shapes."""
    op = "conv2d_forward"
    kind = _kind(op, x, w)
    conv._expect_shape(op, "x", x.shape, (*x.shape[:3], w.shape[2]), f"(w has shape {w.shape})")
    if b is not None:
        conv._expect_shape(op, "b", b.shape, (w.shape[3],))
    if backend.current().runs_kernels:
        return _forward_kernel(op, kind, x, w, b, strides, padding, dilation)
    kh, kw, cin, cout = w.shape
    cols, out_hw = conv._im2col(_rounded(x), (kh, kw), strides, padding, dilation, keep=True)
    y = cols @ _rounded(w).reshape(kh * kw * cin, cout)
    if b is not None:
        y += b
    return y.reshape(x.shape[0], *out_hw, cout)


@contextlib.contextmanager
def _float32_products():
    """conv.py's float32 paths for the reference (under "high" they would route back here)."""
    previous = config.get_float32_matmul_precision()
    config.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        config.set_float32_matmul_precision(previous)


def conv2d_backward_input(dy, w, x_shape, strides, padding, dilation):
    """The input gradient of a conv on tensor cores, one GEMM per phase of the strides (one for
    stride 1); see the module doc for shapes."""
    op = "conv2d_backward_input"
    kind = _kind(op, dy, w)
    n, h, wd, cin = (int(v) for v in x_shape)
    kh, kw, _, cout = w.shape
    out_hw = conv._plan((h, wd), (kh, kw), strides, padding, dilation)[0]
    conv._expect_shape(op, "w", w.shape, (kh, kw, cin, cout))
    conv._expect_shape(op, "dy", dy.shape, (n, *out_hw, cout))
    if backend.current().runs_kernels:
        dy, w = launch.inputs(op, dy, w, dtype=dy.dtype)
        # conv.cu's checks and geometry (blockIdx.z the phase); the grid is this tile's
        dx_shape, _, geometry = conv._input_gradient_plan(op, dy.shape, w.shape, (n, h, wd, cin), strides,
                                                          padding, dilation, ("dy", "dx"))
        tile, grid, _, _ = plan("input", dx_shape, w.shape, out_hw, strides, dy.dtype.itemsize)
        dx = launch.empty(dx_shape)
        launch.run(_file(tile), f"tc_conv2d_backward_input_{kind}{tile.suffix}", grid, tile.threads, dy, w, dx,
                   *geometry)
        return dx
    with _float32_products():
        return conv.conv2d_backward_input(_rounded(dy), _rounded(w), x_shape, strides, padding, dilation)


def conv2d_backward_filter(dy, x, w_shape, strides, padding, dilation, op="conv2d_backward_filter",
                           names=("dy", "x")):
    """``im2col(x).T @ dy`` on tensor cores -> dw ``w_shape``; ``op`` / ``names`` are what errors quote."""
    kind = _kind(op, dy, x)
    kh, kw, cin, cout = (int(v) for v in w_shape)
    out_hw = conv._plan(x.shape[1:3], (kh, kw), strides, padding, dilation)[0]
    conv._expect_shape(op, names[1], x.shape, (*x.shape[:3], cin))
    conv._expect_shape(op, names[0], dy.shape, (x.shape[0], *out_hw, cout))
    if backend.current().runs_kernels:
        return _filter_kernel(op, kind, dy, x, (kh, kw, cin, cout), out_hw, strides, padding, dilation)
    cols, _ = conv._im2col(_rounded(x), (kh, kw), strides, padding, dilation, keep=True)
    return (cols.T @ _rounded(dy).reshape(-1, cout)).reshape(kh, kw, cin, cout)


def _forward_kernel(op, kind, x, w, b, strides, padding, dilation):
    x, w = launch.inputs(op, x, w, dtype=x.dtype)
    kh, kw, cin, cout = w.shape
    out_hw = conv._plan(x.shape[1:3], (kh, kw), strides, padding, dilation)[0]
    bias = launch.inputs(op, b)[0] if b is not None else launch.zeros((1,))
    y = conv._output(op, "y", (x.shape[0], *out_hw, cout))
    launch.i32(kh * kw * cin * cout, f"{op}: elements of w")
    tile, grid, _, _ = plan("forward", x.shape, w.shape, out_hw, strides, x.dtype.itemsize)
    launch.run(_file(tile), f"tc_conv2d_forward_{kind}{tile.suffix}", grid, tile.threads, x, w, bias, y,
               int(b is not None),
               *conv._geometry(x.shape, w.shape, out_hw, strides, padding, dilation))
    return y


def _filter_kernel(op, kind, dy, x, w_shape, out_hw, strides, padding, dilation):
    dy, x = launch.inputs(op, dy, x, dtype=x.dtype)
    kh, kw, cin, cout = w_shape
    tile, grid, splits, per_split = plan("filter", x.shape, w_shape, out_hw, strides, x.dtype.itemsize)
    partial = conv._output(op, "the split filter gradients", (splits, kh, kw, cin, cout))
    launch.run(_file(tile), f"tc_conv2d_backward_filter_{kind}{tile.suffix}", grid, tile.threads, x, dy, partial,
               per_split, *conv._geometry(x.shape, w_shape, out_hw, strides, padding, dilation))
    return conv._sum_splits(partial, splits, w_shape)
