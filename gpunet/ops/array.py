"""Shape and indexing ops: reshape, transpose, expand_dims, squeeze, broadcast_to, concatenate,
stack, split, slicing (``x[...]``), take, matmul.

Reshapes are views of C-contiguous arrays. On the kernel backends transpose, broadcast_to and
slicing run the strided-copy kernel, take its gather kernels (a deterministic gather of the
gradient, no atomics), concatenate the concat kernel and matmul the GEMM kernels (one launch per
product, the batch a grid axis). One integer array or bool mask among full slices (``x[idx]``,
``x[:, mask]``, ``x[..., idx]``) is ``take`` along its axis (a mask's positions found by the array
module, as their count sets the output's shape); other mixes gather with the array module.
"""
import numpy as np

from .. import backend
from ..autodiff import as_tensor, operands, record
from ..primitives import elementwise_nd as E
from ..primitives import gather, precision
from ..primitives import matmul as matmul_ops
from ..primitives import shape as shape_ops

__all__ = ["reshape", "transpose", "expand_dims", "squeeze", "broadcast_to", "concatenate", "stack", "split",
           "getitem", "take", "matmul", "flatten"]


def _reshaped(name, t, new_shape):
    old = t.shape
    return record(name, t.data.reshape(new_shape), (t,), lambda dy, n: (dy.reshape(old),))


def reshape(x, newshape):
    """``x`` with shape ``newshape`` (one entry may be -1)."""
    t = as_tensor(x, "reshape")
    newshape = (newshape,) if isinstance(newshape, (int, np.integer)) else tuple(int(s) for s in newshape)
    try:
        target = np.empty(t.shape, dtype=np.bool_).reshape(newshape).shape   # NumPy's rules, and its error
    except ValueError:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {t.shape} ({t.size} elements) "
                         f"into shape {newshape}.") from None
    return _reshaped("reshape", t, target)


def flatten(x):
    return reshape(x, (-1,))


def transpose(x, axes=None):
    """``x`` with axes permuted (reversed when ``axes`` is None)."""
    t = as_tensor(x, "transpose")
    axes = tuple(range(t.ndim))[::-1] if axes is None else tuple(int(a) % t.ndim for a in axes)
    if sorted(axes) != list(range(t.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {t.ndim} axes of shape {t.shape}.")
    inverse = tuple(int(i) for i in np.argsort(axes))
    return record("transpose", E.transpose(t.data, axes), (t,), lambda dy, n: (E.transpose(dy, inverse),))


def expand_dims(x, axis):
    """``x`` with a new axis of size 1 at ``axis``."""
    t = as_tensor(x, "expand_dims")
    shape = list(t.shape)
    axis = int(axis)
    if not -len(shape) - 1 <= axis <= len(shape):
        raise ValueError(f"expand_dims: axis {axis} is out of range for shape {t.shape}.")
    shape.insert(axis % (len(shape) + 1), 1)
    return _reshaped("expand_dims", t, tuple(shape))


def squeeze(x, axis=None):
    """``x`` without the size-1 axes named by ``axis`` (None: all of them)."""
    t = as_tensor(x, "squeeze")
    axes = E.normalize_axis("squeeze", axis, t.ndim) if axis is not None else \
        tuple(i for i, s in enumerate(t.shape) if s == 1)
    for a in axes:
        if t.shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} of shape {t.shape} has size {t.shape[a]}, not 1.")
    return _reshaped("squeeze", t, tuple(s for i, s in enumerate(t.shape) if i not in axes))


def broadcast_to(x, shape):
    """``x`` repeated along broadcast axes to ``shape``."""
    t = as_tensor(x, "broadcast_to")
    old = t.shape
    return record("broadcast_to", E.broadcast_to(t.data, shape), (t,), lambda dy, n: (E.sum_to_shape(dy, old),))


def concatenate(xs, axis=0):
    """Join tensors along ``axis``; the other axes must match."""
    ts = operands("concatenate", *xs)
    axis = int(axis) % ts[0].ndim
    sizes = [t.shape[axis] for t in ts]
    data = shape_ops.concat_forward([t.data for t in ts], axis)
    return record("concatenate", data, ts, lambda dy, n: shape_ops.concat_backward(dy, sizes, axis))


def stack(xs, axis=0):
    """Join tensors of one shape along a new ``axis``."""
    return concatenate([expand_dims(x, axis) for x in xs], axis=axis)


def split(x, indices_or_sections, axis=0):
    """A list of pieces of ``x`` along ``axis``: ``sections`` equal ones, or cut at ``indices``."""
    t = as_tensor(x, "split")
    size = t.shape[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        if size % int(indices_or_sections):
            raise ValueError(f"split: axis {axis} of shape {t.shape} does not divide into "
                             f"{indices_or_sections} equal sections.")
        step = size // int(indices_or_sections)
        cuts = list(range(step, size, step))
    else:
        cuts = [int(i) for i in indices_or_sections]
    bounds = [0, *cuts, size]
    index = [slice(None)] * t.ndim
    pieces = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        index[axis % t.ndim] = slice(start, stop)
        pieces.append(getitem(t, tuple(index)))
    return pieces


def _index_array(k):
    """``k`` as an integer or bool array of rank >= 1 (a list, NumPy or backend array), else None."""
    if isinstance(k, (list, np.ndarray)) or hasattr(k, "__cuda_array_interface__"):
        array = k if hasattr(k, "dtype") else np.asarray(k)
        return array if array.dtype.kind in "biu" and array.ndim >= 1 else None
    return None


def _array_key(key, ndim):
    """``(array, axis)`` for a key that is one integer or bool array placed by full slices
    (``x[idx]``, ``x[:, idx]``, ``x[..., mask]``): the array indexes axes ``axis`` onwards; else None."""
    items = key if isinstance(key, tuple) else (key,)
    arrays = [(p, _index_array(k)) for p, k in enumerate(items)]
    found = [(p, a) for p, a in arrays if a is not None]
    if len(found) != 1:
        return None
    (p, array), span = found[0], found[0][1].ndim if found[0][1].dtype.kind == "b" else 1
    before, after = items[:p], items[p + 1:]
    if not all(isinstance(k, slice) and k == slice(None) for k in after):
        return None
    if all(isinstance(k, slice) and k == slice(None) for k in before) and p + span + len(after) <= ndim:
        return array, p
    if len(before) == 1 and before[0] is Ellipsis and span + len(after) <= ndim:
        return array, ndim - span - len(after)
    return None


def _gather(t, array, axis):
    """``t[..., array, ...]`` with ``array`` on ``axis``: an integer array as ``take`` along it, a bool
    mask over ``axis`` and the axes after it as ``take`` of its true positions (the take kernels)."""
    if array.dtype.kind != "b":
        return take(t, array, axis=axis)
    covered = t.shape[axis:axis + array.ndim]
    if tuple(array.shape) != covered:
        raise IndexError(f"getitem: a boolean mask of shape {tuple(array.shape)} must match the axes it covers, "
                         f"{covered} of the tensor's shape {t.shape}.")
    be = backend.current()   # a host mask goes to the device first (CuPy's flatnonzero takes its own arrays)
    positions = be.xp.flatnonzero(be.asarray(array, dtype=np.bool_)).astype(np.int32)   # their count: the shape
    merged = reshape(t, (*t.shape[:axis], -1, *t.shape[axis + array.ndim:]))
    return take(merged, positions, axis=axis)


def getitem(x, key):
    """``x[key]`` with NumPy's indexing (slices, ints, None, ..., integer or bool arrays). One
    integer array or bool mask among full slices (``x[idx]``, ``x[:, mask]``, ``x[..., idx]``) runs
    the take kernels; slicing the strided-copy kernel; other mixes of arrays the array module."""
    t = as_tensor(x, "getitem")
    key = tuple(k.data if hasattr(k, "serial") else k for k in key) if isinstance(key, tuple) else \
        (key.data if hasattr(key, "serial") else key)
    found = _array_key(key, t.ndim)
    if found is not None:
        return _gather(t, *found)
    shape = t.shape
    if not precision.is_float(t.dtype):
        return record("getitem", gather.slice_forward(t.data, key), (t,), lambda dy, n: (None,))
    return record("getitem", gather.slice_forward(t.data, key), (t,),
                  lambda dy, n: (gather.slice_backward(dy, shape, key),))


def take(x, indices, axis=None):
    """Elements of ``x`` at integer ``indices`` along ``axis`` (None: of the flattened tensor)."""
    t = as_tensor(x, "take")
    index = as_tensor(indices, "take")
    if index.dtype.kind not in "iu":
        raise TypeError(f"take: indices must be integers; received dtype {index.dtype}.")
    shape = t.shape
    return record("take", gather.take_forward(t.data, index.data, axis), (t, index),
                  lambda dy, n, idx: (gather.take_backward(dy, idx, shape, axis), None), saved=(index,))


# -- matmul ----------------------------------------------------------------------------------------------

def matmul(x1, x2):
    """Matrix product with NumPy's rules: (..., m, k) @ (..., k, n) -> (..., m, n), the batch axes
    broadcast; a 1-D operand is a row (left) or column (right) vector whose axis is dropped from the
    result. Kernel backends: one GEMM launch for the whole batch (``primitives.matmul``)."""
    a, b = operands("matmul", x1, x2)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least one axis; received shapes {a.shape} and {b.shape}.")
    if a.ndim == 1:
        return squeeze(matmul(expand_dims(a, 0), b), -2)
    if b.ndim == 1:
        return squeeze(matmul(a, expand_dims(b, -1)), -1)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not chain ({a.shape[-1]} != {b.shape[-2]}).")
    matmul_ops.batch_shape(a.shape, b.shape)

    def backward(dy, needs, a_data, b_data):
        return matmul_ops.matmul_backward(dy, a_data, b_data, needs[0], needs[1])
    return record("matmul", matmul_ops.matmul_forward(a.data, b.data), (a, b), backward, saved=(a, b))
