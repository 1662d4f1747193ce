"""Elementwise activations and softmax: forward and backward side by side.

Every function takes and returns arrays of any shape and keeps the input dtype. Each backward
says which saved array it needs (the forward input ``x`` or its output ``y``): the layer keeps
exactly that one.
"""
import numpy as np


def relu_forward(x, max_value=None, negative_slope=0.0, threshold=0.0):
    """Rectified linear unit in Keras's general form; the defaults give ``max(x, 0)``.

    ``y = min(x, max_value)`` where ``x > threshold`` (and ``x >= 0``),
    ``negative_slope * (x - threshold)`` below the threshold, else 0.
    """
    if max_value is None and negative_slope == 0.0 and threshold == 0.0:
        return np.maximum(x, x.dtype.type(0))
    y = np.where(x > threshold, x, x.dtype.type(0))
    y = np.clip(y, 0, max_value) if max_value is not None else np.maximum(y, x.dtype.type(0))
    if negative_slope != 0.0:
        y = y - negative_slope * np.maximum(threshold - x, x.dtype.type(0))
    return y.astype(x.dtype, copy=False)


def relu_backward(dy, x, max_value=None, negative_slope=0.0, threshold=0.0):
    """Gradient of :func:`relu_forward`; needs the input ``x``. A multiply by a mask."""
    if max_value is None and negative_slope == 0.0 and threshold == 0.0:
        return dy * (x > 0)
    passes = (x > threshold) & (x > 0)
    if max_value is not None:
        passes &= x < max_value
    dx = dy * passes
    if negative_slope != 0.0:
        dx = dx + dy * (negative_slope * (x < threshold))
    return dx.astype(dy.dtype, copy=False)


def leaky_relu_forward(x, negative_slope=0.3):
    """``x`` where positive, ``negative_slope * x`` elsewhere."""
    return np.where(x > 0, x, x * negative_slope)


def leaky_relu_backward(dy, x, negative_slope=0.3):
    """Gradient of :func:`leaky_relu_forward`; needs the input ``x``."""
    return dy * np.where(x > 0, x.dtype.type(1), x.dtype.type(negative_slope))


def elu_forward(x, alpha=1.0):
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere."""
    # expm1 of min(x, 0) so that large positive x never overflow in the branch np.where drops.
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, x.dtype.type(0))))


def elu_backward(dy, x, alpha=1.0):
    """Gradient of :func:`elu_forward`; needs the input ``x`` (``y`` alone is ambiguous for alpha < 0)."""
    return dy * np.where(x > 0, x.dtype.type(1), alpha * np.exp(np.minimum(x, x.dtype.type(0))))


def sigmoid_forward(x):
    """``1 / (1 + exp(-x))``, evaluated without overflow for large ``|x|``."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(dy, y):
    """Gradient of :func:`sigmoid_forward`; needs the output ``y``: ``dy * y * (1 - y)``."""
    return dy * y * (1 - y)


def tanh_forward(x):
    return np.tanh(x)


def tanh_backward(dy, y):
    """Gradient of :func:`tanh_forward`; needs the output ``y``: ``dy * (1 - y^2)``."""
    return dy * (1 - y * y)


def softmax_forward(x, axis=-1):
    """Softmax along ``axis``; the row maximum is subtracted first so large logits stay finite."""
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax_backward(dy, y, axis=-1):
    """Gradient of :func:`softmax_forward`; needs the output ``y``: ``y * (dy - sum(dy * y))``."""
    return y * (dy - np.sum(dy * y, axis=axis, keepdims=True))
