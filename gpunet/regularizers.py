"""Weight regularizers with Keras 3's names: ``l1``, ``l2``, ``l1_l2`` (``L1``, ``L2``, ``L1L2``).

    gn.layers.Dense(64, kernel_regularizer=gn.regularizers.l2(1e-4), activity_regularizer="l1")

A regularizer maps a weight (or a layer's output) to the penalty ``l1 * sum(|x|) + l2 * sum(x^2)``
that training adds to the loss; ``gradient(x)`` is its derivative. Penalties and gradients run
as kernels (``gpunet/primitives/regularize.py``) on the kernel backends.
"""
import contextlib

from .primitives import regularize as ops

__all__ = ["Regularizer", "L1", "L2", "L1L2", "l1", "l2", "l1_l2", "get", "serialize"]


def _factor(owner, name, value):
    value = 0.0 if value is None else value
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{owner} {name} must be a float >= 0; received {value!r}.") from None
    if not value >= 0:
        raise ValueError(f"{owner} {name} must be a float >= 0; received {value!r}.")
    return value


_loss_scale = []   # the loss scale of the training step running now (innermost last)


@contextlib.contextmanager
def loss_scaling(scale):
    """Inside, penalty gradients are multiplied by ``scale`` (a LossScaleOptimizer's
    ``penalty_scale()``: a device state reference, or a float on numpy), because the loss gradient
    that starts the backward pass was; the optimizer divides everything by it again."""
    _loss_scale.append(scale)
    try:
        yield
    finally:
        _loss_scale.pop()


class Regularizer:
    """``l1 * sum(|x|) + l2 * sum(x^2)``; subclasses fix which factors are taken."""

    l1 = l2 = 0.0

    def __call__(self, x, divisor=1):
        """The penalty of ``x`` (a backend array) over ``divisor``: a 0-d array."""
        return ops.penalty(x, self.l1, self.l2, divisor)

    def add_gradient(self, x, grad, scale=1.0):
        """``grad += d(penalty)/dx * scale`` in place; times the loss scale while a loss-scaled
        training step runs (see ``loss_scaling``), since the gradients it joins carry it."""
        return ops.add_penalty_gradient(x, grad, self.l1, self.l2, scale, _loss_scale[-1] if _loss_scale else None)

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} {self.get_config()}>"


class L1L2(Regularizer):
    """Both penalties, ``L1L2(l1=0.0, l2=0.0)``; ``l1_l2`` is the same class, as in Keras 3."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = _factor("L1L2", "l1", l1), _factor("L1L2", "l2", l2)


class L1(Regularizer):
    """``l1 * sum(|x|)``, ``l1=0.01`` by default."""

    def __init__(self, l1=0.01):
        self.l1 = _factor("L1", "l1", 0.01 if l1 is None else l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """``l2 * sum(x^2)``, ``l2=0.01`` by default."""

    def __init__(self, l2=0.01):
        self.l2 = _factor("L2", "l2", 0.01 if l2 is None else l2)

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2
_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}
_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}


def get(identifier):
    """A Regularizer from None, a name (``"l1"``, ``"l2"``, ``"l1_l2"``), an object or a
    ``{"class_name", "config"}`` dict."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config") or {})
    raise ValueError(f"Unknown regularizer {identifier!r}; expected None, 'l1', 'l2', 'l1_l2', a "
                     f"gn.regularizers object or a {{'class_name', 'config'}} dict.")


def serialize(regularizer):
    return None if regularizer is None else {"class_name": type(regularizer).__name__,
                                             "config": regularizer.get_config()}
