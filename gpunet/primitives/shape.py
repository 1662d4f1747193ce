"""Ops that move values without weights: zero padding, upsampling, concatenation, addition.

All NHWC where spatial. Upsampling by integer factors ``(sh, sw)``: "nearest" repeats each
pixel (Keras's UpSampling2D); "bilinear" uses half-pixel centres with the edge pixel repeated
beyond the border, as TensorFlow's and JAX's image resize do when enlarging. Output pixel
``o`` along an axis samples input coordinate ``(o + 0.5) / s - 0.5``.

On a kernel backend (``backend.current().runs_kernels``) every op runs the kernels of
``kernels/shape.cu`` (padding, upsampling, concatenation) and ``kernels/elementwise.cu`` (add);
the functions named ``_<op>_kernel`` below launch them.

dtypes: padding, upsampling and concatenation take float32, bfloat16 and float16 on every backend
(float64 on numpy only) and return the input's dtype. Padding, nearest upsampling, concatenation
and their backwards copy values (exact); upsampling's gradient sums and bilinear interpolation
compute in float32 and round once where they store, in the kernels and in the NumPy reference
(``precision.widen`` / ``narrow``). ``add_forward`` of k inputs adds left to right and rounds
after each of its k - 1 pairwise adds, as Keras's bf16 / fp16 Add does op by op and as
elementwise.cu's accumulate kernel stores (its kernels, templated on T, run them).
"""
import math

import numpy as np

from .. import backend
from . import launch, precision

__all__ = [
    "zero_pad2d_forward", "zero_pad2d_backward",
    "upsample2d_forward", "upsample2d_backward",
    "concat_forward", "concat_backward",
    "add_forward", "add_backward",
]

INTERPOLATIONS = ("nearest", "bilinear")
_MAX_BLOCKS = 2048   # grid-stride kernels: enough blocks to fill any GPU; more only adds launch cost


def _launch_elementwise(file, kernel, count, *args):
    """Launch a grid-stride kernel that writes ``count`` elements."""
    launch.i32(count, f"{kernel}: elements written")
    launch.run(file, kernel, launch.blocks_for(count, cap=_MAX_BLOCKS), launch.THREADS, *args)


def zero_pad2d_forward(x, padding):
    """Zeros around the image: ``x`` (N, H, W, C), ``padding`` ((top, bottom), (left, right))
    -> (N, top + H + bottom, left + W + right, C)."""
    if backend.current().runs_kernels:
        return _zero_pad2d_kernel(x, padding, forward=True)
    (top, bottom), (left, right) = padding
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def zero_pad2d_backward(dy, padding):
    """Gradient of zero padding: the interior of ``dy``, (N, H, W, C)."""
    if backend.current().runs_kernels:
        return _zero_pad2d_kernel(dy, padding, forward=False)
    (top, bottom), (left, right) = padding
    height, width = dy.shape[1] - top - bottom, dy.shape[2] - left - right
    return np.ascontiguousarray(dy[:, top:top + height, left:left + width, :])


def _zero_pad2d_kernel(a, padding, forward):
    """Kernel path of both directions: ``a`` is x (forward) or dy (backward)."""
    op = "zero_pad2d_forward" if forward else "zero_pad2d_backward"
    a, = launch.inputs(op, a, dtype=precision.FLOATS)
    (top, bottom), (left, right) = ((int(p) for p in pair) for pair in padding)
    n, rows, cols, c = a.shape
    if forward:
        h, w, out_h, out_w = rows, cols, top + rows + bottom, left + cols + right
    else:
        h, w, out_h, out_w = rows - top - bottom, cols - left - right, rows, cols
    out = launch.empty((n, out_h, out_w, c) if forward else (n, h, w, c), a.dtype)
    _launch_elementwise("shape.cu", op, out.size, a, out, n, h, w, c, top, left, out_h, out_w)
    return out


def _bilinear_taps(scale):
    """Per phase ``r`` of an upsampled axis: output ``s*i + r`` = (1 - f) * x[i] + f * x[i + step]."""
    taps = []
    for r in range(scale):
        offset = (r + 0.5) / scale - 0.5
        taps.append((1, offset) if offset >= 0 else (-1, -offset))
    return taps


def _shifted(x, step):
    """``x[i + step]`` along axis 1, the edge row repeated where ``i + step`` leaves the array."""
    if step > 0:
        return np.concatenate([x[:, 1:], x[:, -1:]], axis=1)
    return np.concatenate([x[:, :1], x[:, :-1]], axis=1)


def _bilinear_axis1(x, scale):
    phases = [(1 - f) * x + f * _shifted(x, step) if f else x
              for step, f in _bilinear_taps(scale)]
    y = np.stack(phases, axis=2)
    return y.reshape(x.shape[0], x.shape[1] * scale, *x.shape[2:])


def _bilinear_axis1_backward(dy, scale):
    n, length = dy.shape[0], dy.shape[1] // scale
    dy = dy.reshape(n, length, scale, *dy.shape[2:])
    dx = np.zeros((n, length, *dy.shape[3:]), dtype=dy.dtype)
    for r, (step, f) in enumerate(_bilinear_taps(scale)):
        d = dy[:, :, r]
        dx += (1 - f) * d
        if step > 0:
            dx[:, 1:] += f * d[:, :-1]
            dx[:, -1] += f * d[:, -1]
        else:
            dx[:, :-1] += f * d[:, 1:]
            dx[:, 0] += f * d[:, 0]
    return dx


def upsample2d_forward(x, size, interpolation="nearest"):
    """Enlarge images by integer factors: ``x`` (N, H, W, C) -> (N, sh*H, sw*W, C)."""
    if backend.current().runs_kernels:
        return _upsample2d_forward_kernel(x, size, interpolation)
    sh, sw = size
    n, h, w, c = x.shape
    if interpolation == "nearest":
        y = np.broadcast_to(x[:, :, None, :, None, :], (n, h, sh, w, sw, c))
        return y.reshape(n, h * sh, w * sw, c)
    if interpolation == "bilinear":   # both axes in float32 for 16-bit x, one rounding at the end
        y = _bilinear_axis1(precision.widen(x), sh)
        y = np.ascontiguousarray(_bilinear_axis1(y.swapaxes(1, 2), sw).swapaxes(1, 2))
        return precision.narrow(y, x.dtype)
    raise ValueError(f"interpolation must be one of {INTERPOLATIONS}; received {interpolation!r}.")


def upsample2d_backward(dy, size, interpolation="nearest"):
    """Gradient of upsampling: ``dy`` (N, sh*H, sw*W, C) -> ``dx`` (N, H, W, C)."""
    if backend.current().runs_kernels:
        return _upsample2d_backward_kernel(dy, size, interpolation)
    sh, sw = size
    n, oh, ow, c = dy.shape
    dtype, dy = dy.dtype, precision.widen(dy)   # float32 sums, one rounding (as the kernels)
    if interpolation == "nearest":
        blocks = dy.reshape(n, oh // sh, sh, ow // sw, sw, c)
        dx = blocks[:, :, 0, :, 0].copy()
        for i in range(sh):
            for j in range(sw):
                if i or j:
                    dx += blocks[:, :, i, :, j]   # strided adds beat sum(axis=(2, 4)) here
        return precision.narrow(dx, dtype)
    if interpolation == "bilinear":
        d = _bilinear_axis1_backward(dy.swapaxes(1, 2), sw).swapaxes(1, 2)
        return precision.narrow(_bilinear_axis1_backward(d, sh), dtype)
    raise ValueError(f"interpolation must be one of {INTERPOLATIONS}; received {interpolation!r}.")


def _upsample2d_kernel_name(interpolation, direction):
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}; received {interpolation!r}.")
    return f"upsample2d_{interpolation}_{direction}"


def _upsample2d_forward_kernel(x, size, interpolation):
    kernel = _upsample2d_kernel_name(interpolation, "forward")
    x, = launch.inputs("upsample2d_forward", x, dtype=precision.FLOATS)
    sh, sw = (int(s) for s in size)
    n, h, w, c = x.shape
    y = launch.empty((n, h * sh, w * sw, c), x.dtype)
    _launch_elementwise("shape.cu", kernel, y.size, x, y, n, h, w, c, sh, sw)
    return y


def _upsample2d_backward_kernel(dy, size, interpolation):
    kernel = _upsample2d_kernel_name(interpolation, "backward")
    dy, = launch.inputs("upsample2d_backward", dy, dtype=precision.FLOATS)
    sh, sw = (int(s) for s in size)
    n, out_h, out_w, c = dy.shape
    if out_h % sh or out_w % sw:
        raise ValueError(f"upsample2d_backward: dy of shape {dy.shape} is not {sh} x {sw} times an image.")
    dx = launch.empty((n, out_h // sh, out_w // sw, c), dy.dtype)
    _launch_elementwise("shape.cu", kernel, dx.size, dy, dx, n, out_h // sh, out_w // sw, c, sh, sw)
    return dx


def concat_forward(xs, axis):
    """Join arrays along ``axis``; all other axes must match."""
    if backend.current().runs_kernels:
        return _concat_forward_kernel(xs, axis)
    return np.concatenate(xs, axis=axis)


def concat_backward(dy, sizes, axis):
    """Split ``dy`` back into pieces of ``sizes`` along ``axis``: a list of contiguous arrays."""
    if backend.current().runs_kernels:
        return _concat_backward_kernel(dy, sizes, axis)
    cuts = np.cumsum(sizes)[:-1]
    return [np.ascontiguousarray(piece) for piece in np.split(dy, cuts, axis=axis)]


def _concat_layout(shape, axis):
    """``shape`` seen as (outer, size, inner) around ``axis``."""
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def _concat_forward_kernel(xs, axis):
    xs = launch.inputs("concat_forward", *xs, dtype=precision.FLOATS)
    shape = xs[0].shape
    axis = axis % len(shape)
    if any(x.ndim != len(shape) or x.shape[:axis] + x.shape[axis + 1:] != shape[:axis] + shape[axis + 1:]
           for x in xs):
        raise ValueError(f"concat_forward along axis {axis} needs inputs that match on every other axis; "
                         f"received shapes {[x.shape for x in xs]}.")
    total = sum(x.shape[axis] for x in xs)
    out_shape = shape[:axis] + (total,) + shape[axis + 1:]
    launch.i32(math.prod(out_shape), f"concat_forward: elements of the output, shape {out_shape}")
    y = launch.empty(out_shape, xs[0].dtype)
    offset = 0
    for x in xs:   # one launch per input: each writes its own slice of y
        outer, size, inner = _concat_layout(x.shape, axis)
        _launch_elementwise("shape.cu", "concat_forward", x.size, x, y, outer, size, inner, total, offset)
        offset += size
    return y


def _concat_backward_kernel(dy, sizes, axis):
    dy, = launch.inputs("concat_backward", dy, dtype=precision.FLOATS)
    axis = axis % dy.ndim
    total = dy.shape[axis]
    if sum(sizes) != total:
        raise ValueError(f"concat_backward: sizes {list(sizes)} do not add up to axis {axis} "
                         f"of dy, shape {dy.shape}.")
    pieces, offset = [], 0
    for size in sizes:
        dx = launch.empty(dy.shape[:axis] + (int(size),) + dy.shape[axis + 1:], dy.dtype)
        outer, _, inner = _concat_layout(dx.shape, axis)
        _launch_elementwise("shape.cu", "concat_backward", dx.size, dy, dx, outer, int(size), inner, total, offset)
        pieces.append(dx)
        offset += int(size)
    return pieces


def add_forward(xs):
    """Elementwise sum of arrays of one shape."""
    if backend.current().runs_kernels:
        return _add_forward_kernel(xs)
    total = xs[0].copy()
    for x in xs[1:]:
        if precision.is_half(total.dtype):   # each pairwise add in float32, rounded as its kernel stores
            total = precision.narrow(precision.widen(total) + precision.widen(x), total.dtype)
        else:
            total += x
    return total


def add_backward(dy, n):
    """Gradient of a sum of ``n`` inputs: ``dy`` for each, as separate arrays (callers may add
    into one in place without touching the others)."""
    if backend.current().runs_kernels:
        return _add_backward_kernel(dy, n)
    return [dy] + [dy.copy() for _ in range(n - 1)]


def _add_forward_kernel(xs):
    xs = launch.inputs("add_forward", *xs, dtype=precision.FLOATS)
    if any(x.shape != xs[0].shape for x in xs):
        raise ValueError(f"add_forward needs inputs of one shape; received shapes {[x.shape for x in xs]}.")
    if len(xs) == 1:   # 0 + x: the accumulate kernel copies x
        total = launch.zeros(xs[0].shape, xs[0].dtype)
        _launch_elementwise("elementwise.cu", "add_forward_accumulate", total.size, total, xs[0], total.size)
        return total
    total = launch.empty(xs[0].shape, xs[0].dtype)
    _launch_elementwise("elementwise.cu", "add_forward", total.size, xs[0], xs[1], total, total.size)
    for x in xs[2:]:   # in input order, as the reference adds
        _launch_elementwise("elementwise.cu", "add_forward_accumulate", total.size, total, x, total.size)
    return total


def _add_backward_kernel(dy, n):
    dy, = launch.inputs("add_backward", dy, dtype=precision.FLOATS)
    grads = [dy]
    for _ in range(n - 1):
        dx = launch.empty(dy.shape, dy.dtype)
        _launch_elementwise("elementwise.cu", "add_backward", dx.size, dy, dx, dx.size)
        grads.append(dx)
    return grads
