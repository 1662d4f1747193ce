"""Losses whose per-sample value needs a whole row (the last axis): cosine similarity,
categorical hinge, categorical focal cross-entropy (on probabilities or logits).

``row_sum(kind, y_true, y_pred, divisor, a, b)`` is the 0-d sum of the row losses over ``divisor``; ``row_gradient(kind,
..., scale)`` its gradient with respect to ``y_pred`` times ``scale`` (a loss passes 1 / rows for
Keras's "sum_over_batch_size"). NumPy reference and kernels (``kernels/loss_rows.cu``) side by side.

Dtypes: ``y_pred`` float32, bfloat16 or float16 (float64 on numpy only), its gradient in that
dtype; targets float32 (16-bit ones widened, exactly), sums float32. Both backends widen a 16-bit
``y_pred``, compute the row statistics and losses in float32 and round a gradient once.
"""
import numpy as np

from .. import backend
from . import launch, precision
from .loss import EPSILON, _dense_kernel_arrays, _finish_sum, _row_blocks, _rows_cols, _wide, value_dtype

_FILE = "loss_rows.cu"
_MAX_BLOCKS = 2048
KINDS = {"cosine": 0, "categorical_hinge": 1, "categorical_focal": 2, "categorical_focal_logits": 3}


def _cosine(y, p, eps):
    with np.errstate(divide="ignore"):   # a zero row: rsqrt(0) = inf, floored to 1 / eps as in Keras
        return _cosine_rows(y, p, eps)


def _cosine_rows(y, p, eps):
    ny = np.minimum(1 / np.sqrt(np.sum(y * y, -1, keepdims=True)), 1 / eps)
    sp = np.sum(p * p, -1, keepdims=True)
    inv_p = 1 / np.sqrt(sp)
    clamped = inv_p > 1 / eps
    np_ = np.minimum(inv_p, 1 / eps)
    dot = np.sum(y * p, -1, keepdims=True)
    grad = -ny * (y * np_ - np.where(clamped, 0, dot * p * np_ ** 3))
    return (-dot * ny * np_)[..., 0], grad


def _categorical_hinge(y, p):
    pos = np.sum(y * p, -1)
    scores = (1 - y) * p
    neg = np.max(scores, -1)
    loss = np.maximum(neg - pos + 1, 0)
    first = np.argmax(scores, -1)   # the gradient goes to the first maximum, as the kernel
    grad = -y + (np.arange(y.shape[-1]) == first[..., None]) * (1 - y)
    return loss, grad * (loss > 0)[..., None]


def _categorical_focal(y, p, alpha, gamma, from_logits):
    if from_logits:
        shifted = np.exp(p - np.max(p, -1, keepdims=True))
        p = shifted / np.sum(shifted, -1, keepdims=True)
    factor = p if from_logits else 1
    total = np.sum(p, -1, keepdims=True)
    q = p / total
    o = np.clip(q, EPSILON, 1 - EPSILON)
    inside = (q >= EPSILON) & (q <= 1 - EPSILON)
    rest = 1 - o
    modulating = rest ** gamma
    dmod = np.where(rest > 0, gamma * np.where(rest > 0, rest, 1) ** (gamma - 1), 0)
    loss = np.sum(alpha * modulating * y * -np.log(o), -1)
    g = -alpha * y * (modulating / o + dmod * -np.log(o)) * inside
    grad = factor * (g - np.sum(g * q, -1, keepdims=True)) / total
    return loss, grad


def _rows(kind, y, p, a, b):
    if kind == "cosine":
        return _cosine(y, p, a)
    if kind == "categorical_hinge":
        return _categorical_hinge(y, p)
    if kind in ("categorical_focal", "categorical_focal_logits"):
        return _categorical_focal(y, p, a, b, kind.endswith("logits"))
    raise ValueError(f"Unknown row loss {kind!r}; expected one of {sorted(KINDS)}.")


def row_sum(kind, y_true, y_pred, divisor=1, a=0.0, b=0.0):
    """Sum of the per-row losses of ``kind`` (see the .cu header) / ``divisor``: a 0-d array."""
    if backend.current().runs_kernels:
        y_true, y_pred = _dense_kernel_arrays(f"{kind} loss", y_true, y_pred)
        rows, cols = _rows_cols(f"{kind} loss", y_pred)
        partial = launch.empty((_row_blocks(rows),))
        launch.run(_FILE, "loss_rows_forward", partial.size, launch.THREADS, y_true, y_pred, partial, rows, cols,
                   KINDS[kind], launch.f32(a), launch.f32(b))
        return _finish_sum(partial, divisor)
    loss, _ = _rows(kind, *_wide(y_true, y_pred), a, b)
    return np.asarray(np.sum(loss, dtype=np.float64) / divisor, dtype=value_dtype(y_pred.dtype))


def row_gradient(kind, y_true, y_pred, scale, a=0.0, b=0.0):
    """``scale * d(sum of row losses)/d(y_pred)``, in ``y_pred``'s shape and dtype."""
    if backend.current().runs_kernels:
        y_true, y_pred = _dense_kernel_arrays(f"{kind} loss", y_true, y_pred)
        rows, cols = _rows_cols(f"{kind} loss", y_pred)
        dx = launch.empty(y_pred.shape, y_pred.dtype)
        blocks = launch.blocks_for(rows, 8, cap=_MAX_BLOCKS)
        launch.run(_FILE, "loss_rows_backward", blocks, launch.THREADS, y_true, y_pred, dx, rows, cols,
                   KINDS[kind], launch.f32(a), launch.f32(b), launch.f32(scale))
        return dx
    _, grad = _rows(kind, *_wide(y_true, y_pred), a, b)
    return precision.narrow(grad * scale, y_pred.dtype)
