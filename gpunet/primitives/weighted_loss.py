"""Losses with sample weights: Keras's ``sum(w * row_loss) / rows`` and the weighted gradients.

``w`` holds one weight per row, shaped like the predictions without their last axis (batch
first); a row is one per-sample loss (a sum over classes for the cross-entropies, a mean over
the last axis for mse, mae and binary cross-entropy). Forward functions return the weighted
mean as a 0-d array; a weighted gradient is the unweighted one (``primitives.loss``) scaled row
by row, :func:`scale_rows`, since a row's loss depends on that row alone.

On a kernel backend every function runs kernels of ``kernels/weighted_loss.cu``.

Dtypes: predictions (and, for :func:`scale_rows`, the gradient) float32, bfloat16 or float16
(float64 on numpy only); targets and weights float32 (16-bit ones widened, exactly); the
weighted means and probs float32. 16-bit inputs are widened, the arithmetic is float32 on both
backends, and a 16-bit output (scale_rows) is rounded once. A weighted 16-bit gradient is so
rounded twice (by the unweighted backward, then here): within 1.5 ulps of the exact value.
"""
import numpy as np

from .. import backend
from . import launch, precision
from .loss import (EPSILON, _log_softmax, _normalised_clipped, _valid_labels, _wide, float_targets, one_hot,
                   predictions)

_FILE = "weighted_loss.cu"
_MAX_PARTIALS = 256
_ROWS_PER_BLOCK = 8


def _check(w, y_pred):
    if tuple(w.shape) != tuple(y_pred.shape[:-1]):
        raise ValueError(f"sample weights need shape {tuple(y_pred.shape[:-1])} (one per row of predictions "
                         f"{tuple(y_pred.shape)}); received shape {tuple(w.shape)}.")


def scale_rows(x, w):
    """``x * w[..., None]``: each row of x (..., C) times its weight; w (...,)."""
    _check(w, x)
    if backend.current().runs_kernels:
        x, w = predictions("scale_rows", x), float_targets("scale_rows", w)
        out = launch.empty(x.shape, x.dtype)
        n = launch.i32(x.size, "scale_rows: elements")
        launch.run(_FILE, "scale_rows", launch.blocks_for(n, cap=2048), launch.THREADS, x, w, out, n,
                   int(x.shape[-1]))
        return out
    return precision.narrow(precision.widen(x) * precision.widen(w)[..., None], x.dtype)


def weighted_total(values, weights):
    """``sum(weights[k] * values[k])`` of 0-d float32 losses, added in order in float32 (a 0-d
    float32 array): a model's total loss over its outputs. One kernel launch on the kernel
    backends (the values reached through an address table: nothing read on the host)."""
    if len(values) != len(weights) or not values:
        raise ValueError(f"weighted_total: needs one weight per loss value and at least one; received "
                         f"{len(values)} values and {len(weights)} weights.")
    if backend.current().runs_kernels:
        values = [launch.array(v).reshape(()) for v in values]
        out = launch.empty((1,))
        launch.run(_FILE, "weighted_total", 1, 1, launch.address_table(values), launch.float_table(weights),
                   len(values), out)
        return out.reshape(())
    total = np.float32(0.0)
    for value, weight in zip(values, weights):
        total = total + np.float32(weight) * np.asarray(value, dtype=np.float32)
    return np.asarray(total, dtype=np.float32)


def _rows(y_pred):
    return y_pred.size // y_pred.shape[-1]


# -- cross-entropies ------------------------------------------------------------------------------

def softmax_cross_entropy_forward(targets, w, logits, sparse=False):
    """``(weighted mean of -sum(y * log_softmax(logits)), probs)``; targets (..., C) or labels (...,)."""
    _check(w, logits)
    if backend.current().runs_kernels:
        return _row_forward_kernel("softmax_cross_entropy_forward", targets, w, logits, sparse, with_probs=True)
    log_probs = _log_softmax(precision.widen(logits))
    w = precision.widen(w)
    if sparse:
        valid = _valid_labels(targets, logits.shape[-1])
        picked = np.take_along_axis(log_probs, np.where(valid, targets, 0)[..., None], axis=-1)[..., 0]
        row_loss = np.where(valid, -picked, np.nan)
    else:
        row_loss = -np.sum(precision.widen(targets) * log_probs, axis=-1)
    return np.sum(w * row_loss) / _rows(logits), np.exp(log_probs)


def categorical_crossentropy_forward(targets, w, y_pred, sparse=False, eps=EPSILON):
    """Weighted mean of ``-sum(y * log(clip(p / sum(p), eps, 1 - eps)))``; targets (..., C) or labels."""
    _check(w, y_pred)
    if backend.current().runs_kernels:
        return _row_forward_kernel("categorical_crossentropy_forward", targets, w, y_pred, sparse,
                                   False, launch.f32(eps), launch.f32(1 - eps))
    if sparse:
        valid = _valid_labels(targets, y_pred.shape[-1])
        targets = one_hot(targets, y_pred.shape[-1], y_pred.dtype)
    _, _, clipped = _normalised_clipped(y_pred, eps)
    row_loss = -np.sum(precision.widen(targets) * np.log(clipped), axis=-1)
    if sparse:
        row_loss = np.where(valid, row_loss, np.nan)
    return np.sum(precision.widen(w) * row_loss) / _rows(y_pred)


# -- elementwise losses ---------------------------------------------------------------------------

def _binary_crossentropy_terms(y, p, eps=EPSILON):
    c = np.clip(p, eps, 1 - eps)
    return -(y * np.log(c) + (1 - y) * np.log(1 - c))


def _logistic_terms(y, x):
    return np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))


_TERMS = {"binary_crossentropy": _binary_crossentropy_terms,
          "binary_crossentropy_from_logits": _logistic_terms,
          "squared_error": lambda y, p: (p - y) ** 2,
          "absolute_error": lambda y, p: np.abs(p - y)}


def elementwise_forward(kind, y_true, w, y_pred, eps=EPSILON):
    """Weighted mean over all elements of ``kind``'s term: ``sum(w[..., None] * term) / size``.

    kind: "binary_crossentropy", "binary_crossentropy_from_logits", "squared_error", "absolute_error".
    """
    if kind not in _TERMS:
        raise ValueError(f"elementwise_forward: unknown kind {kind!r}; expected one of {sorted(_TERMS)}.")
    _check(w, y_pred)
    if backend.current().runs_kernels:
        settings = (launch.f32(eps), launch.f32(1 - eps)) if kind == "binary_crossentropy" else ()
        return _elementwise_forward_kernel(f"weighted_{kind}_sum_partials", y_true, w, y_pred, *settings)
    y_true, w, y_pred = _wide(y_true, w, y_pred)
    return np.sum(w[..., None] * _TERMS[kind](y_true, y_pred)) / y_pred.size


# -- kernel paths -----------------------------------------------------------------------------------

def _finish(partial, divisor):
    out = launch.empty((1,))
    launch.run(_FILE, "weighted_sum_finish", 1, launch.THREADS, partial, partial.size, out, launch.f32(divisor))
    return out.reshape(())


def _labels(labels):
    """int32 labels; one that int32 cannot hold becomes -1 (invalid), not a wrapped valid class."""
    if labels.dtype == np.int32:   # the training loop uploads labels as int32 when they fit: no host op
        return launch.array(labels, np.int32)
    xp = backend.current().xp
    wide = xp.asarray(labels).astype(np.int64)
    return launch.array(xp.where((wide < 0) | (wide > 2 ** 31 - 1), -1, wide), np.int32)


def _row_forward_kernel(name, targets, w, y_pred, sparse, with_probs, *settings):
    kernel = "weighted_" + ("sparse_" if sparse else "") + name
    w, y_pred = float_targets(kernel, w), predictions(kernel, y_pred)
    if sparse:
        targets = _labels(targets)
    else:
        targets = float_targets(kernel, targets)
        if tuple(targets.shape) != tuple(y_pred.shape):
            raise ValueError(f"{kernel} needs targets of shape {tuple(y_pred.shape)}; received {tuple(targets.shape)}.")
    rows, cols = _rows(y_pred), int(y_pred.shape[-1])
    launch.i32(y_pred.size, f"{kernel}: elements")
    partial = launch.empty((launch.blocks_for(rows, _ROWS_PER_BLOCK, cap=_MAX_PARTIALS),))
    probs = launch.empty(y_pred.shape) if with_probs else None
    args = (targets, w, y_pred) + ((probs,) if with_probs else ()) + (partial, rows, cols) + settings
    launch.run(_FILE, kernel, partial.size, launch.THREADS, *args)
    value = _finish(partial, rows)
    return (value, probs) if with_probs else value


def _elementwise_forward_kernel(kernel, y_true, w, y_pred, *settings):
    y_true, w, y_pred = float_targets(kernel, y_true), float_targets(kernel, w), predictions(kernel, y_pred)
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(f"{kernel} needs y_true of shape {tuple(y_pred.shape)}; received {tuple(y_true.shape)}.")
    n = launch.i32(y_pred.size, f"{kernel}: elements")
    partial = launch.empty((launch.blocks_for(n, cap=_MAX_PARTIALS),))
    launch.run(_FILE, kernel, partial.size, launch.THREADS, y_true, y_pred, w, partial, n, int(y_pred.shape[-1]),
               *settings)
    return _finish(partial, n)
