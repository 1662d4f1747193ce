"""Metrics with Keras's names. Each totals its batches until reset, weighted as Keras 3 weighs them.

    metric = gn.metrics.get("accuracy", loss="sparse_categorical_crossentropy")
    metric.update_state(y_true, y_pred, sample_weight=None); metric.result(); metric.reset_state()

``sample_weight`` (one weight per sample, per pixel, or anything Keras broadcasts) follows
Keras 3's reduction: see gpunet.metrics_weights.
"""
import numpy as np

from . import backend, losses, metrics_weights, utils
from .autodiff import raw
from .device_sums import DeviceSum
from .primitives import launch
from .primitives import loss as ops
from .primitives import metrics as metric_ops

__all__ = ["Metric", "MeanMetric", "Mean", "Sum", "CategoricalAccuracy", "SparseCategoricalAccuracy", "BinaryAccuracy",
           "MeanSquaredError", "MeanAbsoluteError", "get"]


def _reads_arrays(update_state):
    def update(self, *args, **kwargs):
        args = [raw(a) for a in args]
        kwargs = {k: raw(v) for k, v in kwargs.items()}
        return update_state(self, *args, **kwargs)
    update.__name__, update.__doc__, update.__wrapped__ = update_state.__name__, update_state.__doc__, update_state
    return update


class Metric:
    """Base class: ``update_state(y_true, y_pred, sample_weight=None)`` adds a batch, ``result()``
    is the running value."""

    default_name = "metric"

    def __init__(self, name=None):
        self.name = name or self.default_name
        self.reset_state()

    def __init_subclass__(cls, **kwargs):
        # A custom train_step updates metrics with gn.Tensors (model outputs, a loss on the tape):
        # every update_state reads their arrays, outside the tape.
        super().__init_subclass__(**kwargs)
        if "update_state" in cls.__dict__:
            cls.update_state = _reads_arrays(cls.__dict__["update_state"])

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError(f"{type(self).__name__} must define update_state(y_true, y_pred, "
                                  f"sample_weight=None).")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must define result().")

    def reset_state(self):
        pass

    def __call__(self, y_true, y_pred, sample_weight=None):
        """Add the batch and return the running result, as a Keras metric called eagerly does."""
        self.update_state(y_true, y_pred, sample_weight=sample_weight)
        return self.result()

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class MeanMetric(Metric):
    """A running ``total / count`` of per-sample means, as Keras 3's MeanMetricWrapper.

    A subclass defines ``_batch(y_true, y_pred) -> (sum of the batch's values, how many)``, its
    values' shape (``_values_shape``: one value per row by default) and, for ``sample_weight``,
    ``_weighted(y_true, y_pred, plan)`` -> the (2,) sums of ``weighted_row_sums``. Totals and
    weighted counts stay on the device (0-d backend arrays in a ``DeviceSum``) until ``result()``,
    ``total`` or ``count`` is read, so ``update_state`` inside a training step never waits.
    """

    def reset_state(self):
        self._total, self._count = DeviceSum(), DeviceSum()

    @property
    def total(self):
        """The sum of per-sample (weighted) means so far, a float (reads pending batches)."""
        return self._total.value()

    @total.setter
    def total(self, value):
        self._total.reset(value)

    @property
    def count(self):
        """Samples (or their weights) so far, a float (reads pending batches)."""
        return self._count.value()

    @count.setter
    def count(self, value):
        self._count.reset(value)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = self._targets(y_true, y_pred)
        shape = self._values_shape(y_true, y_pred)
        if sample_weight is None:
            total, count = self._batch(y_true, y_pred)
            samples = shape[0] if shape else 1
            if count:   # each sample's mean, as Keras sums them: total * samples / count
                self._total.add(total, samples / int(count))
                self._count.add(samples)
            return
        plan = metrics_weights.samplewise(sample_weight, shape, self.name)
        sums = self._weighted(y_true, y_pred, plan)
        self._total.add(sums[0], plan.total_scale)
        self._count.add(sums[1], plan.count_scale)

    def _values_shape(self, y_true, y_pred):
        """The shape of the values Keras's metric function gives: one per row (the class axis gone)."""
        return tuple(y_pred.shape[:-1])

    def _weighted(self, y_true, y_pred, plan):
        raise NotImplementedError(f"Metric '{self.name}' ({type(self).__name__}) does not take sample_weight.")

    def result(self):
        """The mean so far, a float (0.0 before any update)."""
        count = self.count
        return self.total / count if count else 0.0

    def _targets(self, y_true, y_pred):
        # float32 targets beside 16-bit predictions: a class label above 256 has no bfloat16.
        return losses.align_targets(backend.current().asarray(y_true, dtype=ops.value_dtype(y_pred.dtype)), y_pred)

    def _check_shapes(self, y_true, y_pred):
        if y_true.shape != y_pred.shape:
            raise ValueError(f"Metric '{self.name}' needs targets of the predictions' shape {tuple(y_pred.shape)}; "
                             f"received shape {tuple(y_true.shape)}.")


class Sum(Metric):
    """Keras's Sum: the (weighted) sum of the values given, ``update_state(values, sample_weight=None)``;
    values of any shape (a backend or NumPy array), sample_weight broadcast as Keras broadcasts it."""

    default_name = "sum"

    def __init__(self, name=None, dtype=None):
        self.dtype = dtype
        super().__init__(name=name)

    def reset_state(self):
        self._total, self._count = DeviceSum(), DeviceSum()

    def update_state(self, values, sample_weight=None):
        values = backend.current().asarray(values, dtype=np.float32)
        shape, size = tuple(values.shape), max(values.size, 1)
        samples = shape[0] if shape else 1
        if sample_weight is None:   # one weight of 1 for every value: (sum of the values, 1)
            weights, per = launch.zeros((1,)) + np.float32(1), size
        else:
            plan = metrics_weights.samplewise(sample_weight, shape, self.name)
            weights, per = plan.weights, plan.per
        sums = metric_ops.weighted_row_sums(None, values.reshape(-1, 1), weights, per, metric_ops.ROW_MEAN)
        if sample_weight is None:   # Keras's Mean: each sample's mean, counted once per sample
            self._add(sums[0], samples / size, samples, 1)
        else:
            self._add(sums[0], plan.total_scale, sums[1], plan.count_scale)

    def _add(self, total, total_scale, count, count_scale):
        self._total.add(total)   # Keras's Sum sums over the weighted values, whatever their shape

    def result(self):
        return self._total.value()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class Mean(Sum):
    """Keras's Mean: the (weighted) mean of the values given, ``update_state(values, sample_weight=None)``:
    per-sample means (the values' first axis is the samples), weighted, over the sum of the weights."""

    default_name = "mean"

    def _add(self, total, total_scale, count, count_scale):
        self._total.add(total, total_scale)
        self._count.add(count, count_scale)

    def result(self):
        count = self._count.value()
        return self._total.value() / count if count else 0.0


class CategoricalAccuracy(MeanMetric):
    """Fraction of rows whose largest prediction is at the target's largest entry (one-hot targets)."""

    default_name = "categorical_accuracy"

    def _batch(self, y_true, y_pred):
        self._check_shapes(y_true, y_pred)
        return ops.count_argmax_equal(y_true, y_pred), y_pred.size // y_pred.shape[-1]

    def _weighted(self, y_true, y_pred, plan):
        self._check_shapes(y_true, y_pred)
        return metric_ops.weighted_row_sums(y_true, y_pred, plan.weights, plan.per, metric_ops.ROW_ARGMAX_EQUAL)


class SparseCategoricalAccuracy(MeanMetric):
    """Fraction of rows whose largest prediction is at the integer label: labels (...,), y_pred (..., C)."""

    default_name = "sparse_categorical_accuracy"

    def _targets(self, y_true, y_pred):
        labels = backend.current().asarray(y_true, dtype=losses.label_dtype(y_true))
        if labels.shape == y_pred.shape[:-1] + (1,):
            labels = labels.reshape(y_pred.shape[:-1])
        if labels.shape != y_pred.shape[:-1]:
            raise ValueError(f"Metric '{self.name}' needs integer labels of shape {tuple(y_pred.shape[:-1])} "
                             f"for predictions of shape {tuple(y_pred.shape)}; received shape {tuple(labels.shape)}.")
        return labels

    def _batch(self, labels, y_pred):
        return ops.count_label_equal(labels, y_pred), labels.size

    def _weighted(self, labels, y_pred, plan):
        return metric_ops.weighted_row_sums(labels, y_pred, plan.weights, plan.per, metric_ops.ROW_ARGMAX_EQUAL,
                                            sparse=True)


class BinaryAccuracy(MeanMetric):
    """Fraction of elements where ``y_pred > threshold`` equals the 0/1 target."""

    default_name = "binary_accuracy"

    def __init__(self, threshold=0.5, name=None):
        self.threshold = float(threshold)
        super().__init__(name=name)

    def _batch(self, y_true, y_pred):
        self._check_shapes(y_true, y_pred)
        return ops.count_binary_equal(y_true, y_pred, self.threshold), y_pred.size

    def _values_shape(self, y_true, y_pred):
        return tuple(y_pred.shape)   # Keras's binary_accuracy: one value per element

    def _weighted(self, y_true, y_pred, plan):
        self._check_shapes(y_true, y_pred)
        return metric_ops.weighted_row_sums(y_true.reshape(-1, 1), y_pred.reshape(-1, 1), plan.weights, plan.per,
                                            metric_ops.ROW_BINARY_EQUAL, self.threshold)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


class MeanSquaredError(MeanMetric):
    """Mean of ``(y_pred - y_true)^2`` over all elements seen."""

    default_name = "mean_squared_error"

    def _batch(self, y_true, y_pred):
        self._check_shapes(y_true, y_pred)
        return ops.sum_squared_error(y_true, y_pred), y_pred.size

    def _weighted(self, y_true, y_pred, plan):
        self._check_shapes(y_true, y_pred)
        cols = y_pred.size // max(int(np.prod(self._values_shape(y_true, y_pred))), 1)
        return metric_ops.weighted_row_sums(y_true.reshape(-1, cols), y_pred.reshape(-1, cols), plan.weights,
                                            plan.per, metric_ops.ROW_SQUARED_ERROR)


class MeanAbsoluteError(MeanMetric):
    """Mean of ``|y_pred - y_true|`` over all elements seen."""

    default_name = "mean_absolute_error"

    def _batch(self, y_true, y_pred):
        self._check_shapes(y_true, y_pred)
        return ops.sum_absolute_error(y_true, y_pred), y_pred.size

    def _weighted(self, y_true, y_pred, plan):
        self._check_shapes(y_true, y_pred)
        return metric_ops.weighted_row_sums(y_true, y_pred, plan.weights, plan.per, metric_ops.ROW_ABSOLUTE_ERROR)


class _ShapeResolvedAccuracy(MeanMetric):
    """'accuracy' with no loss to decide by: picks its kind from the first batch's shapes (Keras 3's rule)."""

    def reset_state(self):
        super().reset_state()
        if getattr(self, "_resolved", None) is not None:
            self._resolved.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None):
        if getattr(self, "_resolved", None) is None:
            true_shape = tuple(np.shape(y_true))
            if y_pred.shape[-1] == 1:
                kind = BinaryAccuracy
            elif len(true_shape) < y_pred.ndim or true_shape[-1:] == (1,):
                kind = SparseCategoricalAccuracy
            else:
                kind = CategoricalAccuracy
            self._resolved = kind(name=self.name)
        self._resolved.update_state(y_true, y_pred, sample_weight=sample_weight)

    def result(self):
        return self._resolved.result() if getattr(self, "_resolved", None) is not None else 0.0


_ACCURACY_FOR_LOSS = {
    losses.SparseCategoricalCrossentropy: SparseCategoricalAccuracy,
    losses.CategoricalCrossentropy: CategoricalAccuracy,
    losses.BinaryCrossentropy: BinaryAccuracy,
}
_BY_NAME = {
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
}

# The confusion-matrix and score metrics live in their own files; they join the registry here.
from .metrics_confusion import *  # noqa: E402,F401,F403  IoU family, Precision, Recall, AUC
from .metrics_scores import *     # noqa: E402,F401,F403  F-scores, top-k accuracies, RMSE
from . import metrics_confusion, metrics_scores  # noqa: E402

_FAMILIES = metrics_confusion.__all__ + metrics_scores.__all__
__all__ += _FAMILIES
_BY_NAME.update({name: globals()[cls] for name, cls in [
    ("precision", "Precision"), ("recall", "Recall"), ("auc", "AUC"), ("f1_score", "F1Score"),
    ("fbeta_score", "FBetaScore"), ("binary_io_u", "BinaryIoU"), ("root_mean_squared_error", "RootMeanSquaredError"),
    ("top_k_categorical_accuracy", "TopKCategoricalAccuracy"),
    ("sparse_top_k_categorical_accuracy", "SparseTopKCategoricalAccuracy")]})
_CLASSES = {cls.__name__: cls for cls in list(_BY_NAME.values()) + [globals()[n] for n in _FAMILIES] + [Mean, Sum]}


def _accuracy(name, loss):
    loss = losses.get(loss) if loss is not None else None
    for loss_class, metric_class in _ACCURACY_FOR_LOSS.items():
        if isinstance(loss, loss_class):
            return metric_class(name=name)
    return _ShapeResolvedAccuracy(name=name)


def get(identifier, loss=None):
    """A Metric from a name, a Metric object or class, or a ``{"class_name", "config"}`` dict.

    ``"accuracy"``/``"acc"`` become the accuracy that fits ``loss`` (a name or Loss): sparse
    categorical, categorical or binary; with another loss, the kind is read from the first
    batch's shapes. A metric made from a name keeps that name (it labels the logs).
    """
    if isinstance(identifier, Metric):
        return identifier
    if callable(identifier) and not isinstance(identifier, type):   # fn(y_true, y_pred) with gn.ops
        from .autodiff.functions import MeanMetricWrapper
        return MeanMetricWrapper(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        name = identifier.strip()
        key = utils.snake_case(name) if name[:1].isupper() else name.lower()
        name = key if name[:1].isupper() else name   # "CategoricalAccuracy" logs as categorical_accuracy
        if key in ("accuracy", "acc"):
            return _accuracy(name, loss)
        if key in _BY_NAME:
            return _BY_NAME[key](name=name)
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise ValueError(f"Unknown metric {identifier!r}; expected one of 'accuracy', 'acc', "
                     f"{', '.join(repr(n) for n in _BY_NAME)}, a Metric object or a Metric class.")
