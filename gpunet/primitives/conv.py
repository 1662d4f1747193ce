"""2-D convolution and transposed convolution, NHWC: forward, backward-input, backward-filter.

Shapes: ``x (N, H, W, Cin)``; conv kernel ``w (kh, kw, Cin, Cout)``; transposed-conv kernel
``(kh, kw, Cout, Cin)`` as Keras stores it; bias ``(Cout,)``. ``strides`` and ``dilation``
are ``(sh, sw)`` / ``(dh, dw)``; ``padding`` is already normalised to
``((top, bottom), (left, right))`` pixels (see ``conv_geometry``). A negative pad crops the
input instead: a transposed conv is the input gradient of a conv whose padding is the
transposed conv's crop, and "valid" with stride > kernel crops by a negative amount.

NumPy reference:

* forward: im2col as one strided view of the padded input, one copy to
  ``(N*OH*OW, kh*kw*Cin)``, one matmul with the kernel as ``(kh*kw*Cin, Cout)``.
* backward-filter: the same im2col, transposed, times ``dy`` as ``(N*OH*OW, Cout)``.
* backward-input: one GEMM per kernel offset, ``dy @ w[i, j].T``, written or added through
  strided slices straight into dx; ``conv_taps`` plans which part of dx each tap reaches, so
  there is no padded buffer to crop and no ``kh*kw``-times-larger col2im buffer.

Every op keeps the input dtype (float64 in gradient checks). bfloat16 / float16 activations (mixed
precision) go to ``conv_half``, which says where each product runs and rounds: y and dx in the
16-bit dtype, dw and db float32; conv.cu's kernels are templates on that element type.

On a kernel backend (``backend.current().runs_kernels``) every op runs the float32 implicit-GEMM
kernels of ``kernels/conv.cu``, launched by the ``_..._kernel`` functions at the end of this
file; the transposed conv maps onto them exactly as its NumPy code maps onto the conv ops.

Under ``gn.config.set_float32_matmul_precision("high")`` float32 forward and filter-gradient
products run as TF32 on tensor cores (``tensorcore_conv``, kernels/tc_conv.cu; on the numpy
backend its reference with TF32-rounded operands); so do input gradients (per phase of the
strides) and with them transposed convs' forwards.
"""
import math

import numpy as np

from .. import backend, config
from . import conv_geometry, conv_taps, launch, passes, precision, tensorcore, workspace
from . import epilogue as epilogues
from . import tensorcore_conv   # imports this module back: used only inside functions
from . import conv_half         # 16-bit activations (imports this module back)

__all__ = [
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_filter", "bias_backward",
    "conv2d_transpose_forward", "conv2d_transpose_backward_input",
    "conv2d_transpose_backward_filter",
]


def _plan(in_hw, kernel_hw, strides, padding, dilation):
    """Output size, padded buffer pads (>= 0) and window origin in the buffer, per axis."""
    out_hw = conv_geometry.conv_output_shape(in_hw, kernel_hw, strides, padding, dilation)
    if min(out_hw) < 1:
        raise ValueError(f"conv2d: input {tuple(in_hw)} with padding {padding}, kernel "
                         f"{tuple(kernel_hw)}, dilation {tuple(dilation)} gives output {out_hw}.")
    buffer_pads = tuple((max(b, 0), max(a, 0)) for b, a in padding)
    origin = tuple(max(-b, 0) for b, _ in padding)
    return out_hw, buffer_pads, origin


def _padded(x, buffer_pads):
    """x zero-padded, in a workspace buffer (only the caller's im2col reads it)."""
    if not any(any(p) for p in buffer_pads):
        return x
    (pt, pb), (pl, pr) = buffer_pads
    n, h, w, c = x.shape
    xp = workspace.buffer("conv.pad", (n, h + pt + pb, w + pl + pr, c), x.dtype)
    for border in (xp[:, :pt], xp[:, pt + h:], xp[:, pt:pt + h, :pl], xp[:, pt:pt + h, pl + w:]):
        border.fill(0)
    passes.copy_into(xp[:, pt:pt + h, pl:pl + w], x)
    return xp


def _im2col(x, kernel_hw, strides, padding, dilation, ones=False, keep=False):
    """``(N*OH*OW, kh*kw*C)`` patches of ``x`` (a workspace buffer, a new array with ``keep``,
    or x itself for a 1x1 conv that reads every pixel) and the output size ``(OH, OW)``. With
    ``ones``, patches that are copied get one more column, all ones, through which a GEMM adds a
    bias or sums a bias gradient (x itself never gets one: the caller checks the column count)."""
    n, h, w, c = x.shape
    out_hw, buffer_pads, origin = _plan((h, w), kernel_hw, strides, padding, dilation)
    if tuple(kernel_hw) == (1, 1) and tuple(strides) == (1, 1) and tuple(out_hw) == (h, w) \
            and not any(origin) and not any(any(p) for p in buffer_pads):
        return x.reshape(n * h * w, c), out_hw
    xp = _padded(x, buffer_pads)[:, origin[0]:, origin[1]:, :]
    sn, sh, sw, sc = xp.strides
    windows = np.lib.stride_tricks.as_strided(
        xp, shape=(n, *out_hw, *kernel_hw, c),
        strides=(sn, sh * strides[0], sw * strides[1], sh * dilation[0], sw * dilation[1], sc),
        writeable=False)
    rows, depth = n * out_hw[0] * out_hw[1], kernel_hw[0] * kernel_hw[1] * c
    shape = (rows, depth + ones)
    matrix = np.empty(shape, x.dtype) if keep else workspace.buffer("conv.cols", shape, x.dtype)
    cols = matrix[:, :depth].reshape(n, *out_hw, *kernel_hw, c)    # a view: rows split, columns split
    if kernel_hw[1] * c >= 16:
        passes.copy_into(cols, windows)    # one copy; its inner runs are kw*C long
    else:                                  # few channels: per tap, the inner runs are OW long
        taps = [(slice(None), slice(None), i, j) for i in range(kernel_hw[0]) for j in range(kernel_hw[1])]
        passes.copy_into(cols, windows, parts=taps)
    if ones:
        matrix[:, depth] = 1
    return matrix, out_hw


def conv2d_forward(x, w, b, strides, padding, dilation, activation=None, fold=None):
    """Cross-correlation ``y[n, o] = sum_j xpad[n, o*s + j*d] @ w[j] + b``.

    x ``(N, H, W, Cin)``, w ``(kh, kw, Cin, Cout)``, b ``(Cout,)`` or None
    -> y ``(N, OH, OW, Cout)``. ``activation``: an ``epilogue.Epilogue`` applied to y by the same
    kernel; ``fold = (gate, Epilogue)``: y gated by the activation's derivative instead (when this
    conv computes a transposed conv's input gradient; see ``epilogue``).
    """
    _expect_shape("conv2d_forward", "x", x.shape, (*x.shape[:3], w.shape[2]),
                  f"(w has shape {w.shape})")
    if precision.is_half(x.dtype):
        return conv_half.conv2d_forward(x, w, b, strides, padding, dilation, activation, fold)
    if _tf32(x, w):   # the epilogue then runs as a kernel of its own
        y = tensorcore_conv.conv2d_forward(x, w, b, strides, padding, dilation)
        return epilogues.apply_fold(epilogues.activate(y, activation), fold)
    if backend.current().runs_kernels:
        return _conv2d_forward_kernel(x, w, b, strides, padding, dilation, activation, fold)
    kh, kw, cin, cout = w.shape
    kernel = w.reshape(kh * kw * cin, cout)
    cols, out_hw = _im2col(x, (kh, kw), strides, padding, dilation, ones=b is not None)
    in_gemm = cols.shape[1] > kernel.shape[0]
    if in_gemm:
        # The bias rides in the GEMM: a last kernel row against the patches' column of ones.
        kernel = np.concatenate([kernel, b.reshape(1, cout)], dtype=w.dtype)
    y = cols @ kernel
    if b is not None and not in_gemm:
        passes.add_bias(y, b)
    y = y.reshape(x.shape[0], *out_hw, cout)
    return epilogues.apply_fold(epilogues.activate(y, activation), fold)


def conv2d_backward_input(dy, w, x_shape, strides, padding, dilation, fold=None):
    """Gradient of ``conv2d_forward`` with respect to x.

    dy ``(N, OH, OW, Cout)``, w ``(kh, kw, Cin, Cout)``, x_shape ``(N, H, W, Cin)`` -> dx.
    ``fold = (y, Epilogue)``: dx gated by the derivative of the activation whose output y (x's
    shape) was this conv's input (see ``epilogue``).
    """
    n, h, wd, cin = x_shape
    kh, kw = w.shape[:2]
    out_hw, buffer_pads, origin = _plan((h, wd), (kh, kw), strides, padding, dilation)
    if tuple(dy.shape[1:3]) != out_hw:
        raise ValueError(f"conv2d_backward_input: dy has spatial size {tuple(dy.shape[1:3])}; "
                         f"the geometry gives {out_hw}.")
    if precision.is_half(dy.dtype):
        return conv_half.conv2d_backward_input(dy, w, x_shape, strides, padding, dilation, fold)
    if _tf32(dy, w):
        return epilogues.apply_fold(tensorcore_conv.conv2d_backward_input(dy, w, x_shape, strides, padding,
                                                                           dilation), fold)
    if backend.current().runs_kernels:
        return _input_gradient_kernel("conv2d_backward_input", dy, w, None, x_shape, strides,
                                      padding, dilation, fold=fold)
    if fold is not None:
        return epilogues.apply_fold(conv2d_backward_input(dy, w, x_shape, strides, padding, dilation), fold)
    # Tap (i, j) reads x at base + stride * o on each axis; only what lands inside x is kept.
    bases = [[origin[a] - buffer_pads[a][0] + k * dilation[a] for k in range(w.shape[a])] for a in (0, 1)]
    taps, zero_phases = conv_taps.plan_taps(*bases, strides, out_hw, (h, wd))
    dx = np.empty((n, h, wd, cin), dtype=dy.dtype)
    for ph, pw in zero_phases:
        dx[:, ph::strides[0], pw::strides[1], :] = 0
    dy2 = dy.reshape(-1, dy.shape[-1])
    # One scratch buffer for every tap's GEMM: fresh 'dy2 @ w' temporaries cost page faults.
    scratch = workspace.buffer("conv.taps", (dy2.shape[0], cin), np.result_type(dy, w))
    for i, j, x_index, dy_index, assign in taps:
        if assign and tuple(strides) == (1, 1) and tuple(out_hw) == (h, wd):   # all of dx, one to one
            np.matmul(dy2, w[i, j].T, out=dx.reshape(dy2.shape[0], cin))
            continue
        np.matmul(dy2, w[i, j].T, out=scratch)
        target, tap = dx[(slice(None), *x_index)], scratch.reshape(n, *out_hw, cin)[(slice(None), *dy_index)]
        (passes.copy_into if assign else passes.add_into)(target, tap)
    return dx


def bias_backward(dy):
    """Gradient of a per-channel bias: ``dy`` summed over every axis but the last (ones @ dy);
    float32 for 16-bit dy."""
    if precision.is_half(dy.dtype):
        return conv_half.bias_backward(dy)
    if backend.current().runs_kernels:
        return _bias_backward_kernel(dy)
    dy2 = dy.reshape(-1, dy.shape[-1])
    return np.ones(dy2.shape[0], dtype=dy.dtype) @ dy2


def conv2d_backward_filter(dy, x, w_shape, strides, padding, dilation):
    """Gradients of ``conv2d_forward`` with respect to w and b.

    dy ``(N, OH, OW, Cout)``, x ``(N, H, W, Cin)``, w_shape ``(kh, kw, Cin, Cout)``
    -> ``(dw (kh, kw, Cin, Cout), db (Cout,))`` (float32 for 16-bit dy and x).
    """
    if precision.is_half(dy.dtype):
        return conv_half.conv2d_backward_filter(dy, x, w_shape, strides, padding, dilation)
    if _tf32(dy, x):
        return (tensorcore_conv.conv2d_backward_filter(dy, x, w_shape, strides, padding, dilation),
                bias_backward(dy))
    if not backend.current().runs_kernels:
        # One GEMM for both: the patches' column of ones turns into the bias gradient's row.
        both = _filter_gradient(dy, x, None, strides, padding, dilation, kernel_hw=w_shape[:2])
        if both.shape[0] > math.prod(w_shape[:3]):
            return both[:-1].reshape(w_shape), both[-1]
        return both.reshape(w_shape), bias_backward(dy)     # a 1x1 conv reading x in place
    return _filter_gradient_kernel(dy, x, w_shape, strides, padding, dilation, "conv2d_backward_filter",
                                   ("dy", "x"), with_bias=True)


def _filter_gradient(dy, x, w_shape, strides, padding, dilation, kernel_hw=None,
                     op="conv2d_backward_filter", names=("dy", "x")):
    """``dw = im2col(x).T @ dy``: the kernel gradient of a conv of x whose output gradient is dy.

    numpy backend only: with ``kernel_hw`` given (``w_shape`` unused), the result is the
    ``(rows, Cout)`` matrix, ending with the bias gradient's row when the patches were copied
    (they then carry a column of ones). ``op`` and ``names`` (the caller's names for dy and x)
    are what errors quote.
    """
    if backend.current().runs_kernels:
        return _filter_gradient_kernel(dy, x, w_shape, strides, padding, dilation, op, names)
    ones = kernel_hw is not None
    cols, out_hw = _im2col(x, tuple(kernel_hw if ones else w_shape[:2]), strides, padding, dilation, ones)
    if tuple(dy.shape[1:3]) != out_hw:
        raise ValueError(f"{op}: {names[0]} has spatial size {tuple(dy.shape[1:3])}; "
                         f"the geometry gives {out_hw}.")
    product = cols.T @ dy.reshape(-1, dy.shape[-1])
    return product if ones else product.reshape(w_shape)


def conv2d_transpose_forward(x, w, b, strides, padding, dilation, activation=None):
    """Transposed convolution: the full scatter ``y[i*s + j*d] += w[j] @ x[i]``, cropped.

    x ``(N, H, W, Cin)``, w ``(kh, kw, Cout, Cin)``, b ``(Cout,)`` or None; ``padding`` is
    the crop ``((top, bottom), (left, right))`` of the full scatter (negative: zeros added),
    from ``conv_geometry.conv_transpose_padding``. -> y ``(N, OH, OW, Cout)`` with
    ``OH = (H - 1) * sh + (kh - 1) * dh + 1 - top - bottom``. ``activation``: an
    ``epilogue.Epilogue`` applied by the same kernel.
    """
    _expect_shape("conv2d_transpose_forward", "x", x.shape, (*x.shape[:3], w.shape[3]),
                  f"(w has shape {w.shape})")
    if precision.is_half(x.dtype):
        return conv_half.conv2d_transpose_forward(x, w, b, strides, padding, dilation, activation)
    out_hw = conv_geometry.conv_transpose_output_shape(x.shape[1:3], w.shape[:2], strides,
                                                       padding, dilation)
    if _tf32(x, w) and backend.current().runs_kernels:   # tc_finish adds the bias and the activation
        y = tensorcore_conv.conv2d_backward_input(x, w, (x.shape[0], *out_hw, w.shape[2]), strides, padding,
                                                  dilation)
        return tensorcore.store(y, np.float32, bias=b, activation=activation, op="conv2d_transpose_forward")
    if backend.current().runs_kernels:
        return _input_gradient_kernel("conv2d_transpose_forward", x, w, b,
                                      (x.shape[0], *out_hw, w.shape[2]), strides, padding, dilation,
                                      names=("x", "y"), activation=activation)
    y = conv2d_backward_input(x, w, (x.shape[0], *out_hw, w.shape[2]), strides, padding, dilation)
    if b is not None:
        passes.add_bias(y, b)
    return epilogues.activate(y, activation)


def check_transpose_dy(op, dy, x_shape, w_shape, strides, padding, dilation):
    """Raise unless ``dy`` has the shape ``conv2d_transpose_forward`` gives for x and w.

    A dy of another size would still run (its conv is merely cropped or padded differently) and
    return gradients of some other problem, so the transposed conv's backward ops check first.
    """
    x_shape, w_shape = tuple(int(v) for v in x_shape), tuple(int(v) for v in w_shape)
    _expect_shape(op, "x", x_shape, (*x_shape[:3], w_shape[3]), f"(w has shape {w_shape})")
    out_hw = conv_geometry.conv_transpose_output_shape(x_shape[1:3], w_shape[:2], strides,
                                                       padding, dilation)
    _expect_shape(op, "dy", dy.shape, (x_shape[0], *out_hw, w_shape[2]),
                  f"(the output of conv2d_transpose_forward for x {x_shape}, w {w_shape})")


def conv2d_transpose_backward_input(dy, w, x_shape, strides, padding, dilation, fold=None):
    """Gradient of ``conv2d_transpose_forward`` with respect to x: a plain conv of dy.

    dy ``(N, OH, OW, Cout)``, w ``(kh, kw, Cout, Cin)`` -> dx ``x_shape = (N, H, W, Cin)``;
    ``fold`` as in ``conv2d_backward_input``.
    """
    check_transpose_dy("conv2d_transpose_backward_input", dy, x_shape, w.shape, strides, padding, dilation)
    return conv2d_forward(dy, w, None, strides, padding, dilation, fold=fold)   # of x's shape, given dy's


def conv2d_transpose_backward_filter(dy, x, w_shape, strides, padding, dilation):
    """Gradients of ``conv2d_transpose_forward`` with respect to w and b.

    dy ``(N, OH, OW, Cout)``, x ``(N, H, W, Cin)``, w_shape ``(kh, kw, Cout, Cin)``
    -> ``(dw (kh, kw, Cout, Cin), db (Cout,))``.
    """
    op = "conv2d_transpose_backward_filter"
    check_transpose_dy(op, dy, x.shape, w_shape, strides, padding, dilation)
    if precision.is_half(dy.dtype):
        return conv_half.conv2d_transpose_backward_filter(dy, x, w_shape, strides, padding, dilation)
    # The transposed conv is conv2d_backward_input(x, w), so its kernel gradient is the
    # conv's filter gradient with the roles of input (here dy) and output gradient (x) swapped.
    if _tf32(x, dy):
        dw = tensorcore_conv.conv2d_backward_filter(x, dy, w_shape, strides, padding, dilation, op=op,
                                                    names=("x", "dy"))
    else:
        dw = _filter_gradient(x, dy, w_shape, strides, padding, dilation, op=op, names=("x", "dy"))
    return dw, bias_backward(dy)


def _tf32(*arrays):
    """Whether float32 products of ``arrays`` run as TF32 (precision "high", a backend that can)."""
    return config.tf32_enabled(*arrays) and tensorcore.usable()


# Kernel paths (kernels/conv.cu): float32, bfloat16 or float16 x / w / dy (the kernels are templates
# on the element type; b, dw and db stay float32). Every call launches conv.cu kernels, nothing
# is computed in NumPy. A block owns a _TILE x _TILE tile of its GEMM's output.

_TILE = 64                  # conv.cu's TILE_M == TILE_N
_TILE_K = 16                # conv.cu's TILE_K: filter-gradient splits are multiples of it
_BIAS_COLUMNS = 32          # conv.cu's BIAS_COLS: channels one bias_backward block owns
_SPLIT_BLOCKS = 128         # split a long gradient reduction until about this many blocks run...
_SPLIT_MIN_PIXELS = 256     # ...keeping at least this many pixels in each filter-gradient split
_SPLIT_MIN_ROWS = 512       # ...and this many rows in each bias-gradient split


def _expect_shape(op, name, shape, expected, given=""):
    """A ValueError naming ``op`` and ``name`` unless ``shape`` is ``expected`` (for ``given``)."""
    if tuple(shape) != tuple(expected):
        reason = f" {given}" if given else ""
        raise ValueError(f"{op}: {name} has shape {tuple(shape)}; expected {tuple(expected)}{reason}.")


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
