"""Losses (value and gradient) and the reductions metrics need.

Conventions (Keras's): ``y_true`` first, predictions second; the class axis is the last one;
every loss is reduced by "sum_over_batch_size", i.e. the per-sample loss (a sum over classes
for cross-entropies, a mean over the last axis for mse, mae and binary cross-entropy) averaged
over all remaining elements. Forward functions return that mean as a 0-d array (float() it);
backward functions return the gradient of that mean with respect to the predictions, in their
dtype. Sparse labels are integer arrays of the predictions' shape without the class axis.
"""
import numpy as np

EPSILON = 1e-7   # Keras's backend epsilon: probabilities are clipped to [EPSILON, 1 - EPSILON]


def _rows(pred):
    """Number of per-sample losses of a cross-entropy: every element but the class axis."""
    return pred.size // pred.shape[-1]


def one_hot(labels, num_classes, dtype):
    """Integer labels (...,) -> one-hot (..., num_classes) in ``dtype``."""
    return (labels[..., None] == np.arange(num_classes)).astype(dtype)


# -- softmax cross-entropy from logits (fused: the stable form of softmax + cross-entropy) ------

def _log_softmax(logits):
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def softmax_cross_entropy_forward(y_true, logits):
    """Mean of ``-sum(y_true * log_softmax(logits))`` over rows; y_true and logits (..., C).

    Returns ``(loss, probs)``; probs (..., C) is what backward needs. The row maximum is
    subtracted before exponentiating, so logits of 1e4 give a finite loss.
    """
    log_probs = _log_softmax(logits)
    loss = -np.sum(y_true * log_probs) / _rows(logits)
    return loss, np.exp(log_probs)


def softmax_cross_entropy_backward(y_true, probs):
    """d(mean loss)/d(logits) = ``(probs * sum(y_true) - y_true) / rows``; ``(p - y) / rows`` for one-hot."""
    total = np.sum(y_true, axis=-1, keepdims=True)
    return ((probs * total - y_true) / _rows(probs)).astype(probs.dtype, copy=False)


def sparse_softmax_cross_entropy_forward(labels, logits):
    """As :func:`softmax_cross_entropy_forward` with integer labels (...,); returns ``(loss, probs)``."""
    log_probs = _log_softmax(logits)
    picked = np.take_along_axis(log_probs, labels[..., None], axis=-1)
    return -np.sum(picked) / _rows(logits), np.exp(log_probs)


def sparse_softmax_cross_entropy_backward(labels, probs):
    """d(mean loss)/d(logits) = ``(probs - one_hot(labels)) / rows``."""
    return (probs - one_hot(labels, probs.shape[-1], probs.dtype)) / probs.dtype.type(_rows(probs))


# -- categorical cross-entropy on probabilities -----------------------------------------------

def _normalised_clipped(y_pred, eps):
    # Keras rescales each row to sum 1 before clipping, so unnormalised scores are accepted.
    scale = np.sum(y_pred, axis=-1, keepdims=True)
    q = y_pred / scale
    return scale, q, np.clip(q, eps, 1 - eps)


def categorical_crossentropy_forward(y_true, y_pred, eps=EPSILON):
    """Mean over rows of ``-sum(y_true * log(clip(p / sum(p), eps, 1 - eps)))``; both (..., C)."""
    _, _, clipped = _normalised_clipped(y_pred, eps)
    return -np.sum(y_true * np.log(clipped)) / _rows(y_pred)


def categorical_crossentropy_backward(y_true, y_pred, eps=EPSILON):
    """d(mean loss)/d(y_pred), through the row normalisation; zero where the clip is active."""
    scale, q, clipped = _normalised_clipped(y_pred, eps)
    dq = -y_true / clipped * ((q >= eps) & (q <= 1 - eps)) / _rows(y_pred)
    dp = (dq - np.sum(dq * q, axis=-1, keepdims=True)) / scale
    return dp.astype(y_pred.dtype, copy=False)


def sparse_categorical_crossentropy_forward(labels, y_pred, eps=EPSILON):
    """:func:`categorical_crossentropy_forward` with integer labels (...,)."""
    return categorical_crossentropy_forward(one_hot(labels, y_pred.shape[-1], y_pred.dtype), y_pred, eps)


def sparse_categorical_crossentropy_backward(labels, y_pred, eps=EPSILON):
    return categorical_crossentropy_backward(one_hot(labels, y_pred.shape[-1], y_pred.dtype), y_pred, eps)


# -- binary cross-entropy ---------------------------------------------------------------------

def binary_crossentropy_forward(y_true, y_pred, eps=EPSILON):
    """Mean of ``-(y log p + (1 - y) log(1 - p))`` with p clipped to [eps, 1 - eps]; same shapes."""
    p = np.clip(y_pred, eps, 1 - eps)
    return -np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))


def binary_crossentropy_backward(y_true, y_pred, eps=EPSILON):
    """d(mean loss)/d(y_pred) = ``(p - y) / (p (1 - p)) / size``; zero where the clip is active."""
    p = np.clip(y_pred, eps, 1 - eps)
    inside = (y_pred >= eps) & (y_pred <= 1 - eps)
    return ((p - y_true) / (p * (1 - p)) * inside / y_pred.size).astype(y_pred.dtype, copy=False)


def binary_crossentropy_from_logits_forward(y_true, logits):
    """Mean of the logistic loss in its stable form ``max(x, 0) - x y + log(1 + exp(-|x|))``."""
    return np.mean(np.maximum(logits, 0) - logits * y_true + np.log1p(np.exp(-np.abs(logits))))


def binary_crossentropy_from_logits_backward(y_true, logits):
    """d(mean loss)/d(logits) = ``(sigmoid(x) - y) / size``."""
    e = np.exp(-np.abs(logits))
    sigmoid = np.where(logits >= 0, 1 / (1 + e), e / (1 + e))
    return ((sigmoid - y_true) / logits.size).astype(logits.dtype, copy=False)


# -- regression -------------------------------------------------------------------------------

def mse_forward(y_true, y_pred):
    """Mean squared error over all elements (same shapes)."""
    return np.mean((y_pred - y_true) ** 2)


def mse_backward(y_true, y_pred):
    return ((y_pred - y_true) * (2 / y_pred.size)).astype(y_pred.dtype, copy=False)


def mae_forward(y_true, y_pred):
    """Mean absolute error over all elements (same shapes)."""
    return np.mean(np.abs(y_pred - y_true))


def mae_backward(y_true, y_pred):
    return (np.sign(y_pred - y_true) / y_pred.size).astype(y_pred.dtype, copy=False)


# -- reductions for metrics (sums, so that metrics can total them over batches) ----------------

def count_argmax_equal(y_true, y_pred):
    """How many rows have ``argmax(y_true) == argmax(y_pred)`` over the last axis."""
    return np.count_nonzero(np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1))


def count_label_equal(labels, y_pred):
    """How many rows have ``argmax(y_pred) == labels``; labels (...,), y_pred (..., C)."""
    return np.count_nonzero(np.argmax(y_pred, axis=-1) == labels)


def count_binary_equal(y_true, y_pred, threshold=0.5):
    """How many elements have ``(y_pred > threshold) == y_true`` (y_true of 0s and 1s)."""
    return np.count_nonzero((y_pred > threshold).astype(y_true.dtype) == y_true)


def sum_squared_error(y_true, y_pred):
    return np.sum((y_pred - y_true) ** 2)


def sum_absolute_error(y_true, y_pred):
    return np.sum(np.abs(y_pred - y_true))
