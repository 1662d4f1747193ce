"""Neural-network ops with keras.ops.nn's names: activations, conv / conv_transpose, pooling,
batch_normalization and the cross-entropies (per sample, unreduced, as keras.ops gives them).

relu, sigmoid, tanh, softmax, conv, conv_transpose and the pools run the very forward / backward
pairs the built-in layers run (``gpunet/primitives``); the rest are compositions of gn.ops, so
the tape differentiates them op by op.
"""
import numpy as np

from ..autodiff import as_tensor, operands, record
from ..primitives import activation as act_ops
from ..primitives import conv as conv_ops
from ..primitives import conv_geometry as geometry
from ..primitives import pool as pool_ops, precision
from . import math as m
from .array import reshape
from .core import cast, one_hot

__all__ = ["relu", "sigmoid", "tanh", "softmax", "log_softmax", "gelu", "silu", "swish", "conv",
           "conv_transpose", "max_pool", "average_pool", "batch_normalization", "binary_crossentropy",
           "categorical_crossentropy", "sparse_categorical_crossentropy", "one_hot"]

EPSILON = 1e-7     # Keras's backend.epsilon(): probabilities are clipped to [EPSILON, 1 - EPSILON]


def _float(op, x):
    t, = operands(op, x)
    return t if precision.is_float(t.dtype) else as_tensor(t, op, "float32")


def relu(x):
    """``max(x, 0)``."""
    t = _float("relu", x)
    return record("relu", act_ops.relu_forward(t.data), (t,), lambda dy, n, a: (act_ops.relu_backward(dy, a),),
                  saved=(t,))


def sigmoid(x):
    """``1 / (1 + exp(-x))``."""
    t = _float("sigmoid", x)
    return record("sigmoid", act_ops.sigmoid_forward(t.data), (t,),
                  lambda dy, n, y: (act_ops.sigmoid_backward(dy, y),), save_output=True)


def tanh(x):
    t = _float("tanh", x)
    return record("tanh", act_ops.tanh_forward(t.data), (t,), lambda dy, n, y: (act_ops.tanh_backward(dy, y),),
                  save_output=True)


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis``, the maximum taken out first."""
    t = _float("softmax", x)
    return record("softmax", act_ops.softmax_forward(t.data, axis), (t,),
                  lambda dy, n, y: (act_ops.softmax_backward(dy, y, axis),), save_output=True)


def log_softmax(x, axis=-1):
    """``x - logsumexp(x)`` along ``axis``: stable for large logits."""
    return m.subtract(x, m.logsumexp(x, axis=axis, keepdims=True))


def gelu(x, approximate=True):
    """Gaussian error linear unit, any shape. ``approximate=True`` (keras.ops' default) is the tanh
    form ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``, False the exact ``0.5 x (1 + erf(x /
    sqrt(2)))``; each one fused forward and backward kernel (the layers' ``activation="gelu"``)."""
    x = _float("gelu", x)
    name = "gelu_approximate" if approximate else "gelu"
    return record("gelu", act_ops.unary_forward(name, x.data), (x,),
                  lambda dy, n, a: (act_ops.unary_backward(name, dy, a),), saved=(x,))


def silu(x):
    """``x * sigmoid(x)`` (also ``swish``)."""
    return m.multiply(x, sigmoid(x))


swish = silu


def _pair(value, what, op):
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"{op}: {what} must be an int or a pair of ints for 2-D inputs; received {value!r}.")
    return tuple(int(v) for v in pair)


def _check_nhwc(op, t):
    if t.ndim != 4:
        raise ValueError(f"{op}: gn.ops runs 2-D convolution and pooling on channels_last inputs "
                         f"(batch, height, width, channels); received shape {t.shape}.")


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """2-D convolution: inputs (N, H, W, Cin), kernel (kh, kw, Cin, Cout) -> (N, OH, OW, Cout)."""
    x, w = operands("conv", inputs, kernel)
    _check_nhwc("conv", x)
    strides, dilation = _pair(strides, "strides", "conv"), _pair(dilation_rate, "dilation_rate", "conv")
    pads = geometry.conv_padding(geometry.normalize_padding_spec(padding), x.shape[1:3], w.shape[:2],
                                 strides, dilation)
    x_shape, w_shape = x.shape, w.shape

    def backward(dy, needs, xd, wd):
        dx = conv_ops.conv2d_backward_input(dy, wd, x_shape, strides, pads, dilation) if needs[0] else None
        dw = conv_ops.conv2d_backward_filter(dy, xd, w_shape, strides, pads, dilation)[0] if needs[1] else None
        return dx, dw
    return record("conv", conv_ops.conv2d_forward(x.data, w.data, None, strides, pads, dilation), (x, w),
                  backward, saved=(x, w))


def conv_transpose(inputs, kernel, strides=1, padding="valid", output_padding=None, data_format=None,
                   dilation_rate=1):
    """2-D transposed convolution: inputs (N, H, W, Cin), kernel (kh, kw, Cout, Cin) as Keras."""
    x, w = operands("conv_transpose", inputs, kernel)
    _check_nhwc("conv_transpose", x)
    strides = _pair(strides, "strides", "conv_transpose")
    dilation = _pair(dilation_rate, "dilation_rate", "conv_transpose")
    extra = None if output_padding is None else _pair(output_padding, "output_padding", "conv_transpose")
    crops = geometry.conv_transpose_padding(geometry.normalize_padding_spec(padding), w.shape[:2], strides,
                                            dilation, extra)
    x_shape, w_shape = x.shape, w.shape

    def backward(dy, needs, xd, wd):
        dx = conv_ops.conv2d_transpose_backward_input(dy, wd, x_shape, strides, crops, dilation) if needs[0] else None
        dw = conv_ops.conv2d_transpose_backward_filter(dy, xd, w_shape, strides, crops, dilation)[0] \
            if needs[1] else None
        return dx, dw
    return record("conv_transpose", conv_ops.conv2d_transpose_forward(x.data, w.data, None, strides, crops, dilation),
                  (x, w), backward, saved=(x, w))


def _pool_settings(op, t, pool_size, strides, padding):
    _check_nhwc(op, t)
    pool = _pair(pool_size, "pool_size", op)
    stride = pool if strides is None else _pair(strides, "strides", op)
    padding = str(padding).lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"{op}: padding must be 'valid' or 'same'; received {padding!r}.")
    return pool, stride, padding


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Max pooling over (N, H, W, C) windows; ``strides`` defaults to ``pool_size``."""
    x = _float("max_pool", inputs)
    pool, stride, padding = _pool_settings("max_pool", x, pool_size, strides, padding)
    y, argmax = pool_ops.max_pool2d_forward(x.data, pool, stride, padding)
    x_shape = x.shape
    return record("max_pool", y, (x,), lambda dy, n: (
        pool_ops.max_pool2d_backward(dy, argmax, x_shape, pool, stride, padding),))


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """Average pooling over (N, H, W, C) windows ("same": each window divided by its real cells)."""
    x = _float("average_pool", inputs)
    pool, stride, padding = _pool_settings("average_pool", x, pool_size, strides, padding)
    x_shape = x.shape
    return record("average_pool", pool_ops.avg_pool2d_forward(x.data, pool, stride, padding), (x,),
                  lambda dy, n: (pool_ops.avg_pool2d_backward(dy, x_shape, pool, stride, padding),))


def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    """``(x - mean) / sqrt(variance + epsilon) * scale + offset``; the 1-D statistics run along ``axis``."""
    x = _float("batch_normalization", x)
    axis = int(axis) % x.ndim
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]

    def along(v):
        return reshape(v, shape)
    out = m.divide(m.subtract(x, along(mean)), m.sqrt(m.add(along(variance), float(epsilon))))
    if scale is not None:
        out = m.multiply(out, along(scale))
    if offset is not None:
        out = m.add(out, along(offset))
    return out


def binary_crossentropy(target, output, from_logits=False):
    """Elementwise binary cross-entropy (no reduction), as keras.ops.binary_crossentropy."""
    target, output = operands("binary_crossentropy", target, output)
    if from_logits:   # max(x, 0) - x * z + log(1 + exp(-|x|)), stable for any logit
        return m.add(m.subtract(relu(output), m.multiply(output, target)), m.log1p(m.exp(m.negative(m.abs(output)))))
    output = m.clip(output, EPSILON, 1.0 - EPSILON)
    return m.negative(m.add(m.multiply(target, m.log(output)),
                            m.multiply(m.subtract(1.0, target), m.log(m.subtract(1.0, output)))))


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Cross-entropy along ``axis`` against one-hot (or soft) targets: shape of output without axis."""
    target, output = operands("categorical_crossentropy", target, output)
    if target.shape != output.shape:
        raise ValueError(f"categorical_crossentropy: target and output need one shape; received {target.shape} "
                         f"and {output.shape}.")
    if from_logits:
        return m.negative(m.sum(m.multiply(target, log_softmax(output, axis=axis)), axis=axis))
    output = m.divide(output, m.sum(output, axis=axis, keepdims=True))
    output = m.clip(output, EPSILON, 1.0 - EPSILON)
    return m.negative(m.sum(m.multiply(target, m.log(output)), axis=axis))


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Cross-entropy against integer class labels: target shape = output shape without ``axis``."""
    output = _float("sparse_categorical_crossentropy", output)
    labels = as_tensor(target, "sparse_categorical_crossentropy")
    if labels.ndim == output.ndim and labels.shape[-1] == 1:
        labels = reshape(labels, labels.shape[:-1])
    if labels.dtype.kind == "f":
        labels = cast(labels, "int32")
    hot = one_hot(labels, output.shape[axis], axis=axis, dtype=output.dtype)
    return categorical_crossentropy(hot, output, from_logits=from_logits, axis=axis)
