"""Keras 3's loss functions (``keras.losses.mean_squared_error`` ...): per-sample values, the last
axis reduced, the batch not, written with gn.ops.

    recon = gn.ops.mean(gn.ops.sum(gn.losses.binary_crossentropy(x, x_hat), axis=(1, 2)))

They take arrays or gn.Tensors and return a gn.Tensor, so they work inside a GradientTape (a
VAE's train_step), in ``compile(loss=gn.losses.mean_squared_error)`` (a function loss) and as
metrics. Each follows Keras's formula and its epsilon (1e-7); the ops run the broadcast and
reduction kernels on the kernel backends.
"""
import numpy as np

from . import ops

__all__ = ["mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
           "mean_squared_logarithmic_error", "kl_divergence", "poisson", "huber", "log_cosh", "hinge",
           "squared_hinge", "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy"]

_EPSILON = 1e-7   # Keras's backend.epsilon()


def _pair(y_true, y_pred):
    """y_pred as a tensor, y_true as one of its dtype, ranks matched as Keras matches them (a
    trailing axis of 1 dropped, or added to a rank-1 operand)."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        if y_pred.ndim == 1:
            y_pred = ops.expand_dims(y_pred, -1)
        else:
            y_true = ops.squeeze(y_true, -1)
    elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        if y_true.ndim == 1:
            y_true = ops.expand_dims(y_true, -1)
        else:
            y_pred = ops.squeeze(y_pred, -1)
    return y_true, y_pred


def mean_squared_error(y_true, y_pred):
    """``mean(square(y_true - y_pred), axis=-1)``."""
    y_true, y_pred = _pair(y_true, y_pred)
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


def mean_absolute_error(y_true, y_pred):
    """``mean(abs(y_true - y_pred), axis=-1)``."""
    y_true, y_pred = _pair(y_true, y_pred)
    return ops.mean(ops.abs(y_true - y_pred), axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    """``100 * mean(abs((y_true - y_pred) / max(abs(y_true), 1e-7)), axis=-1)``."""
    y_true, y_pred = _pair(y_true, y_pred)
    return 100.0 * ops.mean(ops.abs((y_true - y_pred) / ops.maximum(ops.abs(y_true), _EPSILON)), axis=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    """``mean(square(log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1)), axis=-1)``."""
    y_true, y_pred = _pair(y_true, y_pred)
    first, second = (ops.log(ops.maximum(v, _EPSILON) + 1.0) for v in (y_pred, y_true))
    return ops.mean(ops.square(first - second), axis=-1)


def kl_divergence(y_true, y_pred):
    """``sum(t * log(t / p), axis=-1)`` with both clipped to [1e-7, 1]."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.clip(ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype), _EPSILON, 1.0)
    y_pred = ops.clip(y_pred, _EPSILON, 1.0)
    return ops.sum(y_true * ops.log(y_true / y_pred), axis=-1)


def poisson(y_true, y_pred):
    """``mean(y_pred - y_true * log(y_pred + 1e-7), axis=-1)``."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    return ops.mean(y_pred - y_true * ops.log(y_pred + _EPSILON), axis=-1)


def huber(y_true, y_pred, delta=1.0):
    """Quadratic ``0.5 * e**2`` for ``|e| <= delta``, linear ``delta * |e| - 0.5 * delta**2`` beyond."""
    y_true, y_pred = _pair(y_true, y_pred)
    error = y_pred - y_true
    magnitude = ops.abs(error)
    return ops.mean(ops.where(magnitude <= delta, 0.5 * ops.square(error), delta * magnitude - 0.5 * delta ** 2),
                    axis=-1)


def log_cosh(y_true, y_pred):
    """``mean(log(cosh(y_pred - y_true)), axis=-1)``, as ``x + softplus(-2x) - log(2)`` (no overflow)."""
    y_true, y_pred = _pair(y_true, y_pred)
    x = y_pred - y_true
    z = x * -2.0
    softplus = ops.maximum(z, 0.0) + ops.log1p(ops.exp(-ops.abs(z)))
    return ops.mean(x + softplus - float(np.log(2.0)), axis=-1)


def _hinge_labels(y_true):
    """Keras turns 0/1 labels into -1/1 (only when every label is 0 or 1: a host read of the targets)."""
    labels = ops.convert_to_numpy(y_true)
    return 2.0 * y_true - 1.0 if np.all((labels == 0) | (labels == 1)) else y_true


def hinge(y_true, y_pred):
    """``mean(max(1 - y_true * y_pred, 0), axis=-1)``, labels -1/1 (0/1 converted)."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = _hinge_labels(ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype))
    return ops.mean(ops.maximum(1.0 - y_true * y_pred, 0.0), axis=-1)


def squared_hinge(y_true, y_pred):
    """``mean(square(max(1 - y_true * y_pred, 0)), axis=-1)``, labels -1/1 (0/1 converted)."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = _hinge_labels(ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype))
    return ops.mean(ops.square(ops.maximum(1.0 - y_true * y_pred, 0.0)), axis=-1)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """The mean over ``axis`` of the elementwise binary cross-entropy (``gn.ops.binary_crossentropy``)."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return ops.mean(ops.binary_crossentropy(y_true, y_pred, from_logits=from_logits), axis=axis)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """``-sum(y_true * log(p), axis)`` over one-hot (or soft) targets; p the softmax with from_logits."""
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]
    return ops.categorical_crossentropy(y_true, y_pred, from_logits=from_logits, axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """``-log(p[label])`` per row, integer labels; ``ignore_class`` rows give 0."""
    y_pred, y_true = ops.convert_to_tensor(y_pred), ops.convert_to_tensor(y_true)
    if y_true.ndim == y_pred.ndim and y_true.shape[axis] == 1:
        y_true = ops.squeeze(y_true, axis=axis)
    if ignore_class is None:
        return ops.sparse_categorical_crossentropy(y_true, y_pred, from_logits=from_logits, axis=axis)
    valid = ops.not_equal(y_true, ignore_class)
    labels = ops.where(valid, y_true, ops.zeros_like(y_true))
    values = ops.sparse_categorical_crossentropy(labels, y_pred, from_logits=from_logits, axis=axis)
    return ops.where(valid, values, ops.zeros_like(values))
