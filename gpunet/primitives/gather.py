"""Slicing and take, forward and backward: the gathers of ``gn.ops`` indexing.

* ``slice_forward(x, key)`` / ``slice_backward(dy, shape, key)``: basic indexing (ints, slices with
  any step, None, Ellipsis) is a strided view of x, so the kernel path copies it with
  ``strided_copy`` from x's first selected element and scatters the gradient back with
  ``strided_scatter`` (each element of x is reached at most once). Integer or bool array keys
  gather with the backend's array module.
* ``take_forward(x, indices, axis)`` / ``take_backward(dy, indices, shape, axis)``: ``take_forward``
  / ``take_backward`` of ``kernels/elementwise_nd.cu``, x seen as (outer, axis, inner); the
  backward is a gather, not a scatter: the host sorts the positions by the index they take
  (``_positions_by_index``) and each dx element adds its shares in ascending position, so an
  index taken twice gets both gradients, in a fixed order, with no atomics.

Dtypes: the kernels run float32, bfloat16 and float16 (copies, exact); take's backward adds in
float32 and rounds a 16-bit gradient once at the end. Other dtypes use the array module.
"""
import numpy as np

from .. import backend
from . import launch, precision
from . import elementwise_nd as E

_FILE = "elementwise_nd.cu"
_MAX_BLOCKS = 2048


def is_basic(key):
    items = key if isinstance(key, tuple) else (key,)
    return all(isinstance(k, (slice, int, np.integer, type(None), type(Ellipsis))) for k in items)


def _view_layout(shape, key):
    """(shape, offset, element strides) of ``x[key]`` for a C-contiguous x of ``shape``, from a
    stand-in view NumPy makes over one byte (no memory of x's size is touched)."""
    strides = E._contiguous_strides(shape)
    probe = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape, strides)
    view = probe[key]
    offset = view.__array_interface__["data"][0] - probe.__array_interface__["data"][0]
    return tuple(view.shape), int(offset), list(view.strides)


def slice_forward(x, key):
    """``x[key]`` as a C-contiguous array."""
    if not backend.current().runs_kernels or not is_basic(key) or x.dtype not in precision.FLOATS:
        return backend.current().xp.ascontiguousarray(x[key])
    x, = E._kernel_inputs("slice_forward", [x], precision.FLOATS)
    shape, offset, strides = _view_layout(x.shape, key)
    out = launch.empty(shape, x.dtype)
    n = launch.i32(out.size, "slice_forward: elements")
    if n:
        meta, ndim = E._meta("strided_copy", shape, [strides])
        launch.run(_FILE, "strided_copy", launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS,
                   x, out, n, ndim, meta, offset)
    return out


def slice_backward(dy, shape, key):
    """The gradient of ``slice_forward``: zeros of ``shape`` with ``dy`` at the selected places."""
    xp = backend.current().xp
    if not backend.current().runs_kernels or not is_basic(key) or dy.dtype not in precision.FLOATS:
        dx = xp.zeros(shape, dtype=dy.dtype)
        if is_basic(key):
            dx[key] = dy
        else:
            xp.add.at(dx, key, dy)
        return dx
    dy, = E._kernel_inputs("slice_backward", [dy], precision.FLOATS)
    view_shape, offset, strides = _view_layout(shape, key)
    dx = launch.zeros(shape, dy.dtype)
    n = launch.i32(dy.size, "slice_backward: elements")
    if n:
        meta, ndim = E._meta("strided_scatter", view_shape, [strides])
        launch.run(_FILE, "strided_scatter", launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS,
                   dy, dx, n, ndim, meta, offset)
    return dx


def _take_layout(shape, axis):
    """x of ``shape`` seen as (outer, axis length, inner) around ``axis`` (None: flattened)."""
    size = int(np.prod(shape))
    if axis is None:
        return 1, size, 1
    axis %= len(shape)
    outer, inner = int(np.prod(shape[:axis])), int(np.prod(shape[axis + 1:]))
    return outer, shape[axis], inner


def _check_range(op, indices, axis_len):
    low, high = (int(v) for v in (indices.min(), indices.max())) if indices.size else (0, 0)
    if low < -axis_len or high >= axis_len:
        raise IndexError(f"{op}: index {low if low < -axis_len else high} is out of range for an axis of "
                         f"size {axis_len}.")


def take_forward(x, indices, axis=None):
    """``np.take(x, indices, axis)``; negative indices count from the end."""
    outer, axis_len, inner = _take_layout(x.shape, axis)
    _check_range("take", indices, axis_len)
    if not backend.current().runs_kernels or x.dtype not in precision.FLOATS:
        xp = backend.current().xp
        return xp.ascontiguousarray(xp.take(x, indices, axis=axis))
    x, = E._kernel_inputs("take_forward", [x], precision.FLOATS)
    idx, = launch.inputs("take_forward", indices.astype(np.int32).reshape(-1), dtype=np.int32)
    out_shape = (tuple(indices.shape) if axis is None else
                 tuple(x.shape[:axis % x.ndim]) + tuple(indices.shape) + tuple(x.shape[axis % x.ndim + 1:]))
    out = launch.empty(out_shape, x.dtype)
    n = launch.i32(out.size, "take_forward: elements")
    if n:
        launch.run(_FILE, "take_forward", launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS,
                   x, idx, out, n, axis_len, inner, max(idx.size, 1))
    return out


def take_backward(dy, indices, shape, axis=None):
    """The gradient of ``take_forward`` for an x of ``shape``: dy added back at each index, the
    shares of a repeated index in ascending position (deterministic on every backend)."""
    outer, axis_len, inner = _take_layout(shape, axis)
    if not backend.current().runs_kernels or dy.dtype not in precision.FLOATS:
        dx = np.zeros((outer, axis_len, inner), dtype=precision.widen(dy).dtype)   # 16-bit: float32 sums
        np.add.at(dx, (slice(None), indices.reshape(-1)), precision.widen(dy).reshape(outer, indices.size, inner))
        return precision.narrow(dx.reshape(shape), dy.dtype)
    dy, = E._kernel_inputs("take_backward", [dy], precision.FLOATS)
    order, starts = _positions_by_index(indices, axis_len)
    dx = launch.empty(shape, dy.dtype)
    n = launch.i32(dx.size, "take_backward: elements")
    if n:
        launch.run(_FILE, "take_backward", launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS,
                   dy, order, starts, dx, n, axis_len, inner, max(indices.size, 1))
    return dx


def _positions_by_index(indices, axis_len):
    """(order, starts): the positions j of ``indices`` sorted by the index they take (stable, so
    ascending j within one index), and per index k where its run starts (axis_len + 1 int32s).
    The bookkeeping of a scatter, done once per backward with the backend's array module."""
    xp = backend.current().xp
    flat = indices.reshape(-1).astype(np.int32)
    flat = xp.where(flat < 0, flat + axis_len, flat)
    order = xp.argsort(flat, kind="stable")    # CuPy's argsort is always stable and takes the word
    counts = xp.bincount(flat, minlength=axis_len) if flat.size else xp.zeros(axis_len, dtype=np.int64)
    starts = xp.concatenate([xp.zeros(1, dtype=np.int64), xp.cumsum(counts)])
    return (launch.array(order.astype(np.int32), np.int32),
            launch.array(starts.astype(np.int32), np.int32))
