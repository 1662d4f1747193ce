"""Keras's cross-entropies, MeanSquaredError and MeanAbsoluteError: the losses whose value and
gradient are fused kernels (primitives/loss.py), and the cross-entropies' fusion with a final
softmax (``compute_from_logits``: the softmax's input in, ``(value, dlogits, probs)`` out).

Shapes: predictions (batch, ..., classes); targets of the same shape, or integer labels
(batch, ...) for SparseCategoricalCrossentropy.
"""
import numpy as np

from . import backend
from .losses_base import Loss, label_dtype
from .primitives import loss as ops
from .primitives import weighted_loss
from .primitives.loss_terms import smooth_targets

__all__ = ["CategoricalCrossentropy", "SparseCategoricalCrossentropy", "BinaryCrossentropy",
           "MeanSquaredError", "MeanAbsoluteError"]


class _Crossentropy(Loss):
    """Shared by the categorical cross-entropies: from_logits, and fusion with a final softmax."""

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        self.from_logits = bool(from_logits)

    @property
    def fuses_softmax(self):
        return not self.from_logits

    def device_compute_from_logits(self, y_true, logits, sample_weight=None):
        """``(value, dlogits, probs)`` of softmax + this cross-entropy, stable for large logits;
        the value a 0-d backend array."""
        y_true = self._prepare(y_true, logits)
        if sample_weight is None:
            value, probs = self._softmax_ce_forward(y_true, logits)
            return value, self._softmax_ce_backward(y_true, probs, logits.dtype), probs
        w = self._row_weights(sample_weight, logits)
        value, probs = weighted_loss.softmax_cross_entropy_forward(y_true, w, logits, sparse=self.sparse)
        return value, weighted_loss.scale_rows(self._softmax_ce_backward(y_true, probs, logits.dtype), w), probs

    def _weighted_value(self, y_true, y_pred, w):
        if self.from_logits:
            return weighted_loss.softmax_cross_entropy_forward(y_true, w, y_pred, sparse=self.sparse)[0]
        return weighted_loss.categorical_crossentropy_forward(y_true, w, y_pred, sparse=self.sparse)

    def _value(self, y_true, y_pred):
        if self.from_logits:
            return self._softmax_ce_forward(y_true, y_pred)[0]
        return self._probability_forward(y_true, y_pred)

    def _gradient(self, y_true, y_pred):
        if self.from_logits:
            return self._softmax_ce_backward(y_true, self._softmax_ce_forward(y_true, y_pred)[1], y_pred.dtype)
        return self._probability_backward(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


class CategoricalCrossentropy(_Crossentropy):
    """Cross-entropy against one-hot (or soft) targets of the predictions' shape (..., classes)."""

    default_name = "categorical_crossentropy"

    def __init__(self, from_logits=False, label_smoothing=0.0, name=None, reduction="sum_over_batch_size"):
        super().__init__(from_logits=from_logits, name=name, reduction=reduction)
        self.label_smoothing = _smoothing(self, label_smoothing)

    def _prepare(self, y_true, y_pred):
        """Targets, smoothed as Keras does: ``y (1 - s) + s / classes``."""
        y_true = super()._prepare(y_true, y_pred)
        s = self.label_smoothing
        return smooth_targets(y_true, 1 - s, s / y_pred.shape[-1]) if s else y_true

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}

    _softmax_ce_forward = staticmethod(ops.softmax_cross_entropy_forward)
    _softmax_ce_backward = staticmethod(ops.softmax_cross_entropy_backward)
    _probability_forward = staticmethod(ops.categorical_crossentropy_forward)
    _probability_backward = staticmethod(ops.categorical_crossentropy_backward)

    def _expected_target_shapes(self, sample_shape):
        return [sample_shape]

    def _shape_hint(self, y, sample):
        if sample and sample[-1] > 1 and tuple(y.shape[1:]) in (sample[:-1], sample[:-1] + (1,)):
            return " Integer class labels need loss='sparse_categorical_crossentropy'."
        return ""


class SparseCategoricalCrossentropy(_Crossentropy):
    """Cross-entropy against integer class labels: targets (...,) for predictions (..., classes)."""

    default_name = "sparse_categorical_crossentropy"
    sparse = True
    _softmax_ce_forward = staticmethod(ops.sparse_softmax_cross_entropy_forward)
    _softmax_ce_backward = staticmethod(ops.sparse_softmax_cross_entropy_backward)
    _probability_forward = staticmethod(ops.sparse_categorical_crossentropy_forward)
    _probability_backward = staticmethod(ops.sparse_categorical_crossentropy_backward)

    def _prepare(self, y_true, y_pred):
        labels = backend.current().asarray(y_true, dtype=label_dtype(y_true))
        if labels.shape == y_pred.shape[:-1] + (1,):
            labels = labels.reshape(y_pred.shape[:-1])
        if labels.shape != y_pred.shape[:-1]:
            raise ValueError(f"Loss '{self.name}' needs integer labels of shape {tuple(y_pred.shape[:-1])} for "
                             f"predictions of shape {tuple(y_pred.shape)}; received shape {tuple(labels.shape)}.")
        # No range check here: reading labels.min() would wait for the device. A label outside
        # [0, classes) makes the loss NaN on every backend; check_targets names it before fit.
        return labels

    def _check_label_range(self, low, high, classes, where):
        bad = low if low < 0 else high if high >= classes else None
        if bad is not None:
            prefix = f"{where}: " if where else ""
            raise ValueError(f"{prefix}loss '{self.name}' got label {bad}, but the model outputs {classes} "
                             f"classes (valid labels are 0 to {classes - 1}).")

    def _expected_target_shapes(self, sample_shape):
        return [sample_shape[:-1], sample_shape[:-1] + (1,)]

    def check_targets(self, y_true, output_shape, where="y"):
        super().check_targets(y_true, output_shape, where)
        y = np.asarray(backend.current().to_numpy(y_true))
        if y.size == 0:
            return
        if y.dtype.kind not in "iub" and not np.array_equal(y, np.round(y)):
            bad = y.flat[int(np.argmax(y != np.round(y)))].item()
            raise ValueError(f"{where}: loss '{self.name}' needs integer class labels; received {bad!r}.")
        self._check_label_range(int(y.min()), int(y.max()), output_shape[-1], where)

    def _shape_hint(self, y, sample):
        if tuple(y.shape[1:]) == sample:
            return " One-hot targets need loss='categorical_crossentropy'."
        return ""


class BinaryCrossentropy(Loss):
    """Binary cross-entropy per element (targets 0/1 or in between), averaged over all elements.

    With ``from_logits=True`` the predictions are logits and the stable logistic form is used.
    """

    default_name = "binary_crossentropy"

    def __init__(self, from_logits=False, label_smoothing=0.0, name=None, reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _smoothing(self, label_smoothing)

    def _prepare(self, y_true, y_pred):
        """Targets, smoothed as Keras does: ``y (1 - s) + s / 2``."""
        y_true = super()._prepare(y_true, y_pred)
        s = self.label_smoothing
        return smooth_targets(y_true, 1 - s, 0.5 * s) if s else y_true

    def _value(self, y_true, y_pred):
        if self.from_logits:
            return ops.binary_crossentropy_from_logits_forward(y_true, y_pred)
        return ops.binary_crossentropy_forward(y_true, y_pred)

    def _gradient(self, y_true, y_pred):
        if self.from_logits:
            return ops.binary_crossentropy_from_logits_backward(y_true, y_pred)
        return ops.binary_crossentropy_backward(y_true, y_pred)

    def _weighted_value(self, y_true, y_pred, w):
        kind = "binary_crossentropy_from_logits" if self.from_logits else "binary_crossentropy"
        return weighted_loss.elementwise_forward(kind, y_true, w, y_pred)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "label_smoothing": self.label_smoothing}


def _smoothing(loss, value):
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{type(loss).__name__} label_smoothing must be in [0, 1]; received {value!r}.")
    return float(value)


class MeanSquaredError(Loss):
    """Mean of ``(y_pred - y_true)^2`` over all elements."""

    default_name = "mean_squared_error"

    def _value(self, y_true, y_pred):
        return ops.mse_forward(y_true, y_pred)

    def _gradient(self, y_true, y_pred):
        return ops.mse_backward(y_true, y_pred)

    def _weighted_value(self, y_true, y_pred, w):
        return weighted_loss.elementwise_forward("squared_error", y_true, w, y_pred)


class MeanAbsoluteError(Loss):
    """Mean of ``|y_pred - y_true|`` over all elements."""

    default_name = "mean_absolute_error"

    def _value(self, y_true, y_pred):
        return ops.mae_forward(y_true, y_pred)

    def _gradient(self, y_true, y_pred):
        return ops.mae_backward(y_true, y_pred)

    def _weighted_value(self, y_true, y_pred, w):
        return weighted_loss.elementwise_forward("absolute_error", y_true, w, y_pred)

