"""Making tensors: ``full`` (gn.ops.full, zeros, ones and their ``*_like``) and ``one_hot``.

* ``full(shape, value, dtype)``: NumPy's ``np.full``; on a kernel backend ``fill<T>`` of
  ``kernels/elementwise_nd.cu`` for float32 / bfloat16 / float16. The value is first rounded to
  ``dtype`` on the host as NumPy rounds it, so that the kernel stores exactly NumPy's bits.
* ``one_hot(labels, num_classes, axis, dtype)``: labels of shape S -> S with a ``num_classes`` axis
  inserted at ``axis``, 1 where the label equals the class and 0 elsewhere (a label outside
  ``[0, num_classes)`` gives zeros, as Keras). Kernel: ``one_hot<T>``, labels read as int32 and
  the output written in place of the axis (no transpose).

Other dtypes (ints, bool) use the array module (``fill`` / ``one_hot`` compute in float types).
"""
import numpy as np

from .. import backend
from . import launch, precision

_FILE = "elementwise_nd.cu"
_MAX_BLOCKS = 2048


def full(shape, value, dtype):
    """An array of ``shape`` (a tuple of ints) filled with ``value``, of ``dtype``."""
    dtype, be = np.dtype(dtype), backend.current()
    if not be.runs_kernels or dtype not in precision.FLOATS:
        return be.xp.full(shape, value, dtype=dtype)
    exact = np.float32(np.array(value, dtype=dtype).astype(np.float32))   # what T holds: exact in float32
    out = launch.empty(shape, dtype)
    n = launch.i32(out.size, "full: elements")
    if n:
        launch.run(_FILE, "fill", launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS, out, n, exact)
    return out


def one_hot(labels, num_classes, axis, dtype):
    """One-hot vectors of integer ``labels`` along a new axis ``axis`` (0 <= axis <= labels.ndim)."""
    dtype, be = np.dtype(dtype), backend.current()
    shape = tuple(labels.shape)
    out_shape = shape[:axis] + (num_classes,) + shape[axis:]
    if not be.runs_kernels:
        hot = labels.reshape(*shape, 1) == np.arange(num_classes)
        return np.ascontiguousarray(np.moveaxis(hot, -1, axis)).astype(dtype)
    kernel_dtype = dtype if dtype in precision.FLOATS else precision.FLOAT32
    labels, = launch.inputs("one_hot", labels.astype(np.int32, copy=False), dtype=np.int32)
    out = launch.empty(out_shape, kernel_dtype)
    n = launch.i32(out.size, "one_hot: elements")
    inner = int(np.prod(shape[axis:], dtype=np.int64))
    if n:
        launch.run(_FILE, "one_hot", launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS,
                   labels, out, n, num_classes, max(inner, 1))
    return out if kernel_dtype == dtype else out.astype(dtype)
