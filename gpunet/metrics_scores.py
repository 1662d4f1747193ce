"""Keras 3's F1Score, FBetaScore, TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy and
RootMeanSquaredError. States stay on the backend (``kernels/metrics.cu`` adds each batch);
``result()`` reads them.
"""
import numpy as np

from . import metrics_weights
from .metrics import Metric, MeanMetric, MeanSquaredError
from .metrics_confusion import EPSILON, as_float, read
from .primitives import launch
from .primitives import metrics as ops

__all__ = ["FBetaScore", "F1Score", "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy",
           "RootMeanSquaredError"]


class FBetaScore(Metric):
    """``(1 + beta^2) P R / (beta^2 P + R)`` per class, from y_pred thresholded (``threshold``, or
    each row's maximum when None) against y_true; shapes (batch, classes).

    ``average``: None (one score per class, an array), "micro" (from the totals), "macro" (the
    mean of the class scores) or "weighted" (weighted by each class's share of y_true).
    """

    default_name = "fbeta_score"

    def __init__(self, average=None, beta=1.0, threshold=None, name=None, dtype=None):
        owner = type(self).__name__
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(f"{owner} average must be None, 'micro', 'macro' or 'weighted'; received {average!r}.")
        if not float(beta) > 0:
            raise ValueError(f"{owner} beta must be > 0; received {beta!r}.")
        if threshold is not None and not 0.0 < float(threshold) <= 1.0:
            raise ValueError(f"{owner} threshold must be in (0, 1] or None; received {threshold!r}.")
        self.average, self.beta, self.threshold, self.dtype = average, float(beta), threshold, dtype
        super().__init__(name=name)

    def reset_state(self):
        self._state = None   # (4, classes): tp, fp, fn, sum of y_true; made at the first update

    def update_state(self, y_true, y_pred, sample_weight=None):
        """sample_weight: one weight per row, (batch,) or (batch, 1), multiplying each row's terms."""
        y_true, y_pred = as_float(y_true), as_float(y_pred)
        if y_pred.ndim != 2 or tuple(y_true.shape) != tuple(y_pred.shape):
            raise ValueError(f"Metric '{self.name}' needs y_true and y_pred of one shape (batch, classes); "
                             f"received {tuple(y_true.shape)} and {tuple(y_pred.shape)}.")
        if self._state is None:
            self._state = launch.zeros((4, y_pred.shape[-1]), np.float32)
        weights = None
        if sample_weight is not None:
            weights, per = metrics_weights.leading_weights(sample_weight, y_pred.shape[:1], self.name)
            if per != 1:   # one weight for the whole batch
                weights = launch.zeros((y_pred.shape[0],), np.float32) + weights
        ops.fbeta_update(self._state, y_true, y_pred, self.threshold, weights)

    def result(self):
        if self._state is None:
            return 0.0
        tp, fp, fn, weights = read(self._state).astype(np.float32)
        if self.average == "micro":
            tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
        precision = tp / (tp + fp + EPSILON)
        recall = tp / (tp + fn + EPSILON)
        b2 = self.beta ** 2
        score = precision * recall / (b2 * precision + recall + EPSILON) * (1 + b2)
        if self.average == "weighted":
            return float(np.sum(score * weights / (weights.sum() + EPSILON)))
        if self.average is not None:
            return float(np.mean(score))
        return score

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "average": self.average, "beta": self.beta,
                "threshold": self.threshold}


class F1Score(FBetaScore):
    """FBetaScore with beta = 1."""

    default_name = "f1_score"

    def __init__(self, average=None, threshold=None, name=None, dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config


class TopKCategoricalAccuracy(MeanMetric):
    """Fraction of rows whose one-hot target class is among the ``k`` largest predictions (ties
    count as in); y_true and y_pred (batch, ..., classes)."""

    default_name = "top_k_categorical_accuracy"
    _sparse = False

    def __init__(self, k=5, name=None, dtype=None):
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"{type(self).__name__} k must be a positive int; received {k!r}.")
        self.k, self.dtype = int(k), dtype
        super().__init__(name=name)

    def _targets(self, y_true, y_pred):
        y_true = as_float(y_true)
        if tuple(y_true.shape) != tuple(y_pred.shape):
            raise ValueError(f"Metric '{self.name}' needs one-hot targets of shape {tuple(y_pred.shape)}; "
                             f"received shape {tuple(y_true.shape)}.")
        return y_true

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(y_true, as_float(y_pred), sample_weight)

    def _batch(self, y_true, y_pred):
        count = ops.top_k_count(launch.zeros((1,), np.uint64), y_true, y_pred, self.k, self._sparse)
        return count.reshape(()), y_pred.size // y_pred.shape[-1]

    def _weighted(self, y_true, y_pred, plan):
        return ops.weighted_row_sums(y_true, y_pred, plan.weights, plan.per, ops.ROW_TOP_K, self.k,
                                     sparse=self._sparse)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "k": self.k}


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    """TopKCategoricalAccuracy with integer labels (batch, ...) or (batch, ..., 1)."""

    default_name = "sparse_top_k_categorical_accuracy"
    _sparse = True

    def __init__(self, k=5, name=None, dtype=None, from_sorted_ids=False):
        if from_sorted_ids:
            raise ValueError(f"{type(self).__name__}: from_sorted_ids=True is not supported by gpunet.")
        super().__init__(k=k, name=name, dtype=dtype)

    def _targets(self, y_true, y_pred):
        y_true = as_float(y_true)
        if y_true.size != y_pred.size // y_pred.shape[-1]:
            raise ValueError(f"Metric '{self.name}' needs one integer label per row of {tuple(y_pred.shape)}; "
                             f"received shape {tuple(y_true.shape)}.")
        return y_true.reshape(y_pred.shape[:-1])


class RootMeanSquaredError(MeanSquaredError):
    """``sqrt`` of the mean of ``(y_pred - y_true)^2`` over all elements seen."""

    default_name = "root_mean_squared_error"

    def _values_shape(self, y_true, y_pred):
        return tuple(y_pred.shape)   # Keras's RMSE averages the squared errors themselves, element by element

    def result(self):
        return float(np.sqrt(super().result()))
