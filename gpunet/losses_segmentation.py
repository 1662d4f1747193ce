"""Overlap losses for segmentation, Keras 3's: Dice and Tversky, over all elements of the batch
(``axis=None``, Keras's default): one value for the batch, ``1 - overlap``.

Shapes: predictions (probabilities) and targets (0/1 masks) of one shape, e.g. (batch, H, W, 1).
"""
from .losses_base import Loss
from .primitives import loss_overlap

__all__ = ["Dice", "Tversky"]


class Dice(Loss):
    """``1 - 2 sum(y p) / (sum(y) + sum(p) + eps)`` over the whole batch."""

    default_name = "dice"
    _tversky = False

    def __init__(self, reduction="sum_over_batch_size", name=None, axis=None):
        super().__init__(name=name, reduction=reduction)
        if axis is not None:
            raise ValueError(f"{type(self).__name__} supports axis=None (all elements together) only; "
                             f"received axis={axis!r}.")
        self.axis = axis
        self._stats = None

    def _settings(self):
        return {"tversky": self._tversky}

    def _value(self, y_true, y_pred):
        value, stats = loss_overlap.overlap_forward(y_true, y_pred, **self._settings())
        self._stats = (y_true, y_pred, stats)
        return value

    def _gradient(self, y_true, y_pred):
        # compute() runs _value on the same arrays first: reuse its sums rather than recount.
        saved = self._stats
        if saved is not None and saved[0] is y_true and saved[1] is y_pred:
            stats = saved[2]
        else:
            stats = loss_overlap.overlap_forward(y_true, y_pred, **self._settings())[1]
        self._stats = None
        return loss_overlap.overlap_backward(y_true, y_pred, stats, **self._settings())

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Tversky(Dice):
    """``1 - TP / (TP + alpha * sum(y (1 - p)) + beta * sum(p (1 - y)) + eps)``, TP = ``sum(y p)``,
    over the whole batch; alpha = beta = 0.5 is Dice without the factor 2 in the denominator sum."""

    default_name = "tversky"
    _tversky = True

    def __init__(self, alpha=0.5, beta=0.5, reduction="sum_over_batch_size", name=None, axis=None):
        super().__init__(reduction=reduction, name=name, axis=axis)
        self.alpha, self.beta = float(alpha), float(beta)

    def _settings(self):
        return {"tversky": True, "alpha": self.alpha, "beta": self.beta}

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta}
