"""A conv layer's backward in one call, so that its parts share work (numpy backend).

* Conv2D: ``conv2d_forward_saving`` keeps the forward's patches of x (im2col, with the column of
  ones that carries the bias); ``conv2d_backward`` multiplies them by dy for the kernel and bias
  gradients instead of building them again.
* Conv2DTranspose: its input gradient is a plain (strided) conv of ``dy`` and its kernel gradient
  ``im2col(dy)^T @ x``; ``conv2d_transpose_backward`` builds those patches of dy once for both.

A kernel backend runs the separate ops of ``gpunet.primitives.conv`` (its kernels gather patches from
the tensors themselves and keep nothing); the saved patches are then None.
"""
import numpy as np

from .. import backend
from . import conv, passes, precision
from .epilogue import apply_fold as passes_fold

__all__ = ["conv2d_forward_saving", "conv2d_backward", "conv2d_transpose_backward"]


def conv2d_forward_saving(x, w, b, strides, padding, dilation):
    """``(y, saved)``: y as ``conv2d_forward``; ``saved`` the patches ``conv2d_backward`` reuses
    (``(N*OH*OW, kh*kw*Cin [+ 1])``, a view of x for a 1x1 conv; None on a kernel backend)."""
    if backend.current().runs_kernels or precision.is_half(x.dtype):   # 16-bit: conv_half's reference
        return conv.conv2d_forward(x, w, b, strides, padding, dilation), None
    kh, kw, cin, cout = w.shape
    cols, out_hw = conv._im2col(x, (kh, kw), strides, padding, dilation, ones=b is not None, keep=True)
    kernel = w.reshape(kh * kw * cin, cout)
    if cols.shape[1] > kernel.shape[0]:   # the bias as a last kernel row against the ones
        kernel = np.concatenate([kernel, b.reshape(1, cout)], dtype=w.dtype)
    y = cols @ kernel
    if b is not None and cols.shape[1] == kh * kw * cin:
        passes.add_bias(y, b)
    return y.reshape(x.shape[0], *out_hw, cout), cols


def conv2d_backward(dy, x, w, strides, padding, dilation, need_dx=True, saved=None, fold=None):
    """``(dx, dw, db)`` of ``conv2d_forward``; dx None unless ``need_dx``. ``saved``: the patches
    from ``conv2d_forward_saving`` for this x (or None: the separate ops run). ``fold``: as in
    ``conv.conv2d_backward_input``."""
    dx = conv.conv2d_backward_input(dy, w, x.shape, strides, padding, dilation, fold=fold) if need_dx else None
    if saved is None:
        return (dx, *conv.conv2d_backward_filter(dy, x, w.shape, strides, padding, dilation))
    both = saved.T @ dy.reshape(-1, dy.shape[-1])
    if both.shape[0] > w.shape[0] * w.shape[1] * w.shape[2]:
        return dx, both[:-1].reshape(w.shape), both[-1]
    return dx, both.reshape(w.shape), conv.bias_backward(dy)


def conv2d_transpose_backward(dy, x, w, strides, padding, dilation, need_dx=True, saved=None, fold=None):
    """``(dx, dw, db)`` of ``conv2d_transpose_forward(x, w, b, strides, padding, dilation)``.

    dy ``(N, OH, OW, Cout)``, x ``(N, H, W, Cin)``, w ``(kh, kw, Cout, Cin)`` -> dx like x (None
    when ``need_dx`` is False), dw like w, db ``(Cout,)``. ``saved`` is unused (the forward's
    work has nothing the backward can reuse). ``fold``: as in ``conv.conv2d_backward_input``.
    """
    # A dy of the wrong size would still give patches (and gradients of another problem).
    conv.check_transpose_dy("conv2d_transpose_backward", dy, x.shape, w.shape, strides, padding, dilation)
    if backend.current().runs_kernels or precision.is_half(dy.dtype):
        dx = conv.conv2d_transpose_backward_input(dy, w, x.shape, strides, padding, dilation, fold=fold) \
            if need_dx else None
        dw, db = conv.conv2d_transpose_backward_filter(dy, x, w.shape, strides, padding, dilation)
        return dx, dw, db
    kh, kw, _, cin = w.shape
    cols, _ = conv._im2col(dy, (kh, kw), strides, padding, dilation)   # x's height and width: dy was checked
    dx = passes_fold((cols @ w.reshape(-1, cin)).reshape(x.shape), fold) if need_dx else None
    dw = (cols.T @ x.reshape(-1, cin)).reshape(w.shape)
    return dx, dw, conv.bias_backward(dy)
