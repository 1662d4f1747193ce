"""The activation layer classes: ReLU, LeakyReLU, ELU, PReLU, Sigmoid, Tanh, Softmax, and the
templated ones reached by name (``_Unary``: gelu, silu, mish, ...).

Any input shape; the output has the input's shape. An activation without weights saves what its
backward needs (its input or its output) and may have been applied already by the linear layer
before it (``absorbed``: that layer's kernel ran the activation as its epilogue). ``Softmax`` over
the last axis exposes ``fusable_softmax``, ``logits`` and ``backward_logits(d)``, so that the
training loop can replace softmax + cross-entropy by one stable op.

The registry by name and the ``activation=`` argument of Dense / Conv layers are
``activations.py``'s, which re-exports these classes.
"""
import numpy as np

from .. import backend, initializers
from ..primitives import activation as ops
from ..primitives import epilogue as epilogue_ops
from ..primitives.epilogue import Epilogue
from .base import Layer

__all__ = ["ReLU", "LeakyReLU", "ELU", "PReLU", "Sigmoid", "Tanh", "Softmax"]


class _ActivationLayer(Layer):
    """An elementwise layer without weights; subclasses say whether backward needs ``x`` or ``y``."""

    fusable_softmax = False
    _saves_output = True
    epilogue = None   # an Epilogue when a linear layer's kernel may apply this activation itself

    def fuses_in_place(self, z):
        """True when a linear layer may apply this activation to its own output ``z`` in place."""
        return False

    absorbed = None   # set by a model when the layer before applied this activation (its Epilogue)

    def forward(self, x, training=False):
        if self.absorbed is not None:   # x is already this activation's output
            self._saved = x
            return x
        y = self._forward(x)
        self._saved = y if self._saves_output else x
        return y

    def backward(self, dy):
        self.grads = []
        if self.absorbed is not None:
            return epilogue_ops.activation_gradient(dy, self._saved, self.absorbed)
        return self._backward(dy, self._saved)


class ReLU(_ActivationLayer):
    """Rectified linear unit: ``max(x, 0)``, optionally capped at ``max_value``.

    Keras's general form: values below ``threshold`` become ``negative_slope * (x - threshold)``.
    Any input shape; output has the input's shape.
    """

    _saves_output = False

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None and not max_value >= 0:
            raise ValueError(f"ReLU max_value must be None or >= 0; received {max_value!r}.")
        if not negative_slope >= 0:
            raise ValueError(f"ReLU negative_slope must be >= 0; received {negative_slope!r}.")
        if not threshold >= 0:   # as Keras's ReLU layer; the op itself takes any threshold
            raise ValueError(f"ReLU threshold must be >= 0; received {threshold!r}.")
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope, self.threshold = float(negative_slope), float(threshold)

    def _settings(self):
        return {"max_value": self.max_value, "negative_slope": self.negative_slope, "threshold": self.threshold}

    @property
    def plain(self):
        """True for ``max(x, 0)``: no cap, no slope, threshold 0."""
        return self.max_value is None and self.negative_slope == 0.0 and self.threshold == 0.0

    def fuses_in_place(self, z):
        return self.plain and not backend.current().runs_kernels and isinstance(z, np.ndarray) \
            and z.flags.writeable

    @property
    def epilogue(self):
        return Epilogue("relu") if self.plain else None

    def _forward(self, x):
        return ops.relu_forward(x, **self._settings())

    def _backward(self, dy, x):
        return ops.relu_backward(dy, x, **self._settings())

    def get_config(self):
        return {**super().get_config(), **self._settings()}


class LeakyReLU(_ActivationLayer):
    """``x`` where positive, ``negative_slope * x`` elsewhere (Keras's default slope 0.3)."""

    _saves_output = False

    def __init__(self, negative_slope=0.3, **kwargs):
        super().__init__(**kwargs)
        if not negative_slope >= 0:
            raise ValueError(f"LeakyReLU negative_slope must be >= 0; received {negative_slope!r}.")
        self.negative_slope = float(negative_slope)

    @property
    def epilogue(self):
        return Epilogue("leaky_relu", self.negative_slope)

    def _forward(self, x):
        return ops.leaky_relu_forward(x, self.negative_slope)

    def _backward(self, dy, x):
        return ops.leaky_relu_backward(dy, x, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(_ActivationLayer):
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere."""

    _saves_output = False

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    @property
    def epilogue(self):
        return Epilogue("elu", self.alpha) if self.alpha > 0 else None   # y + alpha gives exp(x) for alpha > 0

    def _forward(self, x):
        return ops.elu_forward(x, self.alpha)

    def _backward(self, dy, x):
        return ops.elu_backward(dy, x, self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


class PReLU(Layer):
    """Parametric ReLU: ``x`` where positive, ``alpha * x`` elsewhere, with a learned ``alpha``.

    Input (N, ...), output the same shape. Weight ``alpha`` shaped like the input without the
    batch axis, with 1 on each of ``shared_axes`` (e.g. ``shared_axes=[1, 2]`` on images: one
    slope per channel). ``alpha_initializer`` is Keras's, zeros.
    """

    def __init__(self, alpha_initializer="zeros", shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.checked(alpha_initializer, "PReLU alpha_initializer")
        if shared_axes is not None:
            shared_axes = [shared_axes] if isinstance(shared_axes, int) else list(shared_axes)
            if not all(isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in shared_axes):
                raise ValueError(f"PReLU shared_axes must be None or axes >= 1 (the batch axis 0 is always "
                                 f"shared); received shared_axes={shared_axes!r}.")
        self.shared_axes = shared_axes
        self.alpha = None
        self._x = None

    def build(self, input_shape):
        shape = list(input_shape[1:])
        for axis in self.shared_axes or []:
            if axis >= len(input_shape):
                raise self.shape_error(f"an input with an axis {axis} to share alpha over", input_shape)
            shape[axis - 1] = 1
        if None in shape:
            raise self.shape_error("known sizes on every axis alpha is not shared over", input_shape)
        self.alpha = self.add_weight("alpha", shape, self.alpha_initializer)

    def forward(self, x, training=False):
        if x.ndim != self.alpha.ndim + 1 or any(a not in (1, s) for s, a in zip(x.shape[1:], self.alpha.shape)):
            raise self.shape_error(f"inputs matching alpha {tuple(self.alpha.shape)} on the unshared axes", x.shape)
        self._x = x
        return ops.prelu_forward(x, self.compute_weight(self.alpha))

    def backward(self, dy):
        dx, dalpha = ops.prelu_backward(dy, self._x, self.compute_weight(self.alpha))
        self.grads = [dalpha] if self.trainable else []
        return dx

    def get_config(self):
        return {**super().get_config(), "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "shared_axes": self.shared_axes}


class Sigmoid(_ActivationLayer):
    """``1 / (1 + exp(-x))``."""

    epilogue = Epilogue("sigmoid")

    def _forward(self, x):
        return ops.sigmoid_forward(x)

    def _backward(self, dy, y):
        return ops.sigmoid_backward(dy, y)


class Tanh(_ActivationLayer):
    """Hyperbolic tangent."""

    epilogue = Epilogue("tanh")

    def _forward(self, x):
        return ops.tanh_forward(x)

    def _backward(self, dy, y):
        return ops.tanh_backward(dy, y)


class Softmax(_ActivationLayer):
    """Softmax along ``axis`` (default the last, the class axis of NHWC and (batch, classes) outputs).

    Over the last axis it is fusable: ``logits`` is its input from the last forward, and
    ``backward_logits(d)`` passes a gradient with respect to those logits straight through.
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, int):
            raise ValueError(f"Softmax axis must be an int; received {axis!r}.")
        self.axis = axis
        self._last_ndim = None
        self._logits = None

    def _forward(self, x):
        if not -x.ndim <= self.axis < x.ndim:
            raise self.shape_error(f"an input with an axis {self.axis}", x.shape)
        self._last_ndim, self._logits = x.ndim, x
        return ops.softmax_forward(x, self.axis)

    def _backward(self, dy, y):
        return ops.softmax_backward(dy, y, self.axis)

    @property
    def fusable_softmax(self):
        ndim = self._last_ndim if self._last_ndim is not None else (
            len(self.input_shape) if self.input_shape is not None else None)
        return self.axis == -1 or (ndim is not None and self.axis == ndim - 1)

    @property
    def logits(self):
        """The input of the last forward call."""
        return self._logits

    def backward_logits(self, dlogits):
        self.grads = []
        return dlogits

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class _Unary(_ActivationLayer):
    """One of the templated activations (``gelu``, ``silu``, ``mish``, ...; see
    ``primitives.activation.UNARY``), the layer behind ``activation="gelu"``. Keras has no layer
    class for these: they are reached by name, by ``Activation`` or by ``gn.activations``."""

    _saves_output = False

    def __init__(self, op, **kwargs):
        super().__init__(**kwargs)
        if op not in ops.UNARY:
            raise ValueError(f"Unknown activation {op!r}; expected one of {', '.join(ops.UNARY)}.")
        self.op = op

    def _forward(self, x):
        return ops.unary_forward(self.op, x)

    def _backward(self, dy, x):
        return ops.unary_backward(self.op, dy, x)

    def get_config(self):
        return {**super().get_config(), "op": self.op}

