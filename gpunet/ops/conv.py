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
* backward-input: one GEMM per kernel offset, ``dy @ w[i, j].T``, added with a strided
  slice into a padded buffer (no ``kh*kw``-times-larger col2im buffer), then cropped.

Every op keeps the input dtype (float64 in gradient checks).
"""
import numpy as np

from . import conv_geometry

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
    if not any(any(p) for p in buffer_pads):
        return x
    return np.pad(x, ((0, 0), *buffer_pads, (0, 0)))


def _im2col(x, kernel_hw, strides, padding, dilation):
    """``(N*OH*OW, kh*kw*C)`` patches of ``x`` and the output size ``(OH, OW)``."""
    n, h, w, c = x.shape
    out_hw, buffer_pads, origin = _plan((h, w), kernel_hw, strides, padding, dilation)
    xp = _padded(x, buffer_pads)[:, origin[0]:, origin[1]:, :]
    sn, sh, sw, sc = xp.strides
    windows = np.lib.stride_tricks.as_strided(
        xp, shape=(n, *out_hw, *kernel_hw, c),
        strides=(sn, sh * strides[0], sw * strides[1], sh * dilation[0], sw * dilation[1], sc),
        writeable=False)
    return windows.reshape(n * out_hw[0] * out_hw[1], -1), out_hw


def conv2d_forward(x, w, b, strides, padding, dilation):
    """Cross-correlation ``y[n, o] = sum_j xpad[n, o*s + j*d] @ w[j] + b``.

    x ``(N, H, W, Cin)``, w ``(kh, kw, Cin, Cout)``, b ``(Cout,)`` or None
    -> y ``(N, OH, OW, Cout)``.
    """
    kh, kw, cin, cout = w.shape
    cols, out_hw = _im2col(x, (kh, kw), strides, padding, dilation)
    y = cols @ w.reshape(kh * kw * cin, cout)
    if b is not None:
        y += b
    return y.reshape(x.shape[0], *out_hw, cout)


def conv2d_backward_input(dy, w, x_shape, strides, padding, dilation):
    """Gradient of ``conv2d_forward`` with respect to x.

    dy ``(N, OH, OW, Cout)``, w ``(kh, kw, Cin, Cout)``, x_shape ``(N, H, W, Cin)`` -> dx.
    """
    n, h, wd, cin = x_shape
    kh, kw = w.shape[:2]
    out_hw, buffer_pads, origin = _plan((h, wd), (kh, kw), strides, padding, dilation)
    if tuple(dy.shape[1:3]) != out_hw:
        raise ValueError(f"conv2d_backward_input: dy has spatial size {tuple(dy.shape[1:3])}; "
                         f"the geometry gives {out_hw}.")
    (pt, pb), (pl, pr) = buffer_pads
    dxp = np.zeros((n, h + pt + pb, wd + pl + pr, cin), dtype=dy.dtype)
    dy2 = dy.reshape(-1, dy.shape[-1])
    # One scratch buffer for every tap's GEMM: fresh 'dy2 @ w' temporaries cost page faults.
    scratch = np.empty((dy2.shape[0], cin), dtype=np.result_type(dy, w))
    span_h = (out_hw[0] - 1) * strides[0] + 1
    span_w = (out_hw[1] - 1) * strides[1] + 1
    for i in range(kh):
        top = origin[0] + i * dilation[0]
        for j in range(kw):
            left = origin[1] + j * dilation[1]
            np.matmul(dy2, w[i, j].T, out=scratch)
            dxp[:, top:top + span_h:strides[0], left:left + span_w:strides[1], :] += \
                scratch.reshape(n, *out_hw, cin)
    return dxp[:, pt:pt + h, pl:pl + wd, :]


def bias_backward(dy):
    """Gradient of a per-channel bias: ``dy`` summed over every axis but the last (ones @ dy)."""
    dy2 = dy.reshape(-1, dy.shape[-1])
    return np.ones(dy2.shape[0], dtype=dy.dtype) @ dy2


def conv2d_backward_filter(dy, x, w_shape, strides, padding, dilation):
    """Gradients of ``conv2d_forward`` with respect to w and b.

    dy ``(N, OH, OW, Cout)``, x ``(N, H, W, Cin)``, w_shape ``(kh, kw, Cin, Cout)``
    -> ``(dw (kh, kw, Cin, Cout), db (Cout,))``.
    """
    return _filter_gradient(dy, x, w_shape, strides, padding, dilation), bias_backward(dy)


def _filter_gradient(dy, x, w_shape, strides, padding, dilation):
    """``dw = im2col(x).T @ dy``: the kernel gradient of a conv of x whose output gradient is dy."""
    cols, out_hw = _im2col(x, tuple(w_shape[:2]), strides, padding, dilation)
    if tuple(dy.shape[1:3]) != out_hw:
        raise ValueError(f"conv2d_backward_filter: dy has spatial size {tuple(dy.shape[1:3])}; "
                         f"the geometry gives {out_hw}.")
    return (cols.T @ dy.reshape(-1, dy.shape[-1])).reshape(w_shape)


def conv2d_transpose_forward(x, w, b, strides, padding, dilation):
    """Transposed convolution: the full scatter ``y[i*s + j*d] += w[j] @ x[i]``, cropped.

    x ``(N, H, W, Cin)``, w ``(kh, kw, Cout, Cin)``, b ``(Cout,)`` or None; ``padding`` is
    the crop ``((top, bottom), (left, right))`` of the full scatter (negative: zeros added),
    from ``conv_geometry.conv_transpose_padding``. -> y ``(N, OH, OW, Cout)`` with
    ``OH = (H - 1) * sh + (kh - 1) * dh + 1 - top - bottom``.
    """
    out_hw = conv_geometry.conv_transpose_output_shape(x.shape[1:3], w.shape[:2], strides,
                                                       padding, dilation)
    y = conv2d_backward_input(x, w, (x.shape[0], *out_hw, w.shape[2]), strides, padding, dilation)
    if b is not None:
        y += b
    return y


def conv2d_transpose_backward_input(dy, w, x_shape, strides, padding, dilation):
    """Gradient of ``conv2d_transpose_forward`` with respect to x: a plain conv of dy.

    dy ``(N, OH, OW, Cout)``, w ``(kh, kw, Cout, Cin)`` -> dx ``x_shape = (N, H, W, Cin)``.
    """
    dx = conv2d_forward(dy, w, None, strides, padding, dilation)
    if dx.shape != tuple(x_shape):
        raise ValueError(f"conv2d_transpose_backward_input: dy {tuple(dy.shape)} gives dx "
                         f"{dx.shape}; expected {tuple(x_shape)}.")
    return dx


def conv2d_transpose_backward_filter(dy, x, w_shape, strides, padding, dilation):
    """Gradients of ``conv2d_transpose_forward`` with respect to w and b.

    dy ``(N, OH, OW, Cout)``, x ``(N, H, W, Cin)``, w_shape ``(kh, kw, Cout, Cin)``
    -> ``(dw (kh, kw, Cout, Cin), db (Cout,))``.
    """
    # The transposed conv is conv2d_backward_input(x, w), so its kernel gradient is the
    # conv's filter gradient with the roles of input (here dy) and output gradient (x) swapped.
    dw = _filter_gradient(x, dy, w_shape, strides, padding, dilation)
    return dw, bias_backward(dy)
