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
kernels of ``kernels/conv.cu``, launched by the ``_..._kernel`` functions of ``conv_launch``;
the transposed conv maps onto them exactly as its NumPy code maps onto the conv ops. The
geometry plan and the im2col patches are ``conv_plan``'s.

Under ``gn.config.set_float32_matmul_precision("high")`` float32 forward and filter-gradient
products run as TF32 on tensor cores (``tensorcore_conv``, kernels/tc_conv.cu; on the numpy
backend its reference with TF32-rounded operands); so do input gradients (per phase of the
strides) and with them transposed convs' forwards.
"""
import math

import numpy as np

from .. import backend, config
from . import conv_geometry, conv_taps, passes, precision, tensorcore, workspace
from . import epilogue as epilogues
from .conv_plan import _expect_shape, _im2col, _plan
# The kernel paths (conv_launch.py); conv_half, tensorcore_conv, depthwise and tests reach the
# helpers through this module as conv._... (the split constants live in conv_launch).
from .conv_launch import (  # noqa: F401
    _MAX_BLOCKS, _SPLIT_MIN_PIXELS, _bias_backward_kernel, _conv2d_forward_kernel, _filter_gradient_kernel,
    _geometry, _input_gradient_kernel, _input_gradient_plan, _output, _splits, _sum_splits)
from . import tensorcore_conv   # imports this module back: used only inside functions
from . import conv_half         # 16-bit activations (imports this module back)

__all__ = [
    "conv2d_forward", "conv2d_backward_input", "conv2d_backward_filter", "bias_backward",
    "conv2d_transpose_forward", "conv2d_transpose_backward_input",
    "conv2d_transpose_backward_filter",
]


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

