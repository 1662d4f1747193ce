"""Activation functions by Keras 3's names, as ``keras.activations`` has them.

Each takes a backend array of any shape and returns ``f(x)`` of the same shape (forward only:
layers take these by name or by function, ``Dense(8, activation=gn.activations.mish)``, and then
run the forward and backward kernels themselves). ``functools.partial(gelu, approximate=True)``
selects the tanh form of GELU wherever an activation is taken.
"""
import functools

from .primitives import activation as _ops

__all__ = ["relu", "relu6", "leaky_relu", "elu", "selu", "sigmoid", "hard_sigmoid", "tanh", "softmax",
           "softplus", "softsign", "silu", "swish", "hard_silu", "hard_swish", "gelu", "mish",
           "exponential", "linear", "get", "serialize"]


def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    return _ops.relu_forward(x, max_value, negative_slope, threshold)


def relu6(x):
    return _ops.relu_forward(x, max_value=6.0)


def leaky_relu(x, negative_slope=0.2):
    return _ops.leaky_relu_forward(x, negative_slope)


def elu(x, alpha=1.0):
    return _ops.elu_forward(x, alpha)


def sigmoid(x):
    return _ops.sigmoid_forward(x)


def tanh(x):
    return _ops.tanh_forward(x)


def softmax(x, axis=-1):
    return _ops.softmax_forward(x, axis)


def gelu(x, approximate=False):
    """``0.5 x (1 + erf(x / sqrt(2)))``; ``approximate=True``: the tanh form."""
    return _ops.unary_forward("gelu_approximate" if approximate else "gelu", x)


def _unary(name, doc):
    def function(x):
        return _ops.unary_forward(name, x)
    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc
    return function


selu = _unary("selu", "``scale * elu(x, alpha)``, alpha 1.67326324, scale 1.05070098.")
hard_sigmoid = _unary("hard_sigmoid", "``relu6(x + 3) / 6`` (Keras 3's definition).")
softplus = _unary("softplus", "``log(exp(x) + 1)``.")
softsign = _unary("softsign", "``x / (|x| + 1)``.")
silu = _unary("silu", "``x * sigmoid(x)``.")
hard_silu = _unary("hard_silu", "``x * relu6(x + 3) / 6``.")
mish = _unary("mish", "``x * tanh(softplus(x))``.")
exponential = _unary("exponential", "``exp(x)``.")
swish, hard_swish = silu, hard_silu


def linear(x):
    return x


_NAMES = {relu: "relu", relu6: "relu6", leaky_relu: "leaky_relu", elu: "elu", selu: "selu", sigmoid: "sigmoid",
          hard_sigmoid: "hard_sigmoid", tanh: "tanh", softmax: "softmax", softplus: "softplus",
          softsign: "softsign", silu: "silu", hard_silu: "hard_silu", gelu: "gelu", mish: "mish",
          exponential: "exponential", linear: "linear"}


def serialize(function):
    """The name Keras stores for an activation function (``swish`` -> ``"silu"``); the tanh-form
    GELU, which Keras cannot serialize, is stored as ``"gelu_approximate"`` (gpunet only)."""
    if isinstance(function, functools.partial) and function.func is gelu and not function.args \
            and set(function.keywords) <= {"approximate"}:
        return "gelu_approximate" if function.keywords.get("approximate") else "gelu"
    if function in _NAMES:
        return _NAMES[function]
    raise ValueError(f"Unknown activation function {function!r}; expected one of gpunet.activations "
                     f"({', '.join(sorted(set(_NAMES.values())))}) or functools.partial(gelu, approximate=True).")


def get(identifier):
    """The function for a name (``"swish"`` -> :func:`silu`) or the function itself."""
    if callable(identifier):
        serialize(identifier)
        return identifier
    by_name = {**{name: f for f, name in _NAMES.items()}, "swish": silu, "hard_swish": hard_silu,
               "gelu_approximate": functools.partial(gelu, approximate=True)}
    if isinstance(identifier, str) and identifier.strip().lower() in by_name:
        return by_name[identifier.strip().lower()]
    raise ValueError(f"Unknown activation {identifier!r}; expected one of {', '.join(sorted(by_name))}.")
