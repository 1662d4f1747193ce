"""Elementwise activations and softmax: forward and backward side by side.

Every function takes and returns arrays of any shape and keeps the input dtype. Each backward
says which saved array it needs (the forward input ``x`` or its output ``y``): the layer keeps
exactly that one.

On a kernel backend (``backend.current().runs_kernels``) every op runs a kernel of
``kernels/activation.cu``: grid-stride elementwise kernels, and softmax with one warp per row.
The ``_..._kernel`` helpers at the end launch them.

Dtypes: float32, bfloat16 and float16 on every backend (float64 on numpy, for gradient checks);
the arrays of one call share one dtype and the result has it. 16-bit values are computed in
float32 and rounded once, where the result is stored: the kernels load T as float and store
float as T; the NumPy reference widens (``precision.widen``), computes and narrows once
(``precision.narrow``). PReLU's ``alpha`` is a float32 weight (a 16-bit one is widened) and its
gradient is float32; softmax's row sums are float32.
"""

import numpy as np

from .. import backend
from . import cast, launch, precision
from .conv import bias_backward
from .elementwise_nd import erf_reference
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
    dtype, x = x.dtype, precision.widen(x)
    if max_value is None and negative_slope == 0.0 and threshold == 0.0:
        return precision.narrow(np.maximum(x, x.dtype.type(0)), dtype)
    y = np.where(x > threshold, x, x.dtype.type(0))
    y = np.clip(y, 0, max_value) if max_value is not None else np.maximum(y, x.dtype.type(0))
    if negative_slope != 0.0:
        y = y - negative_slope * np.maximum(threshold - x, x.dtype.type(0))
    y = np.where(np.isnan(x), x, y)   # the comparisons above turn NaN into 0; keep it NaN
    return precision.narrow(y.astype(x.dtype, copy=False), dtype)


def relu_backward(dy, x, max_value=None, negative_slope=0.0, threshold=0.0):
    """Gradient of :func:`relu_forward`; needs the input ``x``. A multiply by a mask."""
    if backend.current().runs_kernels:
        return _elementwise_kernel("relu_backward", [dy, x], *_relu_settings(max_value, negative_slope, threshold))
    if max_value is None and negative_slope == 0.0 and threshold == 0.0 and not precision.is_half(dy.dtype):
        return _relu_mask_multiply(dy, x)     # dy * (x > 0), split over threads
    dtype, dy, x = dy.dtype, precision.widen(dy), precision.widen(x)
    passes = (x > threshold) & (x > 0)
    if max_value is not None:
        passes &= x < max_value
    dx = dy * passes
    if negative_slope != 0.0:
        dx = dx + dy * (negative_slope * (x < threshold))
    return precision.narrow(dx.astype(dy.dtype, copy=False), dtype)


def leaky_relu_forward(x, negative_slope=0.3):
    """``x`` where positive, ``negative_slope * x`` elsewhere."""
    if backend.current().runs_kernels:
        return _elementwise_kernel("leaky_relu_forward", [x], launch.f32(negative_slope))
    x32 = precision.widen(x)
    return precision.narrow(np.where(x32 > 0, x32, x32 * negative_slope), x.dtype)


def leaky_relu_backward(dy, x, negative_slope=0.3):
    """Gradient of :func:`leaky_relu_forward`; needs the input ``x``."""
    if backend.current().runs_kernels:
        return _elementwise_kernel("leaky_relu_backward", [dy, x], launch.f32(negative_slope))
    dy32, x32 = precision.widen(dy), precision.widen(x)
    return precision.narrow(dy32 * np.where(x32 > 0, x32.dtype.type(1), x32.dtype.type(negative_slope)), dy.dtype)


def elu_forward(x, alpha=1.0):
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere."""
    if backend.current().runs_kernels:
        return _elementwise_kernel("elu_forward", [x], launch.f32(alpha))
    # expm1 of min(x, 0) so that large positive x never overflow in the branch np.where drops.
    x32 = precision.widen(x)
    return precision.narrow(np.where(x32 > 0, x32, alpha * np.expm1(np.minimum(x32, x32.dtype.type(0)))), x.dtype)


def elu_backward(dy, x, alpha=1.0):
    """Gradient of :func:`elu_forward`; needs the input ``x`` (``y`` alone is ambiguous for alpha < 0)."""
    if backend.current().runs_kernels:
        return _elementwise_kernel("elu_backward", [dy, x], launch.f32(alpha))
    dy32, x32 = precision.widen(dy), precision.widen(x)
    gate = np.where(x32 > 0, x32.dtype.type(1), alpha * np.exp(np.minimum(x32, x32.dtype.type(0))))
    return precision.narrow(dy32 * gate, dy.dtype)


def sigmoid_forward(x):
    """``1 / (1 + exp(-x))``, evaluated without overflow for large ``|x|``."""
    if backend.current().runs_kernels:
        return _elementwise_kernel("sigmoid_forward", [x])
    return precision.narrow(_sigmoid(precision.widen(x)), x.dtype)


def sigmoid_backward(dy, y):
    """Gradient of :func:`sigmoid_forward`; needs the output ``y``: ``dy * y * (1 - y)``."""
    if backend.current().runs_kernels:
        return _elementwise_kernel("sigmoid_backward", [dy, y])
    dy32, y32 = precision.widen(dy), precision.widen(y)
    return precision.narrow(dy32 * y32 * (1 - y32), dy.dtype)


def tanh_forward(x):
    if backend.current().runs_kernels:
        return _elementwise_kernel("tanh_forward", [x])
    return precision.narrow(np.tanh(precision.widen(x)), x.dtype)


def tanh_backward(dy, y):
    """Gradient of :func:`tanh_forward`; needs the output ``y``: ``dy * (1 - y^2)``."""
    if backend.current().runs_kernels:
        return _elementwise_kernel("tanh_backward", [dy, y])
    dy32, y32 = precision.widen(dy), precision.widen(y)
    return precision.narrow(dy32 * (1 - y32 * y32), dy.dtype)


def softmax_forward(x, axis=-1):
    """Softmax along ``axis``; the row maximum is subtracted first so large logits stay finite."""
    if backend.current().runs_kernels:
        return _softmax_kernel("softmax_forward", [x], axis)
    x32 = precision.widen(x)
    e = np.exp(x32 - np.max(x32, axis=axis, keepdims=True))
    return precision.narrow(e / np.sum(e, axis=axis, keepdims=True), x.dtype)


def softmax_backward(dy, y, axis=-1):
    """Gradient of :func:`softmax_forward`; needs the output ``y``: ``y * (dy - sum(dy * y))``."""
    if backend.current().runs_kernels:
        return _softmax_kernel("softmax_backward", [dy, y], axis)
    dy32, y32 = precision.widen(dy), precision.widen(y)
    return precision.narrow(y32 * (dy32 - np.sum(dy32 * y32, axis=axis, keepdims=True)), dy.dtype)


# -- the templated family: f(x) and f'(x), backward needs the input x -------------------------
# Keras 3's definitions (keras/src/activations): hard_sigmoid is relu6(x + 3) / 6, selu's
# constants are Keras's, gelu is the erf form unless approximate (the tanh form).

_SELU_ALPHA, _SELU_SCALE = 1.67326324, 1.05070098
_GELU_C = np.sqrt(2 / np.pi)
_erf = erf_reference   # NumPy has no erf; float64 series / continued fraction, in x's dtype


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _gelu(x):
    return 0.5 * x * (1 + _erf(x / np.sqrt(2)))


def _gelu_grad(x):
    return 0.5 * (1 + _erf(x / np.sqrt(2))) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)


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
    x32 = precision.widen(x)
    return precision.narrow(np.asarray(UNARY[name][0](x32)).astype(x32.dtype, copy=False), x.dtype)


def unary_backward(name, dy, x):
    """Gradient of :func:`unary_forward`; needs the input ``x``: ``dy * f'(x)``."""
    if backend.current().runs_kernels:
        return _elementwise_kernel(f"{name}_backward", [dy, x])
    dy32 = precision.widen(dy)
    return precision.narrow((dy32 * UNARY[name][1](precision.widen(x))).astype(dy32.dtype, copy=False), dy.dtype)


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
    x32, alpha = precision.widen(x), precision.widen(alpha)
    return precision.narrow(np.where(x32 > 0, x32, alpha * x32).astype(x32.dtype, copy=False), x.dtype)


def prelu_backward(dy, x, alpha):
    """``(dx, dalpha)``; needs the input ``x``; dalpha sums ``dy * x`` where ``x <= 0`` over the
    batch and the shared axes. dx has dy's dtype; dalpha is float32 for 16-bit dy (a weight's gradient)."""
    if backend.current().runs_kernels:
        return _prelu_kernel("prelu_backward", x, alpha, dy)
    dtype, dy, x, alpha = dy.dtype, precision.widen(dy), precision.widen(x), precision.widen(alpha)
    dx = precision.narrow(np.where(x > 0, dy, alpha * dy).astype(dy.dtype, copy=False), dtype)
    terms = np.where(x > 0, 0, dy * x)
    axes = tuple(k for k in range(x.ndim) if k == 0 or (alpha.shape[k - 1] == 1 and x.shape[k] != 1))
    return dx, terms.sum(axis=axes, keepdims=True).reshape(alpha.shape).astype(dy.dtype, copy=False)


def _prelu_kernel(kernel, x, alpha, dy=None):
    xp = backend.current().xp
    perm, size = _prelu_layout(x.shape, alpha.shape)
    inverse = list(np.argsort(perm))
    moved = [a if perm == sorted(perm) else launch.array(xp.transpose(a, perm), a.dtype) for a in
             kernel_arrays(kernel, [x] if dy is None else [dy, x], precision.FLOATS)]
    alpha, = launch.inputs(kernel, cast.cast(alpha, precision.FLOAT32))   # a float32 weight in the kernel
    outputs = [launch.empty(moved[0].shape, moved[0].dtype)]    # y or dx, in x's dtype
    if dy is not None:
        outputs.append(launch.empty(moved[0].shape))              # alpha_terms: float32
    n = launch.i32(outputs[0].size, f"{kernel}: elements")
    launch.run(_FILE, kernel, launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS,
               *(moved if dy is None else [moved[0], moved[1]]), alpha, *outputs, n, size)
    first = outputs[0] if perm == sorted(perm) else launch.array(xp.transpose(outputs[0], inverse), outputs[0].dtype)
    if dy is None:
        return [first]
    return first, bias_backward(outputs[1].reshape(-1, size)).reshape(alpha.shape)


# -- kernel paths -------------------------------------------------------------------------------

def kernel_arrays(op, arrays, dtype=np.float32):
    """Same-shaped arrays a kernel reads elementwise: of ``dtype`` (float32; or one of a tuple such
    as ``precision.FLOATS`` for a templated kernel), C-contiguous, on the backend.

    Shared with the loss and dropout ops. Raises a TypeError naming ``op`` for other dtypes and
    a ValueError for shapes that differ (the kernels do not broadcast).
    """
    shapes = [tuple(a.shape) for a in arrays]
    if len(set(shapes)) > 1:
        raise ValueError(f"{op} needs arrays of one shape; received shapes {', '.join(map(str, shapes))}.")
    return launch.inputs(op, *arrays, dtype=dtype)


def _relu_settings(max_value, negative_slope, threshold):
    """relu kernels' trailing arguments: max_value, has_max, negative_slope, threshold."""
    has_max = max_value is not None
    return (launch.f32(max_value if has_max else 0.0), launch.i32(1 if has_max else 0),
            launch.f32(negative_slope), launch.f32(threshold))


def _elementwise_kernel(kernel, inputs, *settings):
    """Launch ``kernel(*inputs, out, n, *settings)``; out has the first input's shape."""
    inputs = kernel_arrays(kernel, inputs, precision.FLOATS)
    out = launch.empty(inputs[0].shape, inputs[0].dtype)
    n = launch.i32(out.size, f"{kernel}: elements")
    launch.run(_FILE, kernel, launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS, *inputs, out, n, *settings)
    return out


def _softmax_kernel(kernel, inputs, axis):
    """Launch a softmax kernel over rows of the last axis; another ``axis`` is moved last and back."""
    inputs = kernel_arrays(kernel, inputs, precision.FLOATS)
    ndim = inputs[0].ndim
    if not -ndim <= axis < ndim:
        raise ValueError(f"{kernel}: axis {axis} is out of range for an input of shape {tuple(inputs[0].shape)}.")
    axis %= ndim
    xp = backend.current().xp
    if axis != ndim - 1:   # the kernels want the softmax axis contiguous: a transposed copy
        inputs = [launch.array(xp.moveaxis(a, axis, -1), a.dtype) for a in inputs]
    out = launch.empty(inputs[0].shape, inputs[0].dtype)
    cols = out.shape[-1]
    rows = launch.i32(out.size // cols if cols else 0, f"{kernel}: rows")
    launch.i32(out.size, f"{kernel}: elements")
    launch.run(_FILE, kernel, launch.blocks_for(rows, _ROWS_PER_BLOCK, cap=_MAX_BLOCKS), launch.THREADS,
               *inputs, out, rows, cols)
    return out if axis == ndim - 1 else launch.array(xp.moveaxis(out, -1, axis), out.dtype)
