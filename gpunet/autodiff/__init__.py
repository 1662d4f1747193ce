"""Automatic gradients for ``gn.ops``: the Tensor type, the tape, and turning op arguments into
Tensors with Keras's dtype rules.

Where it sits: ``models -> layers -> [autodiff tape] -> ops (public) -> primitives -> backend ->
kernels``. A public op converts its arguments here, runs a primitive forward, and records its
backward (built from primitives) on the innermost open tape.
"""
import numpy as np

from .. import backend
from ..primitives import precision
from .tape import GradientTape, Node, active, any_open, paused, record
from .tensor import Tensor

__all__ = ["Tensor", "GradientTape", "record", "active", "any_open", "paused", "as_tensor", "operands",
           "float_dtype", "raw"]

_SCALARS = (bool, int, float, np.bool_, np.integer, np.floating)


def _is_backend_array(x):
    return hasattr(x, "__cuda_array_interface__") or isinstance(x, np.ndarray)


def as_tensor(x, op="gn.ops", dtype=None):
    """``x`` (a Tensor, a backend or NumPy array, a number, a nested list) as a Tensor on the active
    backend. A raw array used while a tape records becomes that tape's leaf for it (weights)."""
    current = backend.current()
    if isinstance(x, Tensor):
        if x.backend != current.name:
            raise ValueError(f"{op}: received a tensor of the {x.backend!r} backend while the {current.name!r} "
                             f"backend is active; tensors of two backends do not mix. Convert it with "
                             f"gn.ops.convert_to_tensor(gn.ops.convert_to_numpy(x)).")
        return x if dtype is None or x.dtype == dtype else _cast(x, dtype)
    if _is_backend_array(x) and (dtype is None or x.dtype == dtype):
        if isinstance(x, np.ndarray) and current.name == "cuda" or not x.flags.c_contiguous:
            return Tensor(current.asarray(x, dtype=x.dtype).reshape(x.shape))
        tape = active()
        return _autocast_variable(x, tape.leaf(x) if tape is not None else Tensor(x))
    values = np.asarray(x)
    if dtype is None:
        dtype = _default_dtype(values)
    return Tensor(current.asarray(values, dtype=dtype).reshape(values.shape))   # asarray makes 0-d 1-d


_autocasting = []   # (ids of a call() layer's own weights, its compute dtype) while its call() runs


def _autocast_variable(x, tensor):
    """Keras's autocast of variables: inside a mixed-policy layer's call(), its float32 weights
    enter ops in the compute dtype (a recorded cast, so their gradients come back float32)."""
    if _autocasting:
        ids, dtype = _autocasting[-1]
        if id(x) in ids and x.dtype != dtype:
            return _cast(tensor, dtype)
    return tensor


def _default_dtype(values):
    """Keras's defaults for Python data: float32 for floats, int32 for ints, bool stays bool."""
    if precision.is_float(values.dtype):
        return np.float32 if values.dtype == np.float64 else values.dtype
    if values.dtype.kind in "iu":
        return np.int32 if values.dtype == np.int64 else values.dtype
    if values.dtype.kind == "b":
        return np.bool_
    raise TypeError(f"gn.ops cannot make a tensor of {values.dtype} data.")


def _cast(x, dtype):
    from .. import ops
    return ops.cast(x, dtype)


def float_dtype(*dtypes):
    """Keras's promotion for gn.ops: the widest float among ``dtypes``, else float32 for ints; two
    ints follow NumPy."""
    floats = [np.dtype(d) for d in dtypes if precision.is_float(d)]
    if floats:
        widest = max(floats, key=lambda d: d.itemsize)
        if widest.itemsize == 2 and len(set(floats)) > 1:   # bfloat16 with float16: float32, as Keras
            return np.dtype(np.float32)
        return widest
    kinds = [np.dtype(d) for d in dtypes]
    if all(d.kind == "b" for d in kinds):
        return np.dtype(bool)
    return np.result_type(*[d for d in kinds if d.kind != "b"] or kinds)


def operands(op, *xs):
    """Tensors of one dtype for an elementwise op. Python numbers are weak (``x * 2`` keeps x's
    float16/32/64); arrays and Tensors promote by ``float_dtype``."""
    strong = [x for x in xs if not isinstance(x, _SCALARS)]
    tensors = [as_tensor(x, op) for x in strong]
    if tensors:
        dtype = float_dtype(*[t.dtype for t in tensors])
        if any(isinstance(x, (float, np.floating)) for x in xs) and not precision.is_float(dtype):
            dtype = np.dtype(np.float32)
    else:
        dtype = _default_dtype(np.asarray(xs[0] if len(xs) == 1 else np.result_type(*xs).type(0)))
    out, strong_iter = [], iter(tensors)
    for x in xs:
        t = next(strong_iter) if not isinstance(x, _SCALARS) else as_tensor(x, op, dtype)
        out.append(t if t.dtype == dtype else _cast(t, dtype))
    return out


def raw(x):
    """The backend array of a Tensor (anything else unchanged)."""
    return x.data if isinstance(x, Tensor) else x
