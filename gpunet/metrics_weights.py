"""How a metric reads ``sample_weight``: Keras 3's shape rules, worked out on the host from shapes.

Mean-type metrics (accuracies, errors, top-k; Keras's ``MeanMetricWrapper`` through
``reduce_to_samplewise_values``): the metric function gives one value per row (``values``,
e.g. ``(batch, H, W)`` for a segmentation accuracy); the weight and the values are brought to
one rank (a trailing axis of 1 dropped or added), the values averaged over the axes the weight
lacks, the weight broadcast over the rest, then

    total += sum over samples of mean(values * weight)     count += sum over samples of mean(weight)

and ``result() = total / count``. Unweighted, ``total`` adds each sample's mean and ``count`` the
batch size. A per-sample weight ``(batch,)`` and a per-pixel weight ``(batch, H, W)`` both fit
a ``(batch, H, W)`` accuracy.

Confusion metrics (IoU, Precision, Recall, AUC) add each row's (element's) weight instead of 1:
the weight's size must be 1 or the product of a leading part of the shape (one per sample, per
row, per element), as Keras broadcasts it.
"""
import math

import numpy as np

from . import backend

__all__ = ["Samplewise", "samplewise", "leading_weights"]


class Samplewise:
    """A weight laid out for ``weighted_row_sums``: ``weights`` (float32 on the backend) covers the
    values' leading axes, ``per`` rows share one weight, and the batch's sums scale to Keras's
    total / count by ``total_scale`` / ``count_scale``."""

    def __init__(self, weights, per, samples_mean_over):
        self.weights, self.per = weights, int(per)
        self.count_scale = 1.0 / samples_mean_over
        self.total_scale = 1.0 / (samples_mean_over * self.per)


def _same_rank(values_shape, weight_shape):
    """Keras's ``squeeze_or_expand_to_same_rank(values, sample_weight)`` on shapes."""
    v, w = list(values_shape), list(weight_shape)
    if len(v) == len(w) + 1 and v and v[-1] == 1:
        if len(w) == 1:
            w.append(1)
        else:
            v.pop()
    elif len(w) == len(v) + 1 and w and w[-1] == 1:
        if len(v) == 1:
            v.append(1)
        else:
            w.pop()
    return v, w


def samplewise(sample_weight, values_shape, owner):
    """``sample_weight`` laid out for a metric whose function gives values of ``values_shape``."""
    device = backend.current()
    weights = device.asarray(sample_weight, dtype=np.float32)
    v, w = _same_rank(values_shape, tuple(weights.shape))
    lead = v[:len(w)]
    if len(w) > len(v) or any(a not in (b, 1) for a, b in zip(w, lead)):
        raise ValueError(f"Metric '{owner}': sample_weight of shape {tuple(weights.shape)} does not broadcast to "
                         f"its values of shape {tuple(values_shape)} (one per sample, or one per value, as "
                         f"Keras takes them).")
    weights = weights.reshape(tuple(w))
    if tuple(w) != tuple(lead):   # a weight with axes of 1: spread on the device (no host round trip)
        spread = device.zeros(tuple(lead), np.float32)
        spread[...] = weights
        weights = spread
    weights = weights.reshape(-1)
    return Samplewise(weights, math.prod(v[len(w):]), math.prod(lead[1:]) if len(lead) > 1 else 1)


def leading_weights(sample_weight, shape, owner):
    """``(float32 weights on the backend, per)``: the weight of flat element r of an array of
    ``shape`` is ``weights[r // per]``; the weight's size must be 1 or the product of a leading
    part of ``shape`` (one weight per sample, per row, per element)."""
    weights = backend.current().asarray(sample_weight, dtype=np.float32).reshape(-1)
    total = math.prod(shape)
    sizes = [math.prod(shape[:k]) for k in range(len(shape) + 1)]
    if weights.size not in sizes:
        raise ValueError(f"Metric '{owner}': sample_weight of shape {tuple(np.shape(sample_weight))} does not fit "
                         f"values of shape {tuple(shape)}; expected one weight for all, one per sample "
                         f"({shape[0] if shape else 1}), or one per value ({' or '.join(map(str, sizes[2:])) or 1}).")
    return weights, max(total // max(weights.size, 1), 1)
