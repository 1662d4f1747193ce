"""Elementwise activations and softmax: forward and backward side by side.

Every function takes and returns arrays of any shape and keeps the input dtype. Each backward
says which saved array it needs (the forward input ``x`` or its output ``y``): the layer keeps
exactly that one.

On a kernel backend (``backend.current().runs_kernels``) every op runs a float32 kernel of
``kernels/activation.cu``: grid-stride elementwise kernels, and softmax with one warp per row.
The ``_..._kernel`` helpers at the end launch them.
"""
import math

import numpy as np

from .. import backend
from . import launch
from .conv import bias_backward
from .passes import relu_backward as _relu_mask_multiply

_FILE = "activation.cu"
_MAX_BLOCKS = 2048     # grid-stride kernels: enough blocks to fill any GPU; more only adds launch cost
_ROWS_PER_BLOCK = 8    # softmax: one warp per row, 256-thread blocks


def relu_forward(x, max_value=None, negative_slope=0.0, threshold=0.0):
    """Rectified linear unit in Keras's general form; the defaults give ``max(x, 0)``.

    ``y = min(x, max_value)`` where ``x > threshold`` (and ``x >= 0``),
    ``negative_slope * (x - threshold)`` below the threshold, else 0. NaN stays NaN.
    """
    if backend.current().runs_kernels:
        return _elementwise_kernel("relu_forward", [x], *_relu_settings(max_value, negative_slope, threshold))
    if max_value is None and negative_slope == 0.0 and threshold == 0.0:
        return np.maximum(x, x.dtype.type(0))
    y = np.where(x > threshold, x, x.dtype.type(0))
    y = np.clip(y, 0, max_value) if max_value is not None else np.maximum(y, x.dtype.type(0))
    if negative_slope != 0.0:
        y = y - negative_slope * np.maximum(threshold - x, x.dtype.type(0))
    y = np.where(np.isnan(x), x, y)   # the comparisons above turn NaN into 0; keep it NaN
    return y.astype(x.dtype, copy=False)


def relu_backward(dy, x, max_value=None, negative_slope=0.0, threshold=0.0):
    """Gradient of :func:`relu_forward`; needs the input ``x``. A multiply by a mask."""
    if backend.current().runs_kernels:
        return _elementwise_kernel("relu_backward", [dy, x], *_relu_settings(max_value, negative_slope, threshold))
    if max_value is None and negative_slope == 0.0 and threshold == 0.0:
        return _relu_mask_multiply(dy, x)     # dy * (x > 0), split over threads
    passes = (x > threshold) & (x > 0)
    if max_value is not None:
        passes &= x < max_value
    dx = dy * passes
    if negative_slope != 0.0:
        dx = dx + dy * (negative_slope * (x < threshold))
    return dx.astype(dy.dtype, copy=False)


def leaky_relu_forward(x, negative_slope=0.3):
    """``x`` where positive, ``negative_slope * x`` elsewhere."""
    if backend.current().runs_kernels:
        return _elementwise_kernel("leaky_relu_forward", [x], launch.f32(negative_slope))
    return np.where(x > 0, x, x * negative_slope)


def leaky_relu_backward(dy, x, negative_slope=0.3):
    """Gradient of :func:`leaky_relu_forward`; needs the input ``x``."""
    if backend.current().runs_kernels:
        return _elementwise_kernel("leaky_relu_backward", [dy, x], launch.f32(negative_slope))
    return dy * np.where(x > 0, x.dtype.type(1), x.dtype.type(negative_slope))


def elu_forward(x, alpha=1.0):
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere."""
    if backend.current().runs_kernels:
        return _elementwise_kernel("elu_forward", [x], launch.f32(alpha))
    # expm1 of min(x, 0) so that large positive x never overflow in the branch np.where drops.
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, x.dtype.type(0))))


def elu_backward(dy, x, alpha=1.0):
    """Gradient of :func:`elu_forward`; needs the input ``x`` (``y`` alone is ambiguous for alpha < 0)."""
    if backend.current().runs_kernels:
        return _elementwise_kernel("elu_backward", [dy, x], launch.f32(alpha))
    return dy * np.where(x > 0, x.dtype.type(1), alpha * np.exp(np.minimum(x, x.dtype.type(0))))


def sigmoid_forward(x):
    """``1 / (1 + exp(-x))``, evaluated without overflow for large ``|x|``."""
    if backend.current().runs_kernels:
        return _elementwise_kernel("sigmoid_forward", [x])
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(dy, y):
    """Gradient of :func:`sigmoid_forward`; needs the output ``y``: ``dy * y * (1 - y)``."""
    if backend.current().runs_kernels:
        return _elementwise_kernel("sigmoid_backward", [dy, y])
    return dy * y * (1 - y)


def tanh_forward(x):
    if backend.current().runs_kernels:
        return _elementwise_kernel("tanh_forward", [x])
    return np.tanh(x)


def tanh_backward(dy, y):
    """Gradient of :func:`tanh_forward`; needs the output ``y``: ``dy * (1 - y^2)``."""
    if backend.current().runs_kernels:
        return _elementwise_kernel("tanh_backward", [dy, y])
    return dy * (1 - y * y)


def softmax_forward(x, axis=-1):
    """Softmax along ``axis``; the row maximum is subtracted first so large logits stay finite."""
    if backend.current().runs_kernels:
        return _softmax_kernel("softmax_forward", [x], axis)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax_backward(dy, y, axis=-1):
    """Gradient of :func:`softmax_forward`; needs the output ``y``: ``y * (dy - sum(dy * y))``."""
    if backend.current().runs_kernels:
        return _softmax_kernel("softmax_backward", [dy, y], axis)
    return y * (dy - np.sum(dy * y, axis=axis, keepdims=True))


# -- the templated family: f(x) and f'(x), backward needs the input x -------------------------
# Keras 3's definitions (keras/src/activations): hard_sigmoid is relu6(x + 3) / 6, selu's
# constants are Keras's, gelu is the erf form unless approximate (the tanh form).

_SELU_ALPHA, _SELU_SCALE = 1.67326324, 1.05070098
_GELU_C = np.sqrt(2 / np.pi)
_erf = np.frompyfunc(math.erf, 1, 1)   # NumPy has no erf; exact, one Python call per element


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _gelu(x):
    return 0.5 * x * (1 + _erf(x / np.sqrt(2)).astype(x.dtype))


def _gelu_grad(x):
    return 0.5 * (1 + _erf(x / np.sqrt(2)).astype(x.dtype)) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(_GELU_C * (x + 0.044715 * x ** 3)))


def _gelu_tanh_grad(x):
    t = np.tanh(_GELU_C * (x + 0.044715 * x ** 3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _GELU_C * (1 + 3 * 0.044715 * x * x)


def _hard_sigmoid(x):
    return np.where(np.isnan(x), x, np.clip(x / 6 + 0.5, 0, 1))


def _mish_grad(x):
    t = np.tanh(_softplus(x))
    return t + x * _sigmoid(x) * (1 - t * t)


def _selu(x):
    return _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0)))


UNARY = {   # name -> (f, f'), each of x only
    "gelu": (_gelu, _gelu_grad),
    "gelu_approximate": (_gelu_tanh, _gelu_tanh_grad),
    "silu": (lambda x: x * _sigmoid(x), lambda x: _sigmoid(x) * (1 + x * (1 - _sigmoid(x)))),
    "softplus": (_softplus, _sigmoid),
    "softsign": (lambda x: x / (1 + np.abs(x)), lambda x: 1 / (1 + np.abs(x)) ** 2),
    "hard_sigmoid": (_hard_sigmoid, lambda x: np.where((x > -3) & (x < 3), 1 / 6, 0)),
    "hard_silu": (lambda x: x * _hard_sigmoid(x), lambda x: np.where(x >= 3, 1, np.where(x <= -3, 0, x / 3 + 0.5))),
    "mish": (lambda x: x * np.tanh(_softplus(x)), _mish_grad),
    "selu": (_selu, lambda x: _SELU_SCALE * np.where(x > 0, 1, _SELU_ALPHA * np.exp(np.minimum(x, 0)))),
    "exponential": (np.exp, np.exp),
}


def unary_forward(name, x):
    """``y = f(x)`` for an activation of :data:`UNARY` (``"gelu"``, ``"mish"``, ...); any shape."""
    if backend.current().runs_kernels:
        return _elementwise_kernel(f"{name}_forward", [x])
    return np.asarray(UNARY[name][0](x)).astype(x.dtype, copy=False)


def unary_backward(name, dy, x):
    """Gradient of :func:`unary_forward`; needs the input ``x``: ``dy * f'(x)``."""
    if backend.current().runs_kernels:
        return _elementwise_kernel(f"{name}_backward", [dy, x])
    return (dy * UNARY[name][1](x)).astype(dy.dtype, copy=False)


# -- PReLU: y = x where positive, alpha * x elsewhere; alpha broadcast over the batch and shared axes

def _prelu_layout(x_shape, alpha_shape):
    """``(perm, alpha_size)``: the axes of x with the batch and the shared axes (alpha's 1s) first,
    so that the kernels find element i's slope at ``alpha[i % alpha_size]``."""
    shared = [0] + [k + 1 for k, size in enumerate(alpha_shape) if size == 1 and x_shape[k + 1] != 1]
    perm = shared + [k for k in range(len(x_shape)) if k not in shared]
    return perm, int(np.prod([x_shape[k] for k in perm[len(shared):]], dtype=np.int64))


def prelu_forward(x, alpha):
    """x ``(N, ...)``, alpha shaped like ``x.shape[1:]`` with 1 on the shared axes -> y like x."""
    if backend.current().runs_kernels:
        return _prelu_kernel("prelu_forward", x, alpha)[0]
    return np.where(x > 0, x, alpha * x).astype(x.dtype, copy=False)


def prelu_backward(dy, x, alpha):
    """``(dx, dalpha)``; needs the input ``x``; dalpha sums ``dy * x`` where ``x <= 0`` over the
    batch and the shared axes."""
    if backend.current().runs_kernels:
        return _prelu_kernel("prelu_backward", x, alpha, dy)
    dx = np.where(x > 0, dy, alpha * dy).astype(dy.dtype, copy=False)
    terms = np.where(x > 0, 0, dy * x)
    axes = tuple(k for k in range(x.ndim) if k == 0 or (alpha.shape[k - 1] == 1 and x.shape[k] != 1))
    return dx, terms.sum(axis=axes, keepdims=True).reshape(alpha.shape).astype(dy.dtype, copy=False)


def _prelu_kernel(kernel, x, alpha, dy=None):
    xp = backend.current().xp
    perm, size = _prelu_layout(x.shape, alpha.shape)
    inverse = list(np.argsort(perm))
    moved = [a if perm == sorted(perm) else launch.array(xp.transpose(a, perm)) for a in
             kernel_arrays(kernel, [x] if dy is None else [dy, x])]
    alpha, = launch.inputs(kernel, alpha)
    outputs = [launch.empty(moved[0].shape) for _ in range(1 if dy is None else 2)]
    n = launch.i32(outputs[0].size, f"{kernel}: elements")
    launch.run(_FILE, kernel, launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS,
               *(moved if dy is None else [moved[0], moved[1]]), alpha, *outputs, n, size)
    first = outputs[0] if perm == sorted(perm) else launch.array(xp.transpose(outputs[0], inverse))
    if dy is None:
        return [first]
    return first, bias_backward(outputs[1].reshape(-1, size)).reshape(alpha.shape)


# -- kernel paths -------------------------------------------------------------------------------

def kernel_arrays(op, arrays):
    """Same-shaped arrays a kernel reads elementwise: float32, C-contiguous, on the backend.

    Shared with the loss and dropout ops. Raises a TypeError naming ``op`` for other dtypes and
    a ValueError for shapes that differ (the kernels do not broadcast).
    """
    shapes = [tuple(a.shape) for a in arrays]
    if len(set(shapes)) > 1:
        raise ValueError(f"{op} needs arrays of one shape; received shapes {', '.join(map(str, shapes))}.")
    return launch.inputs(op, *arrays)


def _relu_settings(max_value, negative_slope, threshold):
    """relu kernels' trailing arguments: max_value, has_max, negative_slope, threshold."""
    has_max = max_value is not None
    return (launch.f32(max_value if has_max else 0.0), launch.i32(1 if has_max else 0),
            launch.f32(negative_slope), launch.f32(threshold))


def _elementwise_kernel(kernel, inputs, *settings):
    """Launch ``kernel(*inputs, out, n, *settings)``; out has the first input's shape."""
    inputs = kernel_arrays(kernel, inputs)
    out = launch.empty(inputs[0].shape)
    n = launch.i32(out.size, f"{kernel}: elements")
    launch.run(_FILE, kernel, launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS, *inputs, out, n, *settings)
    return out


def _softmax_kernel(kernel, inputs, axis):
    """Launch a softmax kernel over rows of the last axis; another ``axis`` is moved last and back."""
    inputs = kernel_arrays(kernel, inputs)
    ndim = inputs[0].ndim
    if not -ndim <= axis < ndim:
        raise ValueError(f"{kernel}: axis {axis} is out of range for an input of shape {tuple(inputs[0].shape)}.")
    axis %= ndim
    xp = backend.current().xp
    if axis != ndim - 1:   # the kernels want the softmax axis contiguous: a transposed copy
        inputs = [launch.array(xp.moveaxis(a, axis, -1)) for a in inputs]
    out = launch.empty(inputs[0].shape)
    cols = out.shape[-1]
    rows = launch.i32(out.size // cols if cols else 0, f"{kernel}: rows")
    launch.i32(out.size, f"{kernel}: elements")
    launch.run(_FILE, kernel, launch.blocks_for(rows, _ROWS_PER_BLOCK, cap=_MAX_BLOCKS), launch.THREADS,
               *inputs, out, rows, cols)
    return out if axis == ndim - 1 else launch.array(xp.moveaxis(out, -1, axis))
