"""The conv ops of ``conv.py`` with 16-bit activations (bfloat16 / float16): where each product runs.

``conv.py``'s public functions hand their call here when x (or dy) is bfloat16 or float16; the
signatures and shapes are theirs. Operands x, w, dy share one 16-bit dtype (a layer under a mixed
policy casts its float32 kernel to the compute dtype); a bias may be float32 or that dtype and is
used as float32. Results:

* y, dx (and a transposed conv's y): the 16-bit dtype, rounded once from float32 after the bias and
  the activation (or the folded activation gradient, whose gate is read in the 16-bit dtype).
* dw, db: float32 (weight gradients go to float32 variables).

Routes (kernel backends):

* forward, and a transposed conv's input gradient (a conv of dy): ``tensorcore_conv`` (bf16 / fp16
  mma, float32 accumulators) then ``tensorcore.store`` (tc_finish: bias, activation, one rounding).
* input gradient, and a transposed conv's forward: ``tensorcore_conv``'s input gradient (one GEMM
  per phase of the strides), then ``tensorcore.store``.
* filter gradient: ``tensorcore_conv`` (float32 dw); bias gradient: conv.cu's ``bias_backward<T>``.
* where tensor cores are not usable (the cuda backend below sm_80), every product runs conv.cu's
  kernels instantiated for the 16-bit type.

NumPy reference: the inputs widened to float32 (exact), ``conv.py``'s float32 reference, the
16-bit outputs narrowed once (``precision.widen`` / ``narrow``). Every product of two 16-bit values
is exact in float32 and sums are float32 on every path, so the backends differ by float32
summation order before the one rounding.
"""
from .. import backend
from . import conv, conv_geometry, precision, tensorcore, tensorcore_conv

__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_filter", "bias_backward",
           "conv2d_transpose_forward", "conv2d_transpose_backward_filter"]


def _fold32(fold):
    return None if fold is None else (precision.widen(fold[0]), fold[1])


def _reference(fn, *arrays):
    """conv.py's float32 NumPy reference on the widened arrays."""
    return fn(*(None if a is None else precision.widen(a) for a in arrays))


def conv2d_forward(x, w, b, strides, padding, dilation, activation=None, fold=None):
    op = "conv2d_forward"
    dtype = tensorcore.same_dtype(op, ("x", "w"), x, w)
    b = tensorcore.float32_bias(op, b)
    if not backend.current().runs_kernels:
        y = _reference(lambda x, w: conv.conv2d_forward(x, w, b, strides, padding, dilation, activation,
                                                        _fold32(fold)), x, w)
        return precision.narrow(y, dtype)
    if tensorcore.usable():
        y = tensorcore_conv.conv2d_forward(x, w, b, strides, padding, dilation)
        return tensorcore.store(y, dtype, activation=activation, fold=fold)
    return conv._conv2d_forward_kernel(x, w, b, strides, padding, dilation, activation, fold)


def conv2d_backward_input(dy, w, x_shape, strides, padding, dilation, fold=None):
    op = "conv2d_backward_input"
    dtype = tensorcore.same_dtype(op, ("dy", "w"), dy, w)
    if not backend.current().runs_kernels:
        dx = _reference(lambda dy, w: conv.conv2d_backward_input(dy, w, x_shape, strides, padding, dilation,
                                                                 _fold32(fold)), dy, w)
        return precision.narrow(dx, dtype)
    if tensorcore.usable():
        dx = tensorcore_conv.conv2d_backward_input(dy, w, x_shape, strides, padding, dilation)
        return tensorcore.store(dx, dtype, fold=fold)
    return conv._input_gradient_kernel(op, dy, w, None, x_shape, strides, padding, dilation, fold=fold)


def bias_backward(dy):
    """dy summed over every axis but the last, float32 (conv.cu's bias_backward<T>)."""
    if backend.current().runs_kernels:
        return conv._bias_backward_kernel(dy)
    return conv.bias_backward(precision.widen(dy))


def conv2d_backward_filter(dy, x, w_shape, strides, padding, dilation):
    op = "conv2d_backward_filter"
    tensorcore.same_dtype(op, ("dy", "x"), dy, x)
    if not backend.current().runs_kernels:
        return _reference(lambda dy, x: conv.conv2d_backward_filter(dy, x, w_shape, strides, padding, dilation),
                          dy, x)
    if tensorcore.usable():
        return (tensorcore_conv.conv2d_backward_filter(dy, x, w_shape, strides, padding, dilation),
                bias_backward(dy))
    return conv._filter_gradient_kernel(dy, x, w_shape, strides, padding, dilation, op, ("dy", "x"),
                                        with_bias=True)


def conv2d_transpose_forward(x, w, b, strides, padding, dilation, activation=None):
    op = "conv2d_transpose_forward"
    dtype = tensorcore.same_dtype(op, ("x", "w"), x, w)
    b = tensorcore.float32_bias(op, b)
    if not backend.current().runs_kernels:
        y = _reference(lambda x, w: conv.conv2d_transpose_forward(x, w, b, strides, padding, dilation,
                                                                  activation), x, w)
        return precision.narrow(y, dtype)
    out_hw = conv_geometry.conv_transpose_output_shape(x.shape[1:3], w.shape[:2], strides, padding, dilation)
    y_shape = (x.shape[0], *out_hw, w.shape[2])
    if tensorcore.usable():
        y = tensorcore_conv.conv2d_backward_input(x, w, y_shape, strides, padding, dilation)
        return tensorcore.store(y, dtype, bias=b, activation=activation)
    return conv._input_gradient_kernel(op, x, w, b, y_shape, strides, padding, dilation, names=("x", "y"),
                                       activation=activation)


def conv2d_transpose_backward_filter(dy, x, w_shape, strides, padding, dilation):
    op = "conv2d_transpose_backward_filter"
    tensorcore.same_dtype(op, ("dy", "x"), dy, x)
    if not backend.current().runs_kernels:
        return _reference(lambda dy, x: conv.conv2d_transpose_backward_filter(dy, x, w_shape, strides, padding,
                                                                              dilation), dy, x)
    # The transposed conv's kernel gradient is the conv's with input (dy) and output gradient (x) swapped.
    if tensorcore.usable():
        dw = tensorcore_conv.conv2d_backward_filter(x, dy, w_shape, strides, padding, dilation, op=op,
                                                    names=("x", "dy"))
    else:
        dw = conv._filter_gradient_kernel(x, dy, w_shape, strides, padding, dilation, op, ("x", "dy"))
    return dw, bias_backward(dy)
