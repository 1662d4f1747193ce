"""Loss objects with Keras's names and its "sum_over_batch_size" reduction.

    loss = gn.losses.get("sparse_categorical_crossentropy")
    value = loss(y_true, y_pred)                     # a float, the mean over the batch
    value, dy_pred = loss.compute(y_true, y_pred)    # and d(value)/d(y_pred)

The training loop calls the ``device_*`` forms, which return the mean as a 0-d backend array
and never read it on the host (a read would wait for the device). Sparse labels outside
[0, classes) give a NaN loss there, from the kernels themselves; ``check_targets`` refuses
them with a clear error before fit / evaluate start, on the host data.

Cross-entropies on probabilities also fuse with a final softmax: ``compute_from_logits`` takes
the softmax's input and returns ``(value, dlogits, probs)`` from one stable op.
"""
import inspect

import numpy as np

from . import backend, utils
from .autodiff import Tensor, raw, record
from .primitives import cast, elementwise_nd
from .primitives import loss as ops
from .primitives import weighted_loss
from .primitives.loss_terms import smooth_targets

__all__ = ["Loss", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "BinaryCrossentropy",
           "MeanSquaredError", "MeanAbsoluteError", "get", "align_targets"]


def label_dtype(labels):
    """int32 labels stay int32 (what the kernels read, no conversion in the step); others int64."""
    return np.int32 if getattr(labels, "dtype", None) == np.int32 else np.int64


def align_targets(y_true, y_pred):
    """Targets of rank one less than (or one more than) y_pred around a last axis of size 1 are
    reshaped to y_pred's shape, as Keras does: (N,) targets fit a (N, 1) output."""
    if y_true.shape == y_pred.shape:
        return y_true
    if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1 or \
            y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        if y_true.size == y_pred.size:
            return y_true.reshape(y_pred.shape)
    return y_true


class Loss:
    """Base class: a subclass defines ``_value(y_true, y_pred)`` and ``_gradient(y_true, y_pred)``."""

    default_name = "loss"
    sparse = False

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        if reduction != "sum_over_batch_size":
            raise ValueError(f"{type(self).__name__} supports reduction='sum_over_batch_size' only; "
                             f"received {reduction!r}.")
        self.name = name or self.default_name
        self.reduction = reduction
        self.from_logits = False

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The mean loss over the batch (``sum(w * loss) / rows`` with ``sample_weight``): a float
        for arrays; for gn.Tensors (a custom step under a GradientTape) a 0-d Tensor whose
        gradient reaches ``y_pred``, as a Keras loss is differentiable inside ``tf.GradientTape``."""
        if any(isinstance(a, Tensor) for a in (y_true, y_pred, sample_weight)):
            return self._on_tape(y_true, y_pred, sample_weight)
        return float(self.device_value(y_true, y_pred, sample_weight))

    def _on_tape(self, y_true, y_pred, sample_weight):
        """One tape node: the fused value and gradient of the built-in loss (computed together,
        as fit computes them); its backward scales the saved gradient by the seed."""
        device = backend.current()
        prediction = y_pred if isinstance(y_pred, Tensor) else Tensor(device.asarray(y_pred))
        targets, weight = raw(y_true), raw(sample_weight)
        if not isinstance(targets, device.xp.ndarray):
            targets = device.asarray(np.asarray(targets))
        value, gradient = self.device_compute(targets, prediction.data, weight)

        def backward(seed, needs):
            if not needs[0]:
                return (None,)
            if seed.dtype != gradient.dtype:
                seed = cast.cast(seed, gradient.dtype)
            return (elementwise_nd.binary("multiply", gradient, seed),)
        return record(f"loss_{self.name}", value, (prediction,), backward)

    def compute(self, y_true, y_pred, sample_weight=None):
        """``(value, dy_pred)``: the mean loss and its gradient with respect to ``y_pred``.

        sample_weight: (batch,) one weight per sample, or the predictions' shape without the last
        axis (per pixel); reduced as Keras does, ``sum(w * per_row_loss) / rows``.
        """
        value, gradient = self.device_compute(y_true, y_pred, sample_weight)
        return float(value), gradient

    def device_value(self, y_true, y_pred, sample_weight=None):
        """The mean loss as a 0-d backend array, not read on the host."""
        y_true = self._prepare(y_true, y_pred)
        if sample_weight is None:
            return self._value(y_true, y_pred)
        return self._weighted_value(y_true, y_pred, self._row_weights(sample_weight, y_pred))

    def device_compute(self, y_true, y_pred, sample_weight=None):
        """``(value, dy_pred)`` with the value a 0-d backend array, not read on the host."""
        y_true = self._prepare(y_true, y_pred)
        if sample_weight is None:
            return self._value(y_true, y_pred), self._gradient(y_true, y_pred)
        w = self._row_weights(sample_weight, y_pred)
        # A row's loss depends on that row alone: the weighted gradient is the unweighted one, scaled.
        return self._weighted_value(y_true, y_pred, w), weighted_loss.scale_rows(self._gradient(y_true, y_pred), w)

    def _row_weights(self, sample_weight, y_pred):
        """One weight per row of y_pred (its shape without the last axis), on the backend."""
        from .data.weights import check_sample_weight
        device = backend.current()
        rows = tuple(y_pred.shape[:-1])
        if tuple(getattr(sample_weight, "shape", ())) == rows:
            return device.asarray(sample_weight, dtype=ops.value_dtype(y_pred.dtype))
        w = check_sample_weight(np.asarray(device.to_numpy(sample_weight)), rows, f"Loss '{self.name}'")
        return device.asarray(w, dtype=ops.value_dtype(y_pred.dtype))

    def _weighted_value(self, y_true, y_pred, w):
        raise NotImplementedError(f"{type(self).__name__} does not support sample_weight.")

    @property
    def fuses_softmax(self):
        """True when a final softmax layer may hand this loss its logits instead (see compute_from_logits)."""
        return False

    def compute_from_logits(self, y_true, logits, sample_weight=None):
        """``(value, dlogits, probs)`` of softmax + this loss, the value a float (see fuses_softmax)."""
        value, dlogits, probs = self.device_compute_from_logits(y_true, logits, sample_weight)
        return float(value), dlogits, probs

    def device_compute_from_logits(self, y_true, logits, sample_weight=None):
        raise TypeError(f"Loss '{self.name}' does not fuse with a softmax; call compute(y_true, y_pred).")

    # -- targets ----------------------------------------------------------------------------
    def _prepare(self, y_true, y_pred):
        """y_true as a backend array in y_pred's dtype (float32 for bfloat16 / float16 predictions: Keras's
        Loss converts targets to its float32 dtype), in y_pred's shape (or a clear error)."""
        y_true = align_targets(backend.current().asarray(y_true, dtype=ops.value_dtype(y_pred.dtype)), y_pred)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"Loss '{self.name}' needs targets of the predictions' shape {tuple(y_pred.shape)}; "
                             f"received shape {tuple(y_true.shape)}.")
        return y_true

    def _expected_target_shapes(self, sample_shape):
        """Per-sample target shapes this loss accepts for a per-sample output shape."""
        shapes = [sample_shape]
        if sample_shape and sample_shape[-1] == 1:
            shapes.append(sample_shape[:-1])
        return shapes

    def check_targets(self, y_true, output_shape, where="y"):
        """Raise a clear ValueError when targets cannot go with outputs of ``output_shape`` (batch first).

        ``where`` names the targets in the message (e.g. "fit's y", "validation_data").
        """
        y = np.asarray(backend.current().to_numpy(y_true))
        sample = tuple(output_shape[1:])
        accepted = self._expected_target_shapes(sample)
        if tuple(y.shape[1:]) not in accepted:
            expected = " or ".join(str((len(y),) + s) for s in accepted)
            raise ValueError(f"{where}: loss '{self.name}' expects targets of shape {expected} for model "
                             f"outputs of shape {tuple(output_shape)}; received shape {y.shape}."
                             + self._shape_hint(y, sample))
        if y.dtype.kind in "fc" and not np.all(np.isfinite(y)):
            raise ValueError(f"{where}: targets for loss '{self.name}' contain NaN or inf.")

    def _shape_hint(self, y, sample):
        return ""

    # -- config -----------------------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        """Rebuild from ``get_config()``; a Keras-saved config works when it asks for nothing
        gpunet lacks (label smoothing, another axis, an ignored class)."""
        taken = inspect.signature(cls.__init__).parameters
        keras_only = {k: v for k, v in _KERAS_ONLY_DEFAULTS.items() if k not in taken}
        config = utils.without_keras_defaults(config, keras_only, cls.__name__)
        try:
            return cls(**config)
        except TypeError:
            raise ValueError(f"{cls.__name__} cannot be rebuilt from config keys {sorted(config)}.") from None

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


# Keras loss settings gpunet does not have, with the value that means "not used".
_KERAS_ONLY_DEFAULTS = {"label_smoothing": 0.0, "axis": -1, "ignore_class": None, "dtype": None}


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


_BY_NAME = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
}

# The other Keras losses live in files by family; they join the registry here.
from .losses_regression import *      # noqa: E402,F401,F403  Huber, LogCosh, Poisson, MSLE, MAPE, KLD, CosineSimilarity
from .losses_classification import *  # noqa: E402,F401,F403  Hinge, SquaredHinge, CategoricalHinge, focal losses
from .losses_segmentation import *    # noqa: E402,F401,F403  Dice, Tversky
from . import losses_classification, losses_regression, losses_segmentation  # noqa: E402

_FAMILIES = losses_regression.__all__ + losses_classification.__all__ + losses_segmentation.__all__
__all__ += _FAMILIES
_BY_NAME.update({utils.snake_case(name): globals()[name] for name in _FAMILIES})
_BY_NAME.update({"huber": Huber, "logcosh": LogCosh, "kld": KLDivergence, "msle": MeanSquaredLogarithmicError,
                 "mape": MeanAbsolutePercentageError})
_CLASSES = {cls.__name__: cls for cls in _BY_NAME.values()}

# Keras's loss functions (per-sample values, gn.ops): compile(loss=gn.losses.mean_squared_error)
# gets the fused class of the same formula (the function's defaults are the class's).
from . import loss_functions  # noqa: E402
from .loss_functions import *  # noqa: E402,F401,F403
__all__ += loss_functions.__all__
_FUNCTION_CLASSES = {getattr(loss_functions, name): _BY_NAME[name] for name in loss_functions.__all__ if name in _BY_NAME}


def get(identifier):
    """A Loss from a name, a Loss object, a Loss class or a ``{"class_name", "config"}`` dict.

    None gives None (a model compiled without a loss).
    """
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if callable(identifier) and identifier in _FUNCTION_CLASSES:
        return _FUNCTION_CLASSES[identifier]()
    if callable(identifier) and not isinstance(identifier, type):   # fn(y_true, y_pred) with gn.ops
        from .autodiff.functions import LossFunctionWrapper
        return LossFunctionWrapper(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str):
        key = utils.snake_case(identifier.strip()) if identifier[:1].isupper() else identifier.strip().lower()
        if key in _BY_NAME:
            return _BY_NAME[key]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise ValueError(f"Unknown loss {identifier!r}; expected one of {', '.join(repr(n) for n in _BY_NAME)}, "
                     f"a Loss object or a Loss class.")


def serialize(loss):
    """``{"class_name", "config"}`` for a Loss (what :func:`get` accepts back)."""
    return {"class_name": type(loss).__name__, "config": loss.get_config()}
