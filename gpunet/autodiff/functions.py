"""Python functions of ``(y_true, y_pred)`` written with gn.ops as losses and metrics.

    def dice_loss(y_true, y_pred):
        inter = ops.sum(y_true * y_pred, axis=(1, 2, 3))
        return 1 - (2 * inter + 1) / (ops.sum(y_true + y_pred, axis=(1, 2, 3)) + 1)
    model.compile(optimizer="adam", loss=dice_loss, metrics=[dice_loss])

A loss function's values (per sample, or any shape) are averaged ("sum_over_batch_size") and
its gradient with respect to ``y_pred`` comes from a GradientTape; a metric function's values
are averaged over every sample seen.
"""
import numpy as np

from .. import backend, losses, metrics, metrics_weights
from ..primitives.loss import value_dtype
from . import GradientTape, Tensor, paused, raw

_REGISTRY = {}


def register_keras_serializable(package="Custom", name=None):
    """Decorator: a layer, model, loss or metric (class or function) that ``load_model`` and
    ``from_config`` find by name without ``custom_objects``."""
    def register(obj):
        key = name or obj.__name__
        _REGISTRY[key] = _REGISTRY[f"{package}>{key}"] = obj
        return obj
    return register


def get_registered_object(name, custom_objects=None):
    """``custom_objects[name]``, else what ``register_keras_serializable`` registered as ``name``."""
    return (custom_objects or {}).get(name) or _REGISTRY.get(name)


def _name_of(fn):
    return getattr(fn, "__name__", type(fn).__name__)


class LossFunctionWrapper(losses.Loss):
    """A Loss whose values come from ``fn(y_true, y_pred)`` (gn.ops) and gradient from the tape."""

    def __init__(self, fn, name=None, reduction="sum_over_batch_size"):
        super().__init__(name=name or _name_of(fn), reduction=reduction)
        self.fn = fn

    def _values(self, y_true, y_pred, weight=None):
        """The mean of ``fn``'s values; with a weight, ``sum(w * values) / values.size`` as Keras
        reduces a weighted "sum_over_batch_size" (w per sample, or shaped like the values)."""
        values = self.fn(y_true, y_pred)
        if not isinstance(values, Tensor):
            raise TypeError(f"Loss function '{self.name}' must return a tensor made with gn.ops; "
                            f"received {type(values).__name__}.")
        from .. import ops
        if values.dtype != np.float32:     # loss values are float32, whatever y_pred's dtype
            values = ops.cast(values, "float32")
        if weight is None:
            return ops.mean(values)
        if weight.ndim < values.ndim:
            weight = ops.reshape(weight, tuple(weight.shape) + (1,) * (values.ndim - weight.ndim))
        return ops.sum(ops.multiply(values, weight)) / float(max(int(np.prod(values.shape)), 1))

    def _weight(self, sample_weight, y_pred):
        """Sample weights in float32, the loss value's dtype (a 16-bit y_pred would round them)."""
        if sample_weight is None:
            return None
        return Tensor(backend.current().asarray(sample_weight, dtype=np.float32))

    def device_value(self, y_true, y_pred, sample_weight=None):
        """The mean loss as a 0-d backend array (not read on the host)."""
        with paused():
            return self._values(Tensor(self._prepare(y_true, y_pred)), Tensor(y_pred),
                                self._weight(sample_weight, y_pred)).data

    def device_compute(self, y_true, y_pred, sample_weight=None):
        """``(value, dy_pred)``: the mean loss (a 0-d backend array) and its gradient with respect
        to ``y_pred``, from a GradientTape."""
        target, pred = Tensor(self._prepare(y_true, y_pred)), Tensor(y_pred)
        weight = self._weight(sample_weight, y_pred)
        with GradientTape() as tape:
            tape.watch(pred)
            value = self._values(target, pred, weight)
        with paused():
            grad = tape.gradient(value, pred, unconnected_gradients="zeros")
        return value.data, grad.data

    def _prepare(self, y_true, y_pred):
        """Targets in y_pred's dtype (integers stay integers), reshaped as Keras aligns them."""
        dtype = y_true.dtype if np.dtype(y_true.dtype).kind in "iub" else y_pred.dtype
        return losses.align_targets(backend.current().asarray(y_true, dtype=dtype), y_pred)

    def _on_tape(self, y_true, y_pred, sample_weight):
        """Inside a custom step under a GradientTape: the function's own ops record on that tape."""
        device = backend.current()
        pred = y_pred if isinstance(y_pred, Tensor) else Tensor(device.asarray(y_pred))
        weight = None if sample_weight is None else \
            Tensor(device.asarray(raw(sample_weight), dtype=value_dtype(pred.dtype)))
        return self._values(Tensor(self._prepare(raw(y_true), pred.data)), pred, weight)

    def check_targets(self, y_true, output_shape, where="y"):
        """The function decides what targets mean; only NaN / inf are refused up front."""
        y = np.asarray(backend.current().to_numpy(y_true))
        if y.dtype.kind in "fc" and not np.all(np.isfinite(y)):
            raise ValueError(f"{where}: targets for loss '{self.name}' contain NaN or inf.")

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "fn": _name_of(self.fn)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        fn = get_registered_object(config.get("fn"), custom_objects)
        if fn is None:
            raise ValueError(f"Loss function {config.get('fn')!r} is unknown here; pass custom_objects="
                             f"{{'{config.get('fn')}': fn}} or decorate it with "
                             "@gn.saving.register_keras_serializable().")
        return cls(fn, name=config.get("name"), reduction=config.get("reduction", "sum_over_batch_size"))


class MeanMetricWrapper(metrics.MeanMetric):
    """A metric averaging ``fn(y_true, y_pred)`` (gn.ops) over every value of every batch."""

    def __init__(self, fn, name=None):
        self.fn = fn
        super().__init__(name=name or _name_of(fn))

    def _targets(self, y_true, y_pred):
        dtype = y_true.dtype if np.dtype(y_true.dtype).kind in "iub" else y_pred.dtype
        return losses.align_targets(backend.current().asarray(y_true, dtype=dtype), y_pred)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Keras's MeanMetricWrapper: the values of fn, per-sample means, weighted as Keras weighs them."""
        from .. import ops
        y_true = self._targets(y_true, y_pred)
        with paused():
            values = self.fn(Tensor(y_true), Tensor(y_pred))
            shape = tuple(getattr(values, "shape", ()))
            if sample_weight is None:
                count = int(np.prod(shape))
                if count:
                    self._total.add(ops.sum(values).data, (shape[0] if shape else 1) / count)
                    self._count.add(shape[0] if shape else 1)
                return
            plan = metrics_weights.samplewise(sample_weight, shape, self.name)
            weights = Tensor(plan.weights)
            means = ops.mean(ops.reshape(ops.cast(values, "float32"), (-1, plan.per)), axis=-1)
            self._total.add(ops.sum(ops.multiply(means, weights)).data, plan.count_scale)
            self._count.add(ops.sum(weights).data, plan.count_scale)

    def get_config(self):
        return {"name": self.name, "fn": _name_of(self.fn)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        fn = get_registered_object(config.get("fn"), custom_objects)
        if fn is None:
            raise ValueError(f"Metric function {config.get('fn')!r} is unknown here; pass custom_objects="
                             f"{{'{config.get('fn')}': fn}} or decorate it with "
                             "@gn.saving.register_keras_serializable().")
        return cls(fn, name=config.get("name"))
