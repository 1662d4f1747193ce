"""Regression and distribution losses, Keras 3's: Huber, LogCosh, Poisson,
MeanSquaredLogarithmicError, MeanAbsolutePercentageError, KLDivergence, CosineSimilarity.

Each is reduced as Keras's "sum_over_batch_size": the per-sample loss (a mean over the last
axis, or a sum over it for KLDivergence and CosineSimilarity) averaged over the remaining
elements. Predictions and targets have one shape, e.g. (batch, features).
"""
from .losses_base import Loss
from .primitives import loss_rows, loss_terms
from .primitives.loss import EPSILON

__all__ = ["Huber", "LogCosh", "Poisson", "MeanSquaredLogarithmicError", "MeanAbsolutePercentageError",
           "KLDivergence", "CosineSimilarity"]


class TermLoss(Loss):
    """A loss that is one term per element (``primitives.loss_terms``), averaged as Keras does."""

    _kind = None
    _sums_last_axis = False   # per-sample loss a sum over the last axis (else a mean)

    def _settings(self):
        return (EPSILON,)

    def _count(self, y_pred):
        return y_pred.size // y_pred.shape[-1] if self._sums_last_axis and y_pred.ndim else y_pred.size

    def _value(self, y_true, y_pred):
        return loss_terms.term_sum(self._kind, y_true, y_pred, self._count(y_pred), *self._settings())

    def _gradient(self, y_true, y_pred):
        return loss_terms.term_gradient(self._kind, y_true, y_pred, 1.0 / self._count(y_pred), *self._settings())


class Huber(TermLoss):
    """``0.5 e^2`` where ``|e| <= delta``, else ``delta |e| - 0.5 delta^2`` (e = y_pred - y_true), mean over the last axis."""

    default_name = "huber_loss"
    _kind = "huber"

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)
        self.delta = float(delta)

    def _settings(self):
        return (self.delta,)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


class LogCosh(TermLoss):
    """``log(cosh(y_pred - y_true))``, computed as ``x + softplus(-2x) - log 2``; mean over the last axis."""

    default_name = "log_cosh"
    _kind = "log_cosh"


class Poisson(TermLoss):
    """``y_pred - y_true * log(y_pred + eps)``, mean over the last axis."""

    default_name = "poisson"
    _kind = "poisson"


class MeanSquaredLogarithmicError(TermLoss):
    """``(log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1))^2``, mean over the last axis."""

    default_name = "mean_squared_logarithmic_error"
    _kind = "squared_log"


class MeanAbsolutePercentageError(TermLoss):
    """``100 |y_true - y_pred| / max(|y_true|, eps)``, mean over the last axis."""

    default_name = "mean_absolute_percentage_error"
    _kind = "percentage"


class KLDivergence(TermLoss):
    """``sum(y log(y / p))`` over the last axis, y and p clipped to ``[eps, 1]``."""

    default_name = "kl_divergence"
    _kind = "kl_divergence"
    _sums_last_axis = True


class CosineSimilarity(Loss):
    """``-sum(normalize(y_true) * normalize(y_pred))`` over the last axis (-1 for equal directions).

    ``normalize(x) = x * min(rsqrt(sum(x^2)), 1 / eps)``, Keras's l2 normalisation.
    """

    default_name = "cosine_similarity"

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)
        if axis != -1:
            raise ValueError(f"CosineSimilarity supports axis=-1 (the last axis) only; received axis={axis!r}.")
        self.axis = axis

    def _value(self, y_true, y_pred):
        return loss_rows.row_sum("cosine", y_true, y_pred, y_pred.size // y_pred.shape[-1], EPSILON)

    def _gradient(self, y_true, y_pred):
        return loss_rows.row_gradient("cosine", y_true, y_pred, y_pred.shape[-1] / y_pred.size, EPSILON)
