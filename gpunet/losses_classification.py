"""Margin and focal classification losses, Keras 3's: Hinge, SquaredHinge, CategoricalHinge,
BinaryFocalCrossentropy, CategoricalFocalCrossentropy.

Shapes: predictions and targets (batch, ..., classes) of one shape. Reduction: Keras's
"sum_over_batch_size" (per-sample loss averaged over the batch and any other axes).
"""
from .losses_base import Loss
from .losses_regression import TermLoss
from .primitives import loss_rows, loss_terms

__all__ = ["Hinge", "SquaredHinge", "CategoricalHinge", "BinaryFocalCrossentropy",
           "CategoricalFocalCrossentropy"]


class Hinge(TermLoss):
    """``max(1 - y_true * y_pred, 0)``, mean over the last axis. Targets that are all 0 or 1 are
    taken as -1 / 1 first (Keras's rule); others are used as they are."""

    default_name = "hinge"
    _kind = "hinge"

    def _settings(self):
        return ()

    def _prepare(self, y_true, y_pred):
        return loss_terms.hinge_targets(super()._prepare(y_true, y_pred))


class SquaredHinge(Hinge):
    """``max(1 - y_true * y_pred, 0)^2``, mean over the last axis (targets as in Hinge)."""

    default_name = "squared_hinge"
    _kind = "squared_hinge"


class CategoricalHinge(Loss):
    """``max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)`` per row (last axis)."""

    default_name = "categorical_hinge"

    def _value(self, y_true, y_pred):
        return loss_rows.row_sum("categorical_hinge", y_true, y_pred, y_pred.size // y_pred.shape[-1])

    def _gradient(self, y_true, y_pred):
        return loss_rows.row_gradient("categorical_hinge", y_true, y_pred, y_pred.shape[-1] / y_pred.size)


def _check_smoothing(owner, label_smoothing):
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"{owner} label_smoothing must be in [0, 1]; received {label_smoothing!r}.")
    return float(label_smoothing)


def _check_axis(owner, axis):
    if axis != -1:
        raise ValueError(f"{owner} supports axis=-1 (the class axis last) only; received axis={axis!r}.")
    return axis


class BinaryFocalCrossentropy(TermLoss):
    """``w (1 - p_t)^gamma * bce(y, p)`` per element, mean over the last axis (Lin et al., 2017).

    ``p_t = y p + (1 - y)(1 - p)``; ``w = y alpha + (1 - y)(1 - alpha)`` when
    ``apply_class_balancing``, else 1. ``from_logits``: ``y_pred`` are logits (sigmoid first);
    ``label_smoothing`` s: targets become ``y (1 - s) + s / 2``.
    """

    default_name = "binary_focal_crossentropy"

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)
        self.apply_class_balancing = bool(apply_class_balancing)
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_smoothing(type(self).__name__, label_smoothing)
        self.axis = _check_axis(type(self).__name__, axis)

    @property
    def _kind(self):
        return "binary_focal_logits" if self.from_logits else "binary_focal"

    def _settings(self):
        return (self.gamma, self.alpha, 1.0 if self.apply_class_balancing else 0.0)

    def _prepare(self, y_true, y_pred):
        y_true = super()._prepare(y_true, y_pred)
        if self.label_smoothing:
            y_true = loss_terms.smooth_targets(y_true, 1 - self.label_smoothing, 0.5 * self.label_smoothing)
        return y_true

    def get_config(self):
        return {**super().get_config(), "apply_class_balancing": self.apply_class_balancing, "alpha": self.alpha,
                "gamma": self.gamma, "from_logits": self.from_logits, "label_smoothing": self.label_smoothing,
                "axis": self.axis}


class CategoricalFocalCrossentropy(Loss):
    """``sum(alpha (1 - o)^gamma * -y log o)`` over the class axis, ``o = clip(p / sum(p))``.

    ``from_logits``: ``y_pred`` are logits (softmax first). ``label_smoothing`` s: targets become
    ``y (1 - s) + s / classes``. Shapes: (batch, ..., classes) for both.
    """

    default_name = "categorical_focal_crossentropy"

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_smoothing(type(self).__name__, label_smoothing)
        self.axis = _check_axis(type(self).__name__, axis)

    @property
    def _kind(self):
        return "categorical_focal_logits" if self.from_logits else "categorical_focal"

    def _prepare(self, y_true, y_pred):
        y_true = super()._prepare(y_true, y_pred)
        if self.label_smoothing:
            classes = y_pred.shape[-1]
            y_true = loss_terms.smooth_targets(y_true, 1 - self.label_smoothing, self.label_smoothing / classes)
        return y_true

    def _expected_target_shapes(self, sample_shape):
        return [sample_shape]

    def _value(self, y_true, y_pred):
        return loss_rows.row_sum(self._kind, y_true, y_pred, y_pred.size // y_pred.shape[-1], self.alpha, self.gamma)

    def _gradient(self, y_true, y_pred):
        return loss_rows.row_gradient(self._kind, y_true, y_pred, y_pred.shape[-1] / y_pred.size,
                                      self.alpha, self.gamma)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}
