"""Weight constraints with Keras 3's names: ``max_norm``, ``min_max_norm``, ``non_neg``,
``unit_norm`` (``MaxNorm``, ``MinMaxNorm``, ``NonNeg``, ``UnitNorm``).

    gn.layers.Dense(64, kernel_constraint=gn.constraints.max_norm(2.0))

Training applies a layer's ``kernel_constraint`` / ``bias_constraint`` to the weight in place
after every optimizer step, as Keras does. Norms run over ``axis`` (Keras's default 0: for a
Dense kernel (in, out), one norm per output unit; for a Conv2D kernel use ``axis=[0, 1, 2]``).
"""
from .primitives import regularize as ops

__all__ = ["Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "max_norm", "min_max_norm",
           "non_neg", "unit_norm", "get", "serialize"]


class Constraint:
    """Rescales a weight in place: ``constraint(w)``."""

    kind = None

    def __call__(self, w):
        return ops.constrain(w, self.kind, **self._settings())

    def _settings(self):
        return {}

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} {self.get_config()}>"


class MaxNorm(Constraint):
    """Norms over ``axis`` above ``max_value`` are scaled down to it."""

    kind = "max_norm"

    def __init__(self, max_value=2, axis=0):
        self.max_value, self.axis = max_value, axis

    def _settings(self):
        return {"axis": self.axis, "max_value": float(self.max_value)}

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class MinMaxNorm(Constraint):
    """Norms over ``axis`` moved into ``[min_value, max_value]`` (a ``rate`` of the way)."""

    kind = "min_max_norm"

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value, self.max_value, self.rate, self.axis = min_value, max_value, rate, axis

    def _settings(self):
        return {"axis": self.axis, "min_value": float(self.min_value), "max_value": float(self.max_value),
                "rate": float(self.rate)}

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


class NonNeg(Constraint):
    """Negative weights become 0."""

    kind = "non_neg"


class UnitNorm(Constraint):
    """Weights divided by their norm over ``axis``."""

    kind = "unit_norm"

    def __init__(self, axis=0):
        self.axis = axis

    def _settings(self):
        return {"axis": self.axis}

    def get_config(self):
        return {"axis": self.axis}


max_norm, min_max_norm, non_neg, unit_norm = MaxNorm, MinMaxNorm, NonNeg, UnitNorm
_CLASSES = {"MaxNorm": MaxNorm, "MinMaxNorm": MinMaxNorm, "NonNeg": NonNeg, "UnitNorm": UnitNorm}
_BY_NAME = {"max_norm": MaxNorm, "min_max_norm": MinMaxNorm, "non_neg": NonNeg, "unit_norm": UnitNorm}


def get(identifier):
    """A Constraint from None, a name, an object or a ``{"class_name", "config"}`` dict."""
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config") or {})
    raise ValueError(f"Unknown constraint {identifier!r}; expected None, 'max_norm', 'min_max_norm', "
                     f"'non_neg', 'unit_norm', a gn.constraints object or a {{'class_name', 'config'}} dict.")


def serialize(constraint):
    return None if constraint is None else {"class_name": type(constraint).__name__,
                                            "config": constraint.get_config()}
