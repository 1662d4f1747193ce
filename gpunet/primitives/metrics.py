"""State updates of the confusion-matrix metrics (IoU, precision / recall / AUC, top-k, F-scores),
NumPy reference and kernels (``kernels/metrics.cu``) side by side. Each adds one batch into a
state array that stays on the backend (``+=``); the metrics read it only in ``result()``.

Dtypes: ``y_pred`` float32, bfloat16 or float16 (float64 on numpy only), compared as its own
values (widened exactly on both backends); ``y_true`` float32 (16-bit widened), the thresholds and
F-score state float32, the counts uint64. Nothing is rounded: a 16-bit ``y_pred`` gives the counts
its float32 widening gives.
"""
import numpy as np

from .. import backend
from . import launch, precision
from .loss import float_targets, predictions

_FILE = "metrics.cu"
_MAX_BLOCKS = 2048
CLASS_VALUE, CLASS_ARGMAX, CLASS_THRESHOLD = 0, 1, 2


def _floats(op, y_true, y_pred):
    """(float32 targets, predictions in their own float dtype) on the backend."""
    return float_targets(op, y_true), predictions(op, y_pred)


def _classes(values, mode, threshold):
    values = precision.widen(values)
    if mode == CLASS_ARGMAX:
        return np.argmax(values.reshape(-1, values.shape[-1]), axis=-1)
    values = values.reshape(-1)
    if mode == CLASS_THRESHOLD:
        return (values >= threshold).astype(np.int64)
    out = np.full(values.shape, -1, dtype=np.int64)
    finite = np.isfinite(values)
    out[finite] = values[finite].astype(np.int64)
    return out


def confusion_update(cm, y_true, y_pred, classes, ignore_class=None, mode_true=CLASS_VALUE,
                     mode_pred=CLASS_VALUE, threshold=0.5):
    """``cm[t, p] += 1`` for every row (uint64 ``cm`` of shape (classes, classes), rows = true).

    A row's class is its value (``CLASS_VALUE``), the argmax of its last axis (``CLASS_ARGMAX``)
    or ``value >= threshold`` (``CLASS_THRESHOLD``); rows with a class outside ``[0, classes)`` or
    a true class equal to ``ignore_class`` are left out."""
    rows = y_true.size // (y_true.shape[-1] if mode_true == CLASS_ARGMAX else 1)
    if backend.current().runs_kernels:
        y_true, y_pred = _floats("confusion matrix", y_true, y_pred)
        cols_true = y_true.shape[-1] if mode_true == CLASS_ARGMAX else 1
        cols_pred = y_pred.shape[-1] if mode_pred == CLASS_ARGMAX else 1
        launch.run(_FILE, "confusion_update", launch.blocks_for(rows, cap=_MAX_BLOCKS), launch.THREADS, y_true,
                   y_pred, cm, launch.i32(rows, "confusion matrix: rows"), cols_true, cols_pred, classes,
                   -1 if ignore_class is None else int(ignore_class), mode_true, mode_pred, launch.f32(threshold))
        return cm
    t, p = _classes(y_true, mode_true, threshold), _classes(y_pred, mode_pred, threshold)
    keep = (t >= 0) & (t < classes) & (p >= 0) & (p < classes)
    if ignore_class is not None:
        keep &= t != ignore_class
    np.add.at(cm, (t[keep], p[keep]), 1)
    return cm


def threshold_histogram(hist, y_true, y_pred, thresholds, class_id=None):
    """``hist[positive, b] += 1`` per element, b = how many ``thresholds`` (ascending float32
    array on the backend) lie strictly below the prediction; ``hist`` is uint64 (2, T + 1)."""
    cols = y_pred.shape[-1] if y_pred.ndim else 1
    if backend.current().runs_kernels:
        y_true, y_pred = _floats("thresholds", y_true, y_pred)
        n = launch.i32(y_pred.size, "thresholds: elements")
        launch.run(_FILE, "threshold_histogram", launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS, y_true,
                   y_pred, hist, n, cols, -1 if class_id is None else int(class_id), thresholds,
                   thresholds.size)
        return hist
    if class_id is not None:
        y_true, y_pred = y_true[..., class_id], y_pred[..., class_id]
    bins = np.searchsorted(thresholds, precision.widen(y_pred).reshape(-1).astype(np.float32), side="left")
    np.add.at(hist, ((y_true.reshape(-1) != 0).astype(np.int64), bins), 1)
    return hist


def top_k_count(count, y_true, y_pred, k, sparse):
    """``count += `` rows whose target class is among the k largest predictions (ties count in);
    ``y_true`` integer labels (...,) when ``sparse``, else one-hot (..., C). ``count``: uint64 (1,)."""
    cols = y_pred.shape[-1]
    rows = y_pred.size // cols
    if backend.current().runs_kernels:
        y_true, y_pred = _floats("top-k accuracy", y_true, y_pred)
        launch.run(_FILE, "top_k_count", launch.blocks_for(rows, cap=256), launch.THREADS, y_true, y_pred, count,
                   launch.i32(rows, "top-k accuracy: rows"), cols, int(k), int(bool(sparse)))
        return count
    y_true, p = precision.widen(y_true), precision.widen(y_pred).reshape(rows, cols)
    target = y_true.reshape(-1).astype(np.int64) if sparse else np.argmax(y_true.reshape(rows, cols), -1)
    valid = (target >= 0) & (target < cols)
    own = p[np.arange(rows), np.where(valid, target, 0)]
    above = np.sum(p > own[:, None], axis=-1)
    count += np.uint64(np.count_nonzero(valid & (above < k)))
    return count


def fbeta_update(state, y_true, y_pred, threshold=None):
    """``state[0..3] +=`` per-class sums of ``pred y``, ``pred (1 - y)``, ``(1 - pred) y``, ``y``;
    ``pred``: the row's maximum (threshold None) or ``y_pred > threshold``. state: float32 (4, C)."""
    cols = y_pred.shape[-1]
    rows = y_pred.size // cols
    if backend.current().runs_kernels:
        y_true, y_pred = _floats("F-score", y_true, y_pred)
        launch.run(_FILE, "fbeta_update", cols, launch.THREADS, y_true, y_pred, state,
                   launch.i32(rows, "F-score: rows"), cols, launch.f32(threshold or 0.0), int(threshold is None))
        return state
    y, p = precision.widen(y_true).reshape(rows, cols), precision.widen(y_pred).reshape(rows, cols)
    if threshold is None:
        pred = (p >= p.max(-1, keepdims=True)) & (np.abs(p) > 1e-9)
    else:
        pred = p > threshold
    pred = pred.astype(np.float32)
    state += np.stack([np.sum(pred * y, 0), np.sum(pred * (1 - y), 0), np.sum((1 - pred) * y, 0), np.sum(y, 0)])
    return state
