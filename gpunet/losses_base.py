"""The Loss base class: Keras's "sum_over_batch_size" reduction, sample weights, target checks,
config, and the one tape node a loss called on gn.Tensors records.

    value = loss(y_true, y_pred)                     # a float, the mean over the batch
    value, dy_pred = loss.compute(y_true, y_pred)    # and d(value)/d(y_pred)

A subclass defines ``_value`` and ``_gradient`` (and ``_weighted_value`` for sample weights);
the built-in ones are in losses_core.py and the losses_<family>.py files, the registry
(``gn.losses.get``) in losses.py.
"""
import inspect

import numpy as np

from . import backend, utils
from .autodiff import Tensor, raw, record
from .primitives import cast, elementwise_nd
from .primitives import loss as ops
from .primitives import weighted_loss

__all__ = ["Loss", "align_targets", "label_dtype"]


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
