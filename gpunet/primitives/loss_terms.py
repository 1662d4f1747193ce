"""Losses that are one term per element: Huber, log-cosh, Poisson, squared log error, absolute
percentage error, KL divergence, hinge, squared hinge, binary focal cross-entropy; and the target
transforms (label smoothing, hinge labels).

``term_sum(kind, y_true, y_pred, divisor, ...)`` is the 0-d sum of the terms over ``divisor``,
``term_gradient(kind, ..., scale)`` their derivatives with respect to ``y_pred`` times ``scale``:
a loss divides by its count (all elements for a mean over the last axis, the rows for a sum
over it). The NumPy
reference and the kernels of ``kernels/loss_terms.cu`` sit side by side; the kernels add the
terms per block and ``loss.cu``'s ``sum_partials_finish`` adds the blocks, deterministically.

Dtypes: ``y_pred`` float32, bfloat16 or float16 (float64 on numpy only), its gradient in that
dtype; targets float32 (16-bit ones widened, exactly), sums float32. Both backends widen a 16-bit
``y_pred``, compute the terms in float32 and round a gradient once. The target transforms take
and give float32 targets (16-bit ones widened).
"""
import numpy as np

from .. import backend
from . import launch, precision
from .loss import EPSILON, _dense_kernel_arrays, _finish_sum, _wide, float_targets, value_dtype

_FILE = "loss_terms.cu"
_MAX_PARTIALS = 256
_MAX_BLOCKS = 2048
KINDS = {"huber": 0, "log_cosh": 1, "poisson": 2, "squared_log": 3, "percentage": 4, "kl_divergence": 5,
         "hinge": 6, "squared_hinge": 7, "binary_focal": 8, "binary_focal_logits": 9}


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _binary_focal(y, p, gamma, alpha, balanced):
    """(term, d term / d p) of the binary focal cross-entropy on probabilities ``p``."""
    eps = np.float32(EPSILON)
    pc = np.clip(p, eps, 1 - eps)
    inside = (p >= eps) & (p <= 1 - eps)
    bce = -(y * np.log(pc) + (1 - y) * np.log(1 - pc))
    dbce = -(y / pc - (1 - y) / (1 - pc)) * inside
    base = 1 - (y * p + (1 - y) * (1 - p))
    focal = base ** gamma
    safe = np.where(base > 0, base, 1)
    dfocal = np.where(base > 0, gamma * safe ** (gamma - 1) * (1 - 2 * y), 0)
    weight = y * alpha + (1 - y) * (1 - alpha) if balanced else 1
    return weight * focal * bce, weight * (dfocal * bce + focal * dbce)


def _terms(kind, y, p, a, b, c):
    """NumPy (term, derivative) per element, as ``loss_term`` in the .cu file."""
    if kind == "huber":
        e = p - y
        small = np.abs(e) <= a
        return np.where(small, 0.5 * e * e, a * np.abs(e) - 0.5 * a * a), np.where(small, e, a * np.sign(e))
    if kind == "log_cosh":
        x = p - y
        z = -2 * x
        return x + np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z))) - np.log(2.0), np.tanh(x)
    if kind == "poisson":
        return p - y * np.log(p + a), 1 - y / (p + a)
    if kind == "squared_log":
        d = np.log(np.maximum(p, a) + 1) - np.log(np.maximum(y, a) + 1)
        return d * d, np.where(p > a, 2 * d / (p + 1), 0)
    if kind == "percentage":
        scale = 100 / np.maximum(np.abs(y), a)
        return np.abs(y - p) * scale, np.sign(p - y) * scale
    if kind == "kl_divergence":
        yc, pc = np.clip(y, a, 1), np.clip(p, a, 1)
        return yc * np.log(yc / pc), np.where((p >= a) & (p <= 1), -yc / pc, 0)
    if kind in ("hinge", "squared_hinge"):
        margin = np.maximum(1 - y * p, 0)
        if kind == "hinge":
            return margin, np.where(margin > 0, -y, 0)
        return margin * margin, -2 * y * margin
    if kind == "binary_focal":
        return _binary_focal(y, p, a, b, c)
    if kind == "binary_focal_logits":
        s = _sigmoid(p)
        value, grad = _binary_focal(y, s, a, b, c)
        return value, grad * s * (1 - s)
    raise ValueError(f"Unknown loss term {kind!r}; expected one of {sorted(KINDS)}.")


def term_sum(kind, y_true, y_pred, divisor=1, a=0.0, b=0.0, c=0.0):
    """Sum over all elements of the ``kind`` term (see the .cu header) / ``divisor``: a 0-d array."""
    if backend.current().runs_kernels:
        y_true, y_pred = _arrays(kind, y_true, y_pred)
        n = launch.i32(y_pred.size, f"{kind} loss: elements")
        partial = launch.empty((launch.blocks_for(n, cap=_MAX_PARTIALS),))
        launch.run(_FILE, "loss_term_sum_partials", partial.size, launch.THREADS, y_true, y_pred, partial, n,
                   KINDS[kind], launch.f32(a), launch.f32(b), launch.f32(c))
        return _finish_sum(partial, divisor)
    value, _ = _terms(kind, *_wide(y_true, y_pred), a, b, c)
    return np.asarray(np.sum(value, dtype=np.float64) / divisor, dtype=value_dtype(y_pred.dtype))


def term_gradient(kind, y_true, y_pred, scale, a=0.0, b=0.0, c=0.0):
    """``scale * d(term)/d(y_pred)`` per element, in ``y_pred``'s shape and dtype."""
    if backend.current().runs_kernels:
        y_true, y_pred = _arrays(kind, y_true, y_pred)
        dx = launch.empty(y_pred.shape, y_pred.dtype)
        n = launch.i32(dx.size, f"{kind} loss: elements")
        launch.run(_FILE, "loss_term_backward", launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS,
                   y_true, y_pred, dx, n, KINDS[kind], launch.f32(a), launch.f32(b), launch.f32(c),
                   launch.f32(scale))
        return dx
    _, grad = _terms(kind, *_wide(y_true, y_pred), a, b, c)
    return precision.narrow(grad * scale, y_pred.dtype)


def _arrays(kind, y_true, y_pred):
    return _dense_kernel_arrays(f"{kind} loss", y_true, y_pred)


# -- target transforms -------------------------------------------------------------------------
def smooth_targets(y_true, scale, shift):
    """``y_true * scale + shift``: label smoothing (``1 - s`` and ``s / classes`` or ``s / 2``)."""
    if backend.current().runs_kernels:
        y = float_targets("label_smoothing", y_true)
        out = launch.empty(y.shape)
        n = launch.i32(out.size, "label_smoothing: elements")
        launch.run(_FILE, "affine_targets", launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS, y, out, n,
                   launch.f32(scale), launch.f32(shift))
        return out
    y_true = precision.widen(y_true)
    return (y_true * y_true.dtype.type(scale) + y_true.dtype.type(shift)).astype(y_true.dtype, copy=False)


def hinge_targets(y_true):
    """Keras's hinge labels: targets that are all 0 or 1 become -1 / 1; others stay as they are.

    On a kernel backend the check is a device count read by the next kernel, so nothing waits."""
    if backend.current().runs_kernels:
        y = float_targets("hinge", y_true)
        n = launch.i32(y.size, "hinge: elements")
        count = launch.zeros((1,), np.uint64)
        launch.run(_FILE, "count_non_binary", launch.blocks_for(n, cap=_MAX_PARTIALS), launch.THREADS, y, count, n)
        out = launch.empty(y.shape)
        launch.run(_FILE, "hinge_targets", launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS, y, count, out, n)
        return out
    y_true = precision.widen(y_true)
    binary = np.all((y_true == 0) | (y_true == 1))
    return (2 * y_true - 1).astype(y_true.dtype) if binary else y_true
