"""Where a 2-D convolution reads: the geometry checks of conv.py's ops and the NumPy reference's
patch matrix.

``_plan``: the output size, the zero pads a padded buffer needs and the window origin in that
buffer, per axis (a negative pad crops the input instead). ``_im2col``: the
``(N*OH*OW, kh*kw*C)`` patches of the padded input as one strided view and one copy, which the
NumPy forward and filter gradient multiply (tensorcore_conv's and conv_fused's references too).
``_expect_shape``: the shape check whose message every conv op raises.
"""
import numpy as np

from . import conv_geometry, passes, workspace


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


def _expect_shape(op, name, shape, expected, given=""):
    """A ValueError naming ``op`` and ``name`` unless ``shape`` is ``expected`` (for ``given``)."""
    if tuple(shape) != tuple(expected):
        reason = f" {given}" if given else ""
        raise ValueError(f"{op}: {name} has shape {tuple(shape)}; expected {tuple(expected)}{reason}.")
