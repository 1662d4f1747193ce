"""Grouped 2-D convolution (Conv2D's ``groups=``), NHWC, over the plain conv ops.

Group ``g`` of ``groups`` convolves input channels ``[g*Cin/G, (g+1)*Cin/G)`` with kernel
columns ``[g*Cout/G, (g+1)*Cout/G)``: kernel ``w (kh, kw, Cin/G, Cout)`` as Keras stores it.
Each group is one call of ``conv.conv2d_*`` (on a kernel backend the implicit-GEMM kernels of
conv.cu), its channels cut out and joined back by the concatenation ops (``shape.concat_*``,
whose kernels split along the last axis), so a grouped conv is G ordinary convs plus the
copies; a depthwise conv (G = Cin) has kernels of its own (``primitives.depthwise``).
"""
from . import conv, shape

__all__ = ["grouped_conv2d_forward", "grouped_conv2d_backward_input", "grouped_conv2d_backward_filter"]


def _split(a, groups):
    return shape.concat_backward(a, [a.shape[-1] // groups] * groups, -1)


def grouped_conv2d_forward(x, w, b, strides, padding, dilation, groups):
    """x ``(N, H, W, Cin)``, w ``(kh, kw, Cin/G, Cout)``, b ``(Cout,)`` or None -> ``(N, OH, OW, Cout)``."""
    xs, ws = _split(x, groups), _split(w, groups)
    bs = _split(b, groups) if b is not None else [None] * groups
    return shape.concat_forward([conv.conv2d_forward(*args, strides, padding, dilation)
                                 for args in zip(xs, ws, bs)], -1)


def grouped_conv2d_backward_input(dy, w, x_shape, strides, padding, dilation, groups):
    """dy ``(N, OH, OW, Cout)`` -> dx of ``x_shape``."""
    part_shape = (*x_shape[:3], x_shape[3] // groups)
    return shape.concat_forward([conv.conv2d_backward_input(d, k, part_shape, strides, padding, dilation)
                                 for d, k in zip(_split(dy, groups), _split(w, groups))], -1)


def grouped_conv2d_backward_filter(dy, x, w_shape, strides, padding, dilation, groups):
    """``(dw (kh, kw, Cin/G, Cout), db (Cout,))``."""
    part_shape = (*w_shape[:3], w_shape[3] // groups)
    parts = [conv.conv2d_backward_filter(d, xg, part_shape, strides, padding, dilation)
             for d, xg in zip(_split(dy, groups), _split(x, groups))]
    return shape.concat_forward([dw for dw, _ in parts], -1), shape.concat_forward([db for _, db in parts], -1)
