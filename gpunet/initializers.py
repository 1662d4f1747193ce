"""Weight initialisers with Keras's names, fan rules and scales. They return NumPy float32."""
import math

import numpy as np

from . import utils


def _fans(shape):
    # Keras: the last two axes are (in, out); earlier axes form the receptive field.
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def _truncated_normal(shape, stddev):
    # Values past two standard deviations are redrawn, as Keras's truncated normal does.
    out = utils.rng().standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = utils.rng().standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out * stddev


class VarianceScaling:
    """The family behind glorot / he / lecun: variance ``scale / fan``."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal"):
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def __call__(self, shape, dtype=np.float32):
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return utils.rng().uniform(-limit, limit, shape).astype(dtype)
        # 0.8796... is the std of a unit normal truncated at two standard deviations.
        return _truncated_normal(shape, math.sqrt(variance) / 0.87962566103423978).astype(dtype)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution}


class Constant:
    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=np.float32):
        return np.full(shape, self.value, dtype=dtype)

    def get_config(self):
        return {"value": self.value}


class RandomNormal:
    def __init__(self, mean=0.0, stddev=0.05):
        self.mean, self.stddev = mean, stddev

    def __call__(self, shape, dtype=np.float32):
        return utils.rng().normal(self.mean, self.stddev, shape).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev}


class RandomUniform:
    def __init__(self, minval=-0.05, maxval=0.05):
        self.minval, self.maxval = minval, maxval

    def __call__(self, shape, dtype=np.float32):
        return utils.rng().uniform(self.minval, self.maxval, shape).astype(dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval}


_BY_NAME = {
    "glorot_uniform": lambda: VarianceScaling(1.0, "fan_avg", "uniform"),
    "glorot_normal": lambda: VarianceScaling(1.0, "fan_avg", "truncated_normal"),
    "he_uniform": lambda: VarianceScaling(2.0, "fan_in", "uniform"),
    "he_normal": lambda: VarianceScaling(2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": lambda: VarianceScaling(1.0, "fan_in", "uniform"),
    "lecun_normal": lambda: VarianceScaling(1.0, "fan_in", "truncated_normal"),
    "zeros": lambda: Constant(0.0),
    "ones": lambda: Constant(1.0),
    "random_normal": RandomNormal,
    "random_uniform": RandomUniform,
}


def get(identifier):
    """An initialiser from a name, an initialiser object or any callable ``f(shape)``."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    raise ValueError(f"Unknown initializer {identifier!r}; expected one of "
                     f"{', '.join(sorted(_BY_NAME))} or a callable.")


def serialize(initializer):
    """A name when the initialiser is one of the named ones' defaults, else a config dict."""
    if isinstance(initializer, str):
        return initializer
    for name, make in _BY_NAME.items():
        default = make()
        if type(default) is type(initializer) and default.get_config() == initializer.get_config():
            return name
    if hasattr(initializer, "get_config"):
        return {"class_name": type(initializer).__name__, "config": initializer.get_config()}
    raise ValueError(f"Initializer {initializer!r} cannot be serialized; pass a name or an object with get_config().")


def deserialize(config):
    if isinstance(config, str):
        return get(config)
    classes = {c.__name__: c for c in (VarianceScaling, Constant, RandomNormal, RandomUniform)}
    return classes[config["class_name"]](**config["config"])


def checked(identifier, what):
    """``identifier`` checked now, so that a typo fails when the layer is made, not when it is
    built; a name stays a name (get_config stays readable), a config dict becomes an object.
    ``what`` names the argument in the error, e.g. "Dense kernel_initializer"."""
    if isinstance(identifier, dict):
        return deserialize(identifier)
    try:
        get(identifier)
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from None
    return identifier

