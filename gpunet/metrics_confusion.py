"""Confusion-matrix metrics with Keras 3's names and arguments: IoU, MeanIoU, BinaryIoU,
OneHotIoU, OneHotMeanIoU, Precision, Recall, AUC.

Their state (a confusion matrix, or counts per threshold) stays on the backend and is updated
by the kernels of ``kernels/metrics.cu`` with integer atomics, so updates never wait for the
host and always give the same counts; ``result()`` reads the state (a few hundred integers).
Weighted updates (``sample_weight``: one weight for all, per sample, per row or per element, as
Keras broadcasts it) add float32 weights into a second, float32 state, made at the first weighted
update; ``result()`` adds both.
"""
import warnings

import numpy as np

from . import backend, metrics_weights
from .metrics import Metric
from .primitives import launch
from .primitives import metrics as ops
from .primitives.activation import sigmoid_forward

__all__ = ["IoU", "MeanIoU", "BinaryIoU", "OneHotIoU", "OneHotMeanIoU", "Precision", "Recall", "AUC"]
EPSILON = 1e-7


def as_float(values):
    return backend.current().asarray(values, dtype=np.float32)


def read(state):
    return np.asarray(backend.current().to_numpy(state))


def _divide_no_nan(a, b):
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b != 0)


class IoU(Metric):
    """Intersection over union ``TP / (TP + FP + FN)`` per class, averaged over ``target_class_ids``.

    ``y_true``: class ids (``sparse_y_true``) or one-hot rows; ``y_pred``: class ids
    (``sparse_y_pred``) or scores whose argmax over the last axis is the class. Shapes
    (batch, ...) or (batch, ..., num_classes). Rows whose true class is ``ignore_class`` are left out.
    """

    default_name = "io_u"

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        owner = type(self).__name__
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"{owner} num_classes must be a positive int; received {num_classes!r}.")
        ids = [int(i) for i in target_class_ids]
        if not ids or max(ids) >= num_classes or min(ids) < 0:
            raise ValueError(f"{owner} target_class_ids must be class ids in [0, {num_classes}); received "
                             f"{list(target_class_ids)!r}.")
        if axis != -1:
            raise ValueError(f"{owner} supports axis=-1 only; received axis={axis!r}.")
        self.num_classes, self.target_class_ids = int(num_classes), ids
        self.ignore_class, self.axis, self.dtype = ignore_class, axis, dtype
        self.sparse_y_true, self.sparse_y_pred = bool(sparse_y_true), bool(sparse_y_pred)
        super().__init__(name=name)

    def reset_state(self):
        self.total_cm = launch.zeros((self.num_classes, self.num_classes), np.uint64)
        self._weighted_cm = None   # float32, at the first weighted update

    def _modes(self):
        return (ops.CLASS_VALUE if self.sparse_y_true else ops.CLASS_ARGMAX,
                ops.CLASS_VALUE if self.sparse_y_pred else ops.CLASS_ARGMAX, 0.5)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """sample_weight: one weight per row (pixel) of y_true's class ids, per sample, or one for all."""
        mode_true, mode_pred, threshold = self._modes()
        y_true, y_pred = as_float(y_true), as_float(y_pred)
        cm, weights, per = self.total_cm, None, 1
        if sample_weight is not None:
            rows = tuple(y_true.shape[:-1] if mode_true == ops.CLASS_ARGMAX else y_true.shape)
            weights, per = metrics_weights.leading_weights(sample_weight, rows, self.name)
            if self._weighted_cm is None:
                self._weighted_cm = launch.zeros(self.total_cm.shape, np.float32)
            cm = self._weighted_cm
        ops.confusion_update(cm, y_true, y_pred, self.num_classes, self.ignore_class, mode_true, mode_pred, threshold,
                             weights, per, whole=sample_weight is not None and self._whole_weights())

    def _whole_weights(self):
        """Keras's IoU state has dtype "int" unless told otherwise: float weights are truncated (Keras
        warns; so does gpunet). ``dtype="float32"`` keeps them."""
        if self.dtype is not None and "int" not in str(self.dtype):
            return False
        warnings.warn(f"Metric '{self.name}': sample_weight is truncated to whole numbers, as Keras's IoU of "
                      f"int dtype (the default) does; pass dtype='float32' to keep fractional weights.",
                      stacklevel=4)   # past update_state and Metric's tensor-reading wrapper
        return True

    def result(self):
        """The mean IoU of the target classes that occurred (a float)."""
        cm = read(self.total_cm).astype(np.float64)
        if self._weighted_cm is not None:
            cm += read(self._weighted_cm)
        tp = np.diag(cm)
        denominator = (cm.sum(0) + cm.sum(1) - tp)[self.target_class_ids]
        valid = denominator > 1e-9
        iou = np.where(valid, tp[self.target_class_ids] / (denominator + EPSILON), 0.0)
        return float(np.sum(iou) / (np.sum(valid) + EPSILON))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "num_classes": self.num_classes,
                "target_class_ids": self.target_class_ids, "ignore_class": self.ignore_class,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class MeanIoU(IoU):
    """IoU averaged over all ``num_classes`` classes (those that occur)."""

    default_name = "mean_io_u"

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        super().__init__(num_classes, list(range(int(num_classes))) if isinstance(num_classes, (int, np.integer))
                         and num_classes > 0 else [], name, dtype, ignore_class, sparse_y_true, sparse_y_pred, axis)

    def get_config(self):
        config = super().get_config()
        del config["target_class_ids"]
        return config


class BinaryIoU(IoU):
    """IoU of binary segmentation: ``y_pred >= threshold`` is class 1; targets are 0 / 1."""

    default_name = "binary_io_u"

    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        self.threshold = float(threshold)
        super().__init__(2, target_class_ids, name=name, dtype=dtype)

    def _modes(self):
        return ops.CLASS_VALUE, ops.CLASS_THRESHOLD, self.threshold

    def get_config(self):
        return {"target_class_ids": self.target_class_ids, "threshold": self.threshold, "name": self.name,
                "dtype": self.dtype}


class OneHotIoU(IoU):
    """IoU with one-hot targets (and, unless ``sparse_y_pred``, score predictions)."""

    default_name = "one_hot_io_u"

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, target_class_ids, name, dtype, ignore_class, False, sparse_y_pred, axis)

    def get_config(self):
        config = super().get_config()
        del config["sparse_y_true"]
        return config


class OneHotMeanIoU(MeanIoU):
    """MeanIoU with one-hot targets (and, unless ``sparse_y_pred``, score predictions)."""

    default_name = "one_hot_mean_io_u"

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, name, dtype, ignore_class, False, sparse_y_pred, axis)

    def get_config(self):
        config = super().get_config()
        del config["sparse_y_true"]
        return config


# -- counts per threshold ------------------------------------------------------------------------
class _ThresholdCounts(Metric):
    """Positives and negatives binned by how many thresholds lie below each prediction."""

    def _set_thresholds(self, thresholds):
        values = np.asarray(thresholds, dtype=np.float32).reshape(-1)
        self._order = np.argsort(values, kind="stable")
        self._sorted = values[self._order]

    def reset_state(self):
        self._hist = launch.zeros((2, self._sorted.size + 1), np.uint64)
        self._weighted_hist = None   # float32, at the first weighted update
        self._thresholds_on_device = backend.current().asarray(self._sorted, dtype=np.float32)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """sample_weight: one weight per element of y_pred, per row, per sample, or one for all."""
        y_pred = as_float(y_pred)
        if getattr(self, "_from_logits", False):
            y_pred = sigmoid_forward(y_pred)
        y_true = as_float(y_true)
        if tuple(y_true.shape) != tuple(y_pred.shape):
            y_true = y_true.reshape(y_pred.shape) if y_true.size == y_pred.size else y_true
        if tuple(y_true.shape) != tuple(y_pred.shape):
            raise ValueError(f"Metric '{self.name}' needs targets of the predictions' shape {tuple(y_pred.shape)}; "
                             f"received shape {tuple(y_true.shape)}.")
        hist, weights, per = self._hist, None, 1
        if sample_weight is not None:
            weights, per = metrics_weights.leading_weights(sample_weight, tuple(y_pred.shape), self.name)
            if self._weighted_hist is None:
                self._weighted_hist = launch.zeros(self._hist.shape, np.float32)
            hist = self._weighted_hist
        ops.threshold_histogram(hist, y_true, y_pred, self._thresholds_on_device, getattr(self, "class_id", None),
                                weights, per)

    def counts(self):
        """``(tp, fp, tn, fn)`` per threshold, in the thresholds' given order (float64 arrays)."""
        hist = read(self._hist).astype(np.float64)
        if self._weighted_hist is not None:
            hist += read(self._weighted_hist)
        above = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1][:, 1:]   # predictions > threshold j
        tp, fp = above[1], above[0]
        fn, tn = hist[1].sum() - tp, hist[0].sum() - fp
        back = np.empty_like(self._order)
        back[self._order] = np.arange(self._order.size)
        return tp[back], fp[back], tn[back], fn[back]


class Precision(_ThresholdCounts):
    """``TP / (TP + FP)`` of ``y_pred > threshold`` against targets that are nonzero; a list when
    several ``thresholds`` are given. ``class_id`` scores one column of (batch, classes) data."""

    default_name = "precision"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        if top_k is not None:
            raise ValueError(f"{type(self).__name__}: top_k is not supported by gpunet; received top_k={top_k!r}.")
        self.init_thresholds, self.top_k, self.class_id, self.dtype = thresholds, top_k, class_id, dtype
        values = [0.5] if thresholds is None else list(np.atleast_1d(thresholds))
        if any(not 0.0 <= float(t) <= 1.0 for t in values):
            raise ValueError(f"{type(self).__name__} thresholds must be in [0, 1]; received {thresholds!r}.")
        self._set_thresholds(values)
        super().__init__(name=name)

    def _ratio(self, tp, fp, fn):
        return _divide_no_nan(tp, tp + fp)

    def result(self):
        tp, fp, _, fn = self.counts()
        values = self._ratio(tp, fp, fn)
        return float(values[0]) if values.size == 1 else [float(v) for v in values]

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Recall(Precision):
    """``TP / (TP + FN)`` of ``y_pred > threshold``; arguments as Precision."""

    default_name = "recall"

    def _ratio(self, tp, fp, fn):
        return _divide_no_nan(tp, tp + fn)


class AUC(_ThresholdCounts):
    """Area under the ROC or PR curve from counts at ``num_thresholds`` thresholds (Keras's:
    ``-eps``, ``1 / (n - 1)``, ..., ``1 + eps``), summed with Keras's ``summation_method``
    ("interpolation": trapezoids for ROC, Davis & Goadrich's interpolation for PR)."""

    default_name = "auc"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        owner = type(self).__name__
        if multi_label or num_labels is not None or label_weights is not None:
            raise ValueError(f"{owner}: multi_label, num_labels and label_weights are not supported by gpunet.")
        if str(curve).upper() not in ("ROC", "PR"):
            raise ValueError(f"{owner} curve must be 'ROC' or 'PR'; received {curve!r}.")
        if str(summation_method).lower() not in ("interpolation", "minoring", "majoring"):
            raise ValueError(f"{owner} summation_method must be 'interpolation', 'minoring' or 'majoring'; "
                             f"received {summation_method!r}.")
        if thresholds is None:
            if int(num_thresholds) <= 1:
                raise ValueError(f"{owner} num_thresholds must be an int > 1; received {num_thresholds!r}.")
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        else:
            inner = sorted(float(t) for t in thresholds)
            num_thresholds = len(inner) + 2
        self.num_thresholds, self.curve = int(num_thresholds), str(curve).upper()
        self.summation_method, self.dtype = str(summation_method).lower(), dtype
        self._init_thresholds, self._from_logits = thresholds, bool(from_logits)
        self.thresholds = [0.0 - EPSILON] + inner + [1.0 + EPSILON]
        self._set_thresholds(self.thresholds)
        super().__init__(name=name)

    def result(self):
        tp, fp, tn, fn = self.counts()
        if self.curve == "PR" and self.summation_method == "interpolation":
            return float(_interpolate_pr_auc(tp, fp, fn))
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return float(np.sum((x[:-1] - x[1:]) * heights))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "num_thresholds": self.num_thresholds, "curve": self.curve,
                "summation_method": self.summation_method, "thresholds": self._init_thresholds,
                "multi_label": False, "num_labels": None, "label_weights": None, "from_logits": self._from_logits}


def _interpolate_pr_auc(tp, fp, fn):
    """Keras's interpolated PR AUC (Davis & Goadrich 2006) from counts per threshold."""
    dtp = tp[:-1] - tp[1:]
    p = tp + fp
    dp = p[:-1] - p[1:]
    slope = _divide_no_nan(dtp, np.maximum(dp, 0))
    intercept = tp[1:] - slope * p[1:]
    both = (p[:-1] > 0) & (p[1:] > 0)
    ratio = np.where(both, _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
    increments = _divide_no_nan(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))
    return np.sum(increments)
