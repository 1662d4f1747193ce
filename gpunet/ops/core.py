"""Making tensors and moving them: convert_to_tensor / convert_to_numpy, cast, zeros / ones / full
and their ``*_like`` forms, stop_gradient, shape."""
import numpy as np

from .. import backend
from ..autodiff import Tensor, as_tensor, record
from ..primitives import cast as casts
from ..primitives import creation
from ..primitives import precision

__all__ = ["convert_to_tensor", "convert_to_numpy", "cast", "zeros", "ones", "full", "zeros_like", "ones_like",
           "full_like", "stop_gradient", "shape", "is_tensor", "arange", "one_hot"]


def convert_to_tensor(x, dtype=None):
    """``x`` (a Tensor, an array, a number or nested lists) as a Tensor on the active backend.
    Python floats become float32 and ints int32 unless ``dtype`` says otherwise."""
    return as_tensor(x, "convert_to_tensor", None if dtype is None else np.dtype(dtype))


def convert_to_numpy(x):
    """A host NumPy array of ``x``'s values (a copy for Tensors)."""
    if isinstance(x, Tensor):
        return x.numpy()
    return np.asarray(backend.current().to_numpy(x) if not isinstance(x, np.ndarray) else x)


def is_tensor(x):
    return isinstance(x, Tensor)


def _converted(data, dtype):
    """``data`` as ``dtype``: between float32, bfloat16 and float16 by the cast kernels on a kernel
    backend (``primitives.cast``: rounded to nearest even, as NumPy), else by the array module."""
    if data.dtype in precision.FLOATS and dtype in precision.FLOATS:
        return casts.cast(data, dtype)
    return data.astype(dtype)


def _cast_backward(in_dtype):
    def backward(dy, needs):
        if in_dtype.kind == "b":
            return (None,)     # a mask has no gradient
        is_float = precision.is_float(in_dtype)   # bfloat16 included (its kind is "V")
        return (_converted(dy, in_dtype) if is_float and dy.dtype != in_dtype else dy,)
    return backward


def cast(x, dtype):
    """``x`` converted to ``dtype`` (a dtype or a name, "bfloat16" included). The gradient is the
    cast back to the input's dtype, for float inputs (and flows on unchanged to integer ones, so
    that a path through argmax is reported rather than silently cut)."""
    t = as_tensor(x, "cast")
    dtype = precision.dtype_of(dtype)
    if t.dtype == dtype:
        return t
    return record("cast", _converted(t.data, dtype), (t,), _cast_backward(t.dtype))


def _shape_tuple(op, shape):
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if any(not isinstance(s, (int, np.integer)) or s < 0 for s in shape):
        raise ValueError(f"{op}: shape must be non-negative integers; received {shape}.")
    return tuple(int(s) for s in shape)


def full(shape, fill_value, dtype=None):
    """A tensor of ``shape`` filled with ``fill_value`` (float32 unless ``dtype``); the fill kernel
    on the kernel backends for float dtypes."""
    dtype = precision.dtype_of(dtype or "float32")
    return Tensor(creation.full(_shape_tuple("full", shape), fill_value, dtype))


def zeros(shape, dtype=None):
    """Zeros of ``shape`` (float32 unless ``dtype``)."""
    return full(shape, 0, dtype or "float32")


def ones(shape, dtype=None):
    """Ones of ``shape`` (float32 unless ``dtype``)."""
    return full(shape, 1, dtype or "float32")


def full_like(x, fill_value, dtype=None):
    return full(tuple(x.shape), fill_value, dtype or x.dtype)


def zeros_like(x, dtype=None):
    return full(tuple(x.shape), 0, dtype or x.dtype)


def ones_like(x, dtype=None):
    return full(tuple(x.shape), 1, dtype or x.dtype)


def arange(start, stop=None, step=1, dtype=None):
    """Evenly spaced values as NumPy's arange (int32 for ints, float32 for floats)."""
    values = np.arange(start, stop, step)
    if dtype is None:   # Keras's defaults: NumPy would give int64 / float64
        dtype = "float32" if values.dtype.kind == "f" else "int32"
    return convert_to_tensor(values, dtype=dtype)


def stop_gradient(x):
    """``x`` as a tensor the tape treats as a constant: no gradient flows back through it."""
    return Tensor(as_tensor(x, "stop_gradient").data)


def shape(x):
    """The shape as a tuple of ints."""
    return tuple(x.shape)


def one_hot(x, num_classes, axis=-1, dtype=None):
    """Integer labels ``x`` of shape S as one-hot vectors: S with a ``num_classes`` axis inserted at
    ``axis`` (-1: last), float32 unless ``dtype``. A label outside [0, num_classes) gives zeros, as
    Keras; float labels are truncated to ints. Not differentiable (labels have no gradient)."""
    labels = as_tensor(x, "one_hot")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"one_hot: num_classes must be a positive int; received {num_classes!r}.")
    ndim = labels.ndim + 1
    if not -ndim <= int(axis) < ndim:
        raise ValueError(f"one_hot: axis {axis} is out of range for labels of shape {labels.shape} (the output "
                         f"has {ndim} axes).")
    data = labels.data if labels.dtype.kind in "iu" else labels.data.astype(np.int32)
    return Tensor(creation.one_hot(data, int(num_classes), int(axis) % ndim, precision.dtype_of(dtype or "float32")))
