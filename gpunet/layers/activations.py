"""Activation layers, the ``activation=`` argument of Dense/Conv layers, and the softmax fusion protocol.

A layer whose output is a softmax over the last axis (``Softmax``, or any layer built with
``activation="softmax"``) exposes ``fusable_softmax``, ``logits`` and ``backward_logits(d)``,
so that the training loop can replace softmax + cross-entropy by one stable op.

The layer classes are in ``activation_layers.py`` (re-exported here); this module maps names to
them (``get_activation``, ``serialize_activation``) and gives linear layers their
``activation=`` argument (``ActivationMixin``).
"""
from .. import activations as functions
from .. import backend
from ..primitives import activation as ops
from ..primitives import passes
from ..primitives import epilogue as epilogue_ops
from . import autocast
from .activation_layers import ELU, PReLU, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, _Unary  # noqa: F401
from .base import Layer

__all__ = ["ReLU", "LeakyReLU", "ELU", "PReLU", "Sigmoid", "Tanh", "Softmax", "get_activation", "ActivationMixin"]


_BY_NAME = {"relu": ReLU, "leaky_relu": LeakyReLU, "elu": ELU, "sigmoid": Sigmoid, "tanh": Tanh, "softmax": Softmax}
_LAYER_CLASSES = {cls.__name__: cls for cls in _BY_NAME.values()}
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}   # Keras stores the canonical name


def _layer_for_name(key):
    """A fresh layer for a canonical activation name, or None when the name is unknown."""
    if key in _BY_NAME:
        # An explicit name keeps the inner layer from using up "re_lu", "softmax", ... automatic names.
        return _BY_NAME[key](name=key)
    if key == "relu6":
        return ReLU(max_value=6.0, name=key)
    if key in ops.UNARY:
        return _Unary(key, name=key)
    return None


ACTIVATION_NAMES = ("linear", *_BY_NAME, "relu6", *ops.UNARY, *_ALIASES)


def get_activation(identifier):
    """A fresh activation layer from a name, a layer instance or a layer config, or None for linear.

    Names: ``None``/``"linear"`` and :data:`ACTIVATION_NAMES` (Keras 3's: ``"relu"``, ``"gelu"``,
    ``"swish"``, ...; ``"gelu_approximate"`` is gpunet's name for the tanh-form GELU). A
    ``gpunet.activations`` function is taken by its name. A Layer instance is copied (from its config): an activation keeps
    what its backward needs, so one instance shared by two layers would mix their values; a dict
    ``{"class_name": ..., "config": ...}`` (what ``get_config`` stores for one) is rebuilt.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Layer):
        return type(identifier).from_config(identifier.get_config())
    if callable(identifier) and not isinstance(identifier, type):
        identifier = functions.serialize(identifier)   # a gn.activations function: its name
    if isinstance(identifier, str):
        key = identifier.strip().lower()
        key = _ALIASES.get(key, key)
        if key == "linear":
            return None
        layer = _layer_for_name(key)
        if layer is not None:
            return layer
    if isinstance(identifier, dict) and identifier.get("class_name") in _LAYER_CLASSES:
        return _LAYER_CLASSES[identifier["class_name"]](**identifier.get("config", {}))
    raise ValueError(f"Unknown activation {identifier!r}; expected one of None, 'linear', "
                     f"{', '.join(repr(n) for n in ACTIVATION_NAMES[1:])}, a gpunet.activations function "
                     "or an activation layer.")


def serialize_activation(identifier):
    """What ``get_config`` stores for ``activation=``: the name ("linear" for None), or a layer's config."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str):
        key = identifier.strip().lower()
        return _ALIASES.get(key, key)
    if callable(identifier) and not isinstance(identifier, (type, Layer)):
        return functions.serialize(identifier)
    if isinstance(identifier, dict):
        return identifier
    return {"class_name": type(identifier).__name__, "config": identifier.get_config()}


class ActivationMixin:
    """The ``activation=`` argument of a linear layer (Dense, Conv2D, Conv2DTranspose).

    The layer computes ``z`` (its linear part) and returns ``self._activate(z, training)``; its
    ``backward(dy)`` returns ``self._linear_backward(self._deactivate(dy))``, where
    ``_linear_backward(dz)`` fills ``self.grads`` and returns dx.
    """

    def _init_activation(self, activation):
        self._activation = get_activation(activation)
        self.activation = serialize_activation(activation)
        if self._activation is not None:
            self.dtype_policy = self.dtype_policy   # passes the layer's policy on to its activation

    _fused = None        # the Epilogue the last forward's kernel applied, and its output:
    _fused_output = None  # what the activation's backward (or a neighbour's fold) reads
    activation_folded = False   # set by a model while the next layer's kernel applies its gradient

    def _forward_epilogue(self):
        """The activation for the linear op's kernel to apply (kernel backends), or None."""
        if self._activation is None or not backend.current().runs_kernels:
            return None
        return self._activation.epilogue

    def activation_fold(self):
        """``(y, Epilogue)`` when the last forward fused the activation: a neighbouring kernel that
        computes this layer's output gradient may apply the activation's derivative itself."""
        return None if self._fused is None else (self._fused_output, self._fused)

    def _activate(self, z, training, owned=False, fused=None):
        """``activation(z)``; ``owned``: z is this layer's own fresh output, which a plain ReLU
        on the numpy backend then clamps in place (one pass, no second array). ``fused``: the
        Epilogue the linear op already applied (z is then the activation's output)."""
        # A 16-bit product may come back float32 (tensor cores): narrowed here, before the
        # activation keeps it for its backward, rather than after.
        z = autocast.cast_floats(z, autocast.work_dtype(self))
        self._fused, self._fused_output = fused, (z if fused is not None else None)
        if self._activation is None or fused is not None:
            return z
        if owned and self._activation.fuses_in_place(z):
            passes.relu_inplace(z)
            # The ReLU saves its output as its input: max(z, 0) > 0 exactly where z > 0.
            self._activation._saved = z
            return z
        return self._activation.forward(z, training=training)

    relu_mask_applied = False   # set by a model while a following max pool applies the ReLU's mask

    @property
    def gives_relu_mask(self):
        """True when the activation is a plain ReLU: a max pool reading only this layer's output
        may apply the ReLU's mask to its own, smaller, gradient (see ``Model._backward``)."""
        return isinstance(self._activation, ReLU) and self._activation.plain

    def _deactivate(self, dy):
        if self._activation is None or self.relu_mask_applied or self.activation_folded:
            return dy
        if self._fused is not None:
            return epilogue_ops.activation_gradient(dy, self._fused_output, self._fused)
        return self._activation.backward(dy)

    @property
    def fusable_softmax(self):
        """True when the activation is a softmax over the last axis."""
        return self._activation is not None and self._activation.fusable_softmax

    @property
    def logits(self):
        """The softmax input ``z`` from the last forward call (when ``fusable_softmax``)."""
        if not self.fusable_softmax:
            raise AttributeError(f"{type(self).__name__} '{self.name}' has no softmax activation, so no logits.")
        return self._activation.logits

    def backward_logits(self, dlogits):
        """Backward from d(loss)/d(logits), skipping the softmax; returns dx and fills ``self.grads``."""
        return self._linear_backward(dlogits)
