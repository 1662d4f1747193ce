"""Keras's autocast, for the layer contract: what a layer's dtype policy does around its
``forward`` / ``backward`` (gpunet/mixed_precision.py holds the policies themselves).

Every layer class's own ``forward``, ``backward`` and ``backward_logits`` are wrapped once
(``Layer.__init_subclass__`` calls :func:`wrap`); on the outermost call of a layer:

* forward: floating inputs are cast to the layer's compute dtype (a float32 layer inside a
  mixed model casts its bf16 input up, as Keras's); the input dtypes are remembered; floating
  outputs leave in the compute dtype (a tensor-core product returns float32: it is narrowed).
* backward: ``dy`` is cast to the compute dtype; each weight gradient to its weight's dtype (the
  optimizer sees float32 gradients of float32 variables); ``dx`` to the dtype the input came in.

Inside, a layer reads its weights through ``layer.compute_weight(w)``: ``w`` cast to the
compute dtype (once per forward; the backward reuses that copy), or ``w`` itself when the dtypes
agree. Layers whose primitives do not take 16-bit arrays yet set ``computes_half = False``: they
then run on float32 copies (one place to change when the primitive learns 16-bit).
"""
import numpy as np

from .. import backend, mixed_precision
from ..primitives import cast as cast_ops
from ..primitives import precision

_WRAPPED = ("forward", "backward", "backward_logits")


def cast(x, dtype):
    """``x`` as ``dtype``, the one place layers change an array's dtype (a kernel on the kernel
    backends, one rounding to nearest even)."""
    return cast_ops.cast(x, dtype)


def is_float(x):
    """True for float16/32/64 and bfloat16 arrays (ml_dtypes' bfloat16 has dtype kind 'V')."""
    dtype = getattr(x, "dtype", None)
    return dtype is not None and precision.is_float(dtype)


def differs(dtype, target):
    """Whether a policy cast applies between ``dtype`` and ``target``: only when one side is 16-bit.
    float32 <-> float64 stays as it comes (Keras would cast; gpunet's float64 reference checks
    feed float64 arrays to float32-built layers, and ops take their inputs' dtype)."""
    return dtype != target and (dtype in precision.HALF or target in precision.HALF)


def cast_floats(value, dtype):
    """``value`` (an array, a list of arrays, or None) with its floating arrays cast to ``dtype``
    where one of the two is 16-bit (see ``differs``)."""
    if isinstance(value, (list, tuple)):
        return [cast_floats(v, dtype) for v in value]
    if value is None or not is_float(value) or not differs(value.dtype, dtype):
        return value
    return cast(value, dtype)


def _dtypes(value):
    return [getattr(v, "dtype", None) for v in value] if isinstance(value, (list, tuple)) \
        else getattr(value, "dtype", None)


def _restore(value, dtypes):
    """``value`` cast back, item by item, to the floating ``dtypes`` its inputs came in."""
    if isinstance(value, (list, tuple)) and isinstance(dtypes, list):
        return [_restore(v, d) for v, d in zip(value, dtypes)]
    if dtypes is None or value is None or not is_float(value) or not differs(value.dtype, dtypes):
        return value
    return cast(value, dtypes)


def work_dtype(layer):
    """The dtype ``layer``'s forward and backward run in: its compute dtype, or float32 where the
    compute dtype is 16-bit and the layer's primitives do not take 16-bit arrays yet."""
    compute = layer._compute_np
    if not layer.computes_half and compute in precision.HALF:
        return precision.FLOAT32
    return compute


def _forward(layer, call, x, training=False):
    policy = layer._dtype_policy
    if policy.compute_dtype == "float64" and type(layer).__module__.startswith("gpunet."):
        # gpunet's layers launch kernels there; a user's layer may compute in NumPy itself
        mixed_precision.check_backend(policy, f"{type(layer).__name__} '{layer.name}'", backend.current())
    layer._weight_casts = None
    work = work_dtype(layer)
    layer._input_dtypes = _dtypes(x)
    y = call(cast_floats(x, work), training=training)
    return cast_floats(y, layer._compute_np)


def _backward(layer, call, dy):
    dx = call(cast_floats(dy, work_dtype(layer)))
    if layer.grads:
        layer.grads = [g if g is None or not differs(g.dtype, w.dtype) else cast(g, w.dtype)
                       for g, w in zip(layer.grads, layer.trainable_weights)]
    return _restore(dx, getattr(layer, "_input_dtypes", None))


_AROUND = {"forward": _forward, "backward": _backward, "backward_logits": _backward}


def wrap(cls):
    """Put the policy's casts around the ``forward`` / ``backward`` / ``backward_logits`` that
    ``cls`` defines itself or takes from a mixin that is not a layer (ActivationMixin's
    ``backward_logits``); an inner ``super()`` call of a wrapped method passes straight through."""
    if not cls.__dict__.get("_autocasts", True):
        return
    for name in _WRAPPED:
        owner = next((klass for klass in cls.__mro__ if name in klass.__dict__), None)
        if owner is None or (owner is not cls and any("_autocasts" in vars(k) for k in owner.__mro__)):
            continue   # none, or a layer class's own: wrapped when that class was made
        method = owner.__dict__[name]
        if not getattr(method, "_autocast", False):
            setattr(cls, name, _outermost(method, _AROUND[name]))


def _outermost(method, around):
    def wrapped(self, *args, **kwargs):
        if self.__dict__.get("_autocast_depth") or not self._autocasts:
            return method(self, *args, **kwargs)
        self.__dict__["_autocast_depth"] = True
        try:
            return around(self, lambda *a, **k: method(self, *a, **k), *args, **kwargs)
        finally:
            self.__dict__["_autocast_depth"] = False
    wrapped.__name__, wrapped.__doc__, wrapped._autocast = method.__name__, method.__doc__, True
    wrapped.__wrapped__ = method
    return wrapped


def compute_weight(layer, weight):
    """``weight`` in the dtype ``layer`` computes in; the cast is made once per forward."""
    if weight is None:
        return None
    work = work_dtype(layer)
    if not differs(weight.dtype, work) or not is_float(weight):
        return weight
    casts = layer.__dict__.get("_weight_casts")
    if casts is None:
        casts = layer.__dict__["_weight_casts"] = {}
    found = casts.get(id(weight))
    if found is None or found[0] is not weight:
        found = casts[id(weight)] = (weight, cast(weight, work))
    return found[1]


def np_dtype(name):
    """``np.dtype`` for a policy's dtype name (bfloat16 through ml_dtypes)."""
    return precision.dtype_of(name) if name == "bfloat16" else np.dtype(name)
