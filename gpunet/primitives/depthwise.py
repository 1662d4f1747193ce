"""Depthwise 2-D convolution, NHWC: forward, backward-input, backward-filter.

Shapes: ``x (N, H, W, C)``; kernel ``w (kh, kw, C, M)`` (Keras's DepthwiseConv2D layout, M the
depth multiplier); bias ``(C*M,)``; output ``(N, OH, OW, C*M)``, channel ``c * M + m``.
``strides``, ``dilation``: pairs; ``padding``: ``((top, bottom), (left, right))`` pixels, >= 0.

NumPy reference: one pass per kernel tap over a strided view of the zero-padded input (a
broadcast multiply-add into ``(N, OH, OW, C, M)``): kh*kw passes of the output's size, no
im2col buffer kh*kw times the input, no GEMM (each channel meets only its own kh*kw weights,
so a per-channel GEMM would have K = kh*kw). Backward-input adds each tap's contribution
through a strided slice of a padded dx; backward-filter reduces each tap's view against dy.

On a kernel backend the ops run ``kernels/depthwise.cu`` (direct kernels, see its header); the
filter gradient's pixel splits are added by conv.cu's ``sum_splits`` and the bias gradient is
``conv.bias_backward``.

dtypes: ``x``, ``w``, ``b``, ``y``, ``dy`` and ``dx`` float32, bfloat16 or float16 (float64 on numpy
only): the filter is taken in the activations' dtype, as a Keras layer casts its kernel to the
compute dtype (a float32 ``w`` / ``b`` beside 16-bit x is cast so, rounded once). Products add up
in float32 and ``y`` / ``dx`` round once where stored, in the kernels and in the NumPy reference
(``precision.widen`` / ``narrow``). The weight and bias gradients are float32 for 16-bit inputs.
"""
import numpy as np

from .. import backend
from . import cast, conv, conv_geometry, launch, precision

__all__ = ["depthwise_conv2d_forward", "depthwise_conv2d_backward_input", "depthwise_conv2d_backward_filter"]

_FILE = "depthwise.cu"
_LANES = 32   # depthwise.cu's DW_LANES: output channels per filter-gradient block


def _out_hw(x_shape, w_shape, strides, padding, dilation):
    out_hw = conv_geometry.conv_output_shape(x_shape[1:3], w_shape[:2], strides, padding, dilation)
    if min(out_hw) < 1:
        raise ValueError(f"depthwise_conv2d: input {tuple(x_shape)} with padding {padding}, kernel "
                         f"{tuple(w_shape[:2])}, dilation {tuple(dilation)} gives output {out_hw}.")
    return out_hw


def _check(op, x_shape, w_shape):
    if len(x_shape) != 4 or len(w_shape) != 4 or x_shape[3] != w_shape[2]:
        raise ValueError(f"{op}: x (N, H, W, C) and w (kh, kw, C, M) must agree on C; "
                         f"received x {tuple(x_shape)} and w {tuple(w_shape)}.")


def _tap_views(a, w_shape, out_hw, strides, padding, dilation):
    """``{(i, j): view (N, OH, OW, C)}`` of zero-padded ``a`` that tap (i, j) reads."""
    (pt, pb), (pl, pr) = padding
    ap = np.pad(a, ((0, 0), (pt, pb), (pl, pr), (0, 0))) if pt or pb or pl or pr else a
    views = {}
    for i in range(w_shape[0]):
        for j in range(w_shape[1]):
            r, s = i * dilation[0], j * dilation[1]
            views[i, j] = ap[:, r:r + (out_hw[0] - 1) * strides[0] + 1:strides[0],
                             s:s + (out_hw[1] - 1) * strides[1] + 1:strides[1], :]
    return views, ap


def depthwise_conv2d_forward(x, w, b, strides, padding, dilation):
    """x ``(N, H, W, C)``, w ``(kh, kw, C, M)``, b ``(C*M,)`` or None -> y ``(N, OH, OW, C*M)``."""
    _check("depthwise_conv2d_forward", x.shape, w.shape)
    out_hw = _out_hw(x.shape, w.shape, strides, padding, dilation)
    if backend.current().runs_kernels:
        return _forward_kernel(x, w, b, out_hw, strides, padding, dilation)
    dtype, (x, w, b) = x.dtype, _widened(x, *_as_compute(x.dtype, w, b))
    n, (kh, kw, c, m) = x.shape[0], w.shape
    y = np.zeros((n, *out_hw, c, m), dtype=x.dtype)
    views, _ = _tap_views(x, w.shape, out_hw, strides, padding, dilation)
    for (i, j), view in views.items():
        y += view[..., None] * w[i, j]
    y = y.reshape(n, *out_hw, c * m)
    return precision.narrow(y + b if b is not None else y, dtype)


def depthwise_conv2d_backward_input(dy, w, x_shape, strides, padding, dilation):
    """dy ``(N, OH, OW, C*M)``, w ``(kh, kw, C, M)`` -> dx of ``x_shape`` ``(N, H, W, C)``."""
    _check("depthwise_conv2d_backward_input", x_shape, w.shape)
    out_hw = _out_hw(x_shape, w.shape, strides, padding, dilation)
    if backend.current().runs_kernels:
        return _backward_input_kernel(dy, w, x_shape, out_hw, strides, padding, dilation)
    dtype, (dy, w) = dy.dtype, _widened(dy, *_as_compute(dy.dtype, w))
    n, h, wd, c = x_shape
    (pt, pb), (pl, pr) = padding
    dy5 = dy.reshape(n, *out_hw, c, w.shape[3])
    dxp = np.zeros((n, h + pt + pb, wd + pl + pr, c), dtype=dy.dtype)
    # dxp is already padded: its tap views start at the buffer's origin.
    for (i, j), view in _tap_views(dxp, w.shape, out_hw, strides, ((0, 0), (0, 0)), dilation)[0].items():
        view += dy5[..., 0] * w[i, j, :, 0] if w.shape[3] == 1 else (dy5 * w[i, j]).sum(axis=-1)
    return precision.narrow(np.ascontiguousarray(dxp[:, pt:pt + h, pl:pl + wd, :]), dtype)


def depthwise_conv2d_backward_filter(dy, x, w_shape, strides, padding, dilation):
    """dy ``(N, OH, OW, C*M)``, x ``(N, H, W, C)`` -> ``(dw (kh, kw, C, M), db (C*M,))``."""
    _check("depthwise_conv2d_backward_filter", x.shape, w_shape)
    out_hw = _out_hw(x.shape, w_shape, strides, padding, dilation)
    if backend.current().runs_kernels:
        return _backward_filter_kernel(dy, x, w_shape, out_hw, strides, padding, dilation), conv.bias_backward(dy)
    dy, x = _widened(dy, x)   # float32 gradients of 16-bit inputs
    kh, kw, c, m = w_shape
    dy5 = dy.reshape(*dy.shape[:3], c, m)
    dw = np.empty(w_shape, dtype=dy.dtype)
    for (i, j), view in _tap_views(x, w_shape, out_hw, strides, padding, dilation)[0].items():
        dw[i, j] = (view[..., None] * dy5).reshape(-1, c, m).sum(axis=0)
    return dw, conv.bias_backward(dy)


def _widened(*arrays):
    return [None if a is None else precision.widen(a) for a in arrays]


def _as_compute(dtype, *params):
    """The filter / bias in the activations' dtype when that is 16-bit (Keras's autocast), else as given."""
    return [a if a is None or not precision.is_half(dtype) else cast.cast(a, dtype) for a in params]


# -- kernel paths -------------------------------------------------------------------------------
def _geometry(x_shape, w_shape, out_hw, strides, padding, dilation):
    n, h, wd, c = x_shape
    kh, kw, _, m = w_shape
    return tuple(int(v) for v in (n, h, wd, c, m, *out_hw, kh, kw, *strides, *dilation,
                                  padding[0][0], padding[1][0]))


def _forward_kernel(x, w, b, out_hw, strides, padding, dilation):
    op = "depthwise_conv2d_forward"
    x, w, b = launch.inputs(op, x, *_as_compute(x.dtype, w, b), dtype=precision.FLOATS)
    n, c, m = x.shape[0], x.shape[3], w.shape[3]
    y = launch.empty((n, *out_hw, c * m), x.dtype)
    count = launch.i32(y.size, f"{op}: outputs")
    launch.run(_FILE, op, launch.blocks_for(count, cap=conv._MAX_BLOCKS), launch.THREADS, x, w,
               w if b is None else b, y, 0 if b is None else 1,
               *_geometry(x.shape, w.shape, out_hw, strides, padding, dilation))
    return y


def _backward_input_kernel(dy, w, x_shape, out_hw, strides, padding, dilation):
    op = "depthwise_conv2d_backward_input"
    dy, w = launch.inputs(op, dy, *_as_compute(dy.dtype, w), dtype=precision.FLOATS)
    expected = (x_shape[0], *out_hw, x_shape[3] * w.shape[3])
    if tuple(dy.shape) != expected:
        raise ValueError(f"{op}: dy must have shape {expected}; received {tuple(dy.shape)}.")
    dx = launch.empty(x_shape, dy.dtype)
    count = launch.i32(dx.size, f"{op}: elements of dx")
    launch.run(_FILE, op, launch.blocks_for(count, cap=conv._MAX_BLOCKS), launch.THREADS, dy, w, dx,
               *_geometry(x_shape, w.shape, out_hw, strides, padding, dilation))
    return dx


def _backward_filter_kernel(dy, x, w_shape, out_hw, strides, padding, dilation):
    op = "depthwise_conv2d_backward_filter"
    dy, x = launch.inputs(op, dy, x, dtype=precision.FLOATS)
    kh, kw, c, m = (int(v) for v in w_shape)
    pixels = x.shape[0] * out_hw[0] * out_hw[1]
    blocks = kh * kw * -(-c * m // _LANES)
    splits, per_split = conv._splits(pixels, blocks, conv._SPLIT_MIN_PIXELS)
    partial = launch.empty((splits, kh, kw, c, m))
    launch.run(_FILE, op, (kh * kw, -(-c * m // _LANES), splits), launch.THREADS, x, dy, partial, per_split,
               *_geometry(x.shape, w_shape, out_hw, strides, padding, dilation))
    return conv._sum_splits(partial, splits, (kh, kw, c, m))
