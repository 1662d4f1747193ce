"""Weight penalties (L1 / L2) and weight constraints (max_norm, min_max_norm, unit_norm, non_neg):
NumPy reference and kernels (``kernels/regularize.cu``) side by side.

``penalty(w, l1, l2, divisor)`` is ``(l1 sum|w| + l2 sum w^2) / divisor`` as a 0-d array;
``add_penalty_gradient(w, grad, l1, l2, scale)`` adds its gradient times ``scale`` into ``grad``
in place; ``constrain(w, kind, axes, ...)`` rescales ``w`` in place.

Dtypes: the penalties take float32, bfloat16 or float16 ``w`` (an activity penalty on 16-bit
activations) on every backend: the penalty is summed in float32 and returned float32 (a loss
term) for 16-bit ``w``, ``grad`` has ``w``'s dtype and each of its elements is updated in float32
and rounded once. The constraints act on float32 weights (float64 on numpy).
"""
import numpy as np

from .. import backend
from . import launch, precision
from .loss import _finish_sum

_FILE = "regularize.cu"
_MAX_PARTIALS = 256
_MAX_BLOCKS = 2048
NORM_EPSILON = 1e-7
KINDS = {"max_norm": 0, "min_max_norm": 1, "unit_norm": 2, "non_neg": 3}


def penalty(w, l1, l2, divisor=1):
    """``(l1 * sum(|w|) + l2 * sum(w^2)) / divisor``: a 0-d array."""
    if backend.current().runs_kernels:
        w, = launch.inputs("regularizer", w, dtype=precision.FLOATS)
        n = launch.i32(w.size, "regularizer: elements")
        partial = launch.empty((launch.blocks_for(n, cap=_MAX_PARTIALS),))
        launch.run(_FILE, "penalty_sum_partials", partial.size, launch.THREADS, w, partial, n, launch.f32(l1),
                   launch.f32(l2))
        return _finish_sum(partial, divisor)
    w = precision.widen(w)
    total = l1 * np.sum(np.abs(w), dtype=np.float64) + l2 * np.sum(np.square(w), dtype=np.float64)
    return np.asarray(total / divisor, dtype=w.dtype)


def add_penalty_gradient(w, grad, l1, l2, scale=1.0, loss_scale=None):
    """``grad += (l1 * sign(w) + 2 * l2 * w) * scale * loss_scale``, in place; returns ``grad``.

    ``loss_scale``: None, or the loss scale the gradients it joins carry (a LossScaleOptimizer's):
    on the kernel backends ``(float64 device array, index)`` read by the kernel (no host read),
    on numpy a float."""
    if backend.current().runs_kernels:
        w, = launch.inputs("regularizer", w, dtype=precision.FLOATS)   # grad, updated in place: as given
        n = launch.i32(w.size, "regularizer: elements")
        factor, at = loss_scale if loss_scale is not None else (launch.float64_table((1.0,)), 0)
        launch.run(_FILE, "penalty_add_gradient", launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS, w, grad,
                   n, launch.f32(l1), launch.f32(l2), launch.f32(scale), factor, launch.i32(at))
        return grad
    scale = scale * (1.0 if loss_scale is None else float(loss_scale))
    if precision.is_half(grad.dtype):   # in float32, one rounding per element
        w32 = precision.widen(w)
        grad[...] = precision.narrow(precision.widen(grad) + (l1 * np.sign(w32) + 2 * l2 * w32) * np.float32(scale),
                                     grad.dtype)
        return grad
    grad += ((l1 * np.sign(w) + 2 * l2 * w) * scale).astype(grad.dtype)
    return grad


def _axes(shape, axis):
    axes = [axis] if isinstance(axis, (int, np.integer)) else list(axis)
    return sorted({int(a) % len(shape) for a in axes}) if shape else []


def constrain(w, kind, axis=0, min_value=0.0, max_value=1.0, rate=1.0):
    """Apply constraint ``kind`` to ``w`` in place, norms over ``axis`` (an int or a list)."""
    shape = tuple(w.shape)
    if len(shape) > 4:
        raise ValueError(f"Weight constraints take weights of up to 4 axes; received shape {shape}.")
    axes = [] if kind == "non_neg" else _axes(shape, axis)
    if backend.current().runs_kernels:
        dims = (1,) * (4 - len(shape)) + shape
        offset = 4 - len(shape)
        mask = sum(1 << (a + offset) for a in axes)
        groups = int(np.prod([d for i, d in enumerate(dims) if not mask & (1 << i)]))
        launch.run(_FILE, "norm_constraint", launch.blocks_for(groups, cap=_MAX_BLOCKS), launch.THREADS, w, *dims,
                   mask, groups, KINDS[kind], launch.f32(min_value), launch.f32(max_value), launch.f32(rate))
        return w
    if kind == "non_neg":
        np.maximum(w, 0, out=w)
        return w
    norms = np.sqrt(np.sum(np.square(w), axis=tuple(axes), keepdims=True))
    if kind == "unit_norm":
        w[...] = w / (NORM_EPSILON + norms)
        return w
    if kind == "max_norm":
        desired = np.clip(norms, 0, max_value)
    else:
        desired = rate * np.clip(norms, min_value, max_value) + (1 - rate) * norms
    w[...] = w * (desired / (NORM_EPSILON + norms))
    return w
