"""Batch normalization over every axis but the last (channels), forward and backward.

Inputs are (..., C): (N, C) after a Dense, (N, H, W, C) after a conv. Statistics are per channel
over the other ``M = x.size / C`` values. Training uses the batch's mean and biased variance and
returns ``mean`` and ``inv_std = 1 / sqrt(var + epsilon)`` (C,), which is all its backward needs
besides ``x``; inference uses the moving statistics. ``gamma`` None means a scale of 1 and
``beta`` None an offset of 0 (BatchNormalization with ``scale=False`` / ``center=False``).
"""
import numpy as np

__all__ = [
    "batch_norm_train_forward", "batch_norm_backward",
    "batch_norm_inference_forward", "batch_norm_inference_backward",
    "batch_norm_update_moving_stats",
]


def _rows(a):
    return a.reshape(-1, a.shape[-1])


def _affine(x_hat, gamma, beta):
    y = x_hat * gamma if gamma is not None else x_hat
    return y + beta if beta is not None else y


def batch_norm_train_forward(x, gamma, beta, epsilon):
    """Normalise with batch statistics. ``x`` (..., C); ``gamma``, ``beta`` (C,) or None.

    Returns ``(y, mean, inv_std)``: ``y`` like ``x``; ``mean`` and ``inv_std`` (C,), the batch
    mean and ``1 / sqrt(biased variance + epsilon)``.
    """
    rows = _rows(x)
    mean = rows.mean(axis=0)
    centered = rows - mean
    # Two passes (mean, then squares of the centred values) stay accurate when |mean| >> std.
    var = np.mean(centered * centered, axis=0)
    inv_std = 1 / np.sqrt(var + epsilon)
    y = _affine(centered * inv_std, gamma, beta)
    return y.reshape(x.shape), mean, inv_std


def batch_norm_backward(dy, x, gamma, mean, inv_std):
    """Gradient of the training forward. ``dy``, ``x`` (..., C); ``mean``, ``inv_std`` from it.

    Returns ``(dx, dgamma, dbeta)``, ``dx`` like ``x``, the others (C,). The batch statistics
    depend on ``x``, so ``dx = gamma * inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat))``.
    """
    dy_rows, count = _rows(dy), dy.size // dy.shape[-1]
    x_hat = (_rows(x) - mean) * inv_std
    dbeta = dy_rows.sum(axis=0)
    dgamma = np.sum(dy_rows * x_hat, axis=0)
    scale = inv_std * gamma if gamma is not None else inv_std
    dx = (dy_rows - dbeta / count - x_hat * (dgamma / count)) * scale
    return dx.reshape(x.shape), dgamma, dbeta


def batch_norm_inference_forward(x, gamma, beta, moving_mean, moving_var, epsilon):
    """Normalise with fixed statistics: ``(x - moving_mean) / sqrt(moving_var + epsilon)``,
    then scale and offset. ``x`` (..., C), the rest (C,) (``gamma``, ``beta`` may be None)."""
    inv_std = 1 / np.sqrt(moving_var + epsilon)
    return _affine((x - moving_mean) * inv_std, gamma, beta)


def batch_norm_inference_backward(dy, x, gamma, moving_mean, moving_var, epsilon):
    """Gradient of the inference forward (statistics are constants here, e.g. a frozen layer).

    Returns ``(dx, dgamma, dbeta)``: ``dx`` like ``x``, the others (C,).
    """
    inv_std = 1 / np.sqrt(moving_var + epsilon)
    dy_rows = _rows(dy)
    dbeta = dy_rows.sum(axis=0)
    dgamma = np.sum(dy_rows * ((_rows(x) - moving_mean) * inv_std), axis=0)
    scale = inv_std * gamma if gamma is not None else inv_std
    return dy * scale, dgamma, dbeta


def batch_norm_update_moving_stats(moving_mean, moving_var, mean, inv_std, momentum, epsilon):
    """In place: ``moving = momentum * moving + (1 - momentum) * batch`` for mean and variance.

    The batch's biased variance is recovered from the training forward's ``inv_std`` as
    ``1 / inv_std**2 - epsilon`` (rounding can take a zero variance a hair below 0: clamped).
    All arrays (C,).
    """
    var = np.maximum(1 / (inv_std * inv_std) - epsilon, 0)
    moving_mean *= momentum
    moving_mean += (1 - momentum) * mean
    moving_var *= momentum
    moving_var += (1 - momentum) * var
