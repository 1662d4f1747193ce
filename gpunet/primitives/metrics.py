"""State updates of the confusion-matrix metrics (IoU, precision / recall / AUC, top-k, F-scores),
NumPy reference and kernels (``kernels/metrics.cu``) side by side. Each adds one batch into a
state array that stays on the backend (``+=``); the metrics read it only in ``result()``.

Dtypes: ``y_pred`` float32, bfloat16 or float16 (float64 on numpy only), compared as its own
values (widened exactly on both backends); ``y_true`` float32 (16-bit widened), the thresholds and
F-score state float32, the counts uint64. Nothing is rounded: a 16-bit ``y_pred`` gives the counts
its float32 widening gives.

Weighted updates (Keras 3's ``sample_weight``): ``weights`` is a float32 array whose element
``r // per`` weighs row (or element) ``r``, so one weight may cover all the rows of a sample. The
weighted states are float32 (as Keras's), added with float atomics (confusion matrix, histogram)
or fixed-order block sums (``weighted_row_sums``, whose bits repeat).
"""
import numpy as np

from .. import backend
from . import launch, precision
from .loss import float_targets, predictions

_FILE = "metrics.cu"
_MAX_BLOCKS = 2048
CLASS_VALUE, CLASS_ARGMAX, CLASS_THRESHOLD = 0, 1, 2
# What weighted_row_sums takes as a row's value (Keras's metric functions)
ROW_ARGMAX_EQUAL, ROW_BINARY_EQUAL, ROW_SQUARED_ERROR, ROW_ABSOLUTE_ERROR, ROW_TOP_K, ROW_MEAN = 0, 1, 2, 3, 4, 5


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
                     mode_pred=CLASS_VALUE, threshold=0.5, weights=None, per=1, whole=False):
    """``cm[t, p] += 1`` for every row (uint64 ``cm`` of shape (classes, classes), rows = true), or
    with ``weights`` ``cm[t, p] += weights[row // per]`` (float32 ``cm``; truncated to integers first
    when ``whole``, as Keras's IoU of int dtype casts them).

    A row's class is its value (``CLASS_VALUE``), the argmax of its last axis (``CLASS_ARGMAX``)
    or ``value >= threshold`` (``CLASS_THRESHOLD``); rows with a class outside ``[0, classes)`` or
    a true class equal to ``ignore_class`` are left out."""
    rows = y_true.size // (y_true.shape[-1] if mode_true == CLASS_ARGMAX else 1)
    if backend.current().runs_kernels:
        y_true, y_pred = _floats("confusion matrix", y_true, y_pred)
        cols_true = y_true.shape[-1] if mode_true == CLASS_ARGMAX else 1
        cols_pred = y_pred.shape[-1] if mode_pred == CLASS_ARGMAX else 1
        rows = launch.i32(rows, "confusion matrix: rows")
        settings = (cols_true, cols_pred, classes, -1 if ignore_class is None else int(ignore_class), mode_true,
                    mode_pred, launch.f32(threshold))
        grid = launch.blocks_for(rows, cap=_MAX_BLOCKS)
        if weights is None:
            launch.run(_FILE, "confusion_update", grid, launch.THREADS, y_true, y_pred, cm, rows, *settings)
        else:
            launch.run(_FILE, "confusion_update_weighted", grid, launch.THREADS, y_true, y_pred,
                       launch.inputs("confusion matrix: weights", weights)[0], cm, rows, *settings, int(per),
                       int(bool(whole)))
        return cm
    t, p = _classes(y_true, mode_true, threshold), _classes(y_pred, mode_pred, threshold)
    keep = (t >= 0) & (t < classes) & (p >= 0) & (p < classes)
    if ignore_class is not None:
        keep &= t != ignore_class
    if weights is None:
        np.add.at(cm, (t[keep], p[keep]), 1)
    else:
        w = _per_row(weights, per, rows)
        np.add.at(cm, (t[keep], p[keep]), (np.trunc(w) if whole else w)[keep])
    return cm


def _per_row(weights, per, rows):
    """The float32 weight of each of ``rows`` rows: ``weights[r // per]``."""
    return np.repeat(np.asarray(weights, dtype=np.float32).reshape(-1), int(per))[:rows]


def threshold_histogram(hist, y_true, y_pred, thresholds, class_id=None, weights=None, per=1):
    """``hist[positive, b] += 1`` per element, b = how many ``thresholds`` (ascending float32
    array on the backend) lie strictly below the prediction; ``hist`` is uint64 (2, T + 1), or
    float32 with ``weights`` (element i adds ``weights[i // per]``)."""
    cols = y_pred.shape[-1] if y_pred.ndim else 1
    if backend.current().runs_kernels:
        y_true, y_pred = _floats("thresholds", y_true, y_pred)
        n = launch.i32(y_pred.size, "thresholds: elements")
        grid, class_id = launch.blocks_for(n, cap=_MAX_BLOCKS), -1 if class_id is None else int(class_id)
        if weights is None:
            launch.run(_FILE, "threshold_histogram", grid, launch.THREADS, y_true, y_pred, hist, n, cols, class_id,
                       thresholds, thresholds.size)
        else:
            launch.run(_FILE, "threshold_histogram_weighted", grid, launch.THREADS, y_true, y_pred,
                       launch.inputs("thresholds: weights", weights)[0], hist, n, cols, class_id, thresholds,
                       thresholds.size, int(per))
        return hist
    w = None if weights is None else _per_row(weights, per, y_pred.size).reshape(y_pred.shape)
    if class_id is not None:
        y_true, y_pred = y_true[..., class_id], y_pred[..., class_id]
        w = None if w is None else w[..., class_id]
    bins = np.searchsorted(thresholds, precision.widen(y_pred).reshape(-1).astype(np.float32), side="left")
    np.add.at(hist, ((y_true.reshape(-1) != 0).astype(np.int64), bins), 1 if w is None else w.reshape(-1))
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


def fbeta_update(state, y_true, y_pred, threshold=None, weights=None):
    """``state[0..3] +=`` per-class sums of ``pred y``, ``pred (1 - y)``, ``(1 - pred) y``, ``y``
    (each times its row's weight, ``weights`` (rows,) float32, when given); ``pred``: the row's
    maximum (threshold None) or ``y_pred > threshold``. state: float32 (4, C)."""
    cols = y_pred.shape[-1]
    rows = y_pred.size // cols
    if backend.current().runs_kernels:
        y_true, y_pred = _floats("F-score", y_true, y_pred)
        w = launch.placeholder() if weights is None else launch.inputs("F-score: weights", weights)[0]
        launch.run(_FILE, "fbeta_update", cols, launch.THREADS, y_true, y_pred, state,
                   launch.i32(rows, "F-score: rows"), cols, launch.f32(threshold or 0.0), int(threshold is None),
                   w, int(weights is not None))
        return state
    y, p = precision.widen(y_true).reshape(rows, cols), precision.widen(y_pred).reshape(rows, cols)
    if threshold is None:
        pred = (p >= p.max(-1, keepdims=True)) & (np.abs(p) > 1e-9)
    else:
        pred = p > threshold
    pred = pred.astype(np.float32)
    w = np.float32(1) if weights is None else np.asarray(weights, np.float32).reshape(rows, 1)
    state += np.stack([np.sum(pred * y * w, 0), np.sum(pred * (1 - y) * w, 0), np.sum((1 - pred) * y * w, 0),
                       np.sum(y * w, 0)])
    return state


def weighted_row_sums(y_true, y_pred, weights, per, kind, param=0.0, sparse=False):
    """``(sum over rows of value * weight, sum of the weights)``, a float32 (2,) array on the backend.

    Rows: ``y_pred`` (rows, cols) flat, ``y_true`` alike (or int labels (rows,) when ``sparse``);
    ``weights`` float32, row r weighted by ``weights[r // per]``. value (``kind``): ROW_ARGMAX_EQUAL
    (argmax of y_true, or the label, == argmax of y_pred), ROW_BINARY_EQUAL ((y_pred > param) == y_true,
    cols 1), ROW_SQUARED_ERROR / ROW_ABSOLUTE_ERROR (mean over cols), ROW_TOP_K (the target class among
    the ``param`` largest predictions, ties in), ROW_MEAN (the mean of y_pred's cols; y_true None)."""
    cols = y_pred.shape[-1] if y_pred.ndim else 1
    rows = y_pred.size // max(cols, 1)
    if backend.current().runs_kernels:
        return _weighted_row_sums_kernel(y_true, y_pred, weights, per, kind, param, sparse, rows, cols)
    p, w = precision.widen(y_pred).reshape(rows, cols), _per_row(weights, per, rows)
    target = np.asarray(y_true).reshape(-1).astype(np.int64) if sparse else None
    t = None if sparse or y_true is None else precision.widen(y_true).reshape(rows, cols).astype(np.float32)
    if kind in (ROW_ARGMAX_EQUAL, ROW_TOP_K) and not sparse:
        target = np.argmax(t, axis=-1)
    if kind == ROW_ARGMAX_EQUAL:
        values = np.argmax(p, axis=-1) == target
    elif kind == ROW_TOP_K:
        valid = (target >= 0) & (target < cols)
        own = p[np.arange(rows), np.where(valid, target, 0)]
        values = valid & (np.sum(p > own[:, None], axis=-1) < int(param))
    elif kind == ROW_MEAN:
        values = np.mean(p, axis=-1, dtype=np.float32)
    elif kind == ROW_BINARY_EQUAL:
        values = (p[:, 0] > np.float32(param)).astype(np.float32) == t[:, 0]
    else:
        d = p - t
        values = np.mean(d * d if kind == ROW_SQUARED_ERROR else np.abs(d), axis=-1, dtype=np.float32)
    firsts = np.arange(rows) % int(per) == 0
    return np.array([np.sum(values.astype(np.float32) * w), np.sum(w[firsts])], dtype=np.float32)


def _weighted_row_sums_kernel(y_true, y_pred, weights, per, kind, param, sparse, rows, cols):
    y_pred = predictions("weighted metric", y_pred)
    weights = launch.inputs("weighted metric: weights", weights)[0]
    rows = launch.i32(rows, "weighted metric: rows")
    partial = launch.empty((2 * launch.blocks_for(rows, cap=_MAX_BLOCKS),))
    blocks = partial.size // 2
    if sparse:
        labels = launch.array(y_true, np.int32)
        launch.run(_FILE, "weighted_label_sums", blocks, launch.THREADS, labels, y_pred, weights, partial, rows,
                   cols, int(per), kind, int(param))
    else:
        targets = launch.placeholder() if y_true is None else float_targets("weighted metric", y_true)
        launch.run(_FILE, "weighted_row_sums", blocks, launch.THREADS, targets, y_pred, weights, partial, rows,
                   cols, int(per), kind, launch.f32(param))
    out = launch.empty((2,))
    launch.run(_FILE, "weighted_sums_finish", 1, launch.THREADS, partial, blocks, out)
    return out
