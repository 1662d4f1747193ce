"""Sorting along one axis (kernels/sort.cu), NumPy reference beside.

    values, indices = sort.rank_sort(x, axis, k, descending)   x (.., L, ..) -> (.., k, ..) of x's dtype, int32
    dx = sort.rank_scatter(dy, indices, axis, length)          dy, indices (.., k, ..) -> dx (.., length, ..)

Stable: equal values keep their order. Ascending puts NaN last (NumPy's sort), descending first.
``rank_scatter`` is the gradient of taking ``values``: each dy goes back to the position it was
taken from, zeros elsewhere (the indices of a line are distinct: no sums, no atomics).
"""
import numpy as np

from .. import backend
from . import elementwise_nd as E
from . import launch, precision

__all__ = ["rank_sort", "rank_scatter"]

_FILE = "sort.cu"


def _order(x, axis, descending):
    """Stable positions that sort each line of ``x`` (a float array) along ``axis``."""
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")
    # lexsort's last key is the primary one: NaN first, then larger values first; ties keep position
    moved = np.moveaxis(x, axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    rows = [np.lexsort((-row, ~np.isnan(row))) for row in flat]
    return np.moveaxis(np.array(rows, dtype=np.int64).reshape(moved.shape), -1, axis)


def _layout(shape, axis):
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    return outer, int(shape[axis]), int(np.prod(shape[axis + 1:], dtype=np.int64))


def rank_sort(x, axis, k, descending=False):
    """The first ``k`` of each line of ``x`` along ``axis`` in order, and their positions (int32)."""
    outer, length, inner = _layout(x.shape, axis)
    out_shape = (*x.shape[:axis], int(k), *x.shape[axis + 1:])
    if backend.current().runs_kernels:
        x, = E._kernel_inputs("rank_sort", [x], precision.FLOATS)
        values, indices = launch.empty(out_shape, x.dtype), launch.empty(out_shape, np.int32)
        n = launch.i32(x.size, "rank_sort: elements")
        if n and k:
            launch.run(_FILE, "rank_sort", launch.blocks_for(n, cap=2048), launch.THREADS, x, values, indices,
                       outer * inner, length, inner, int(k), int(bool(descending)))
        return values, indices
    order = np.take(_order(precision.widen(x), axis, descending), np.arange(int(k)), axis=axis)
    return np.ascontiguousarray(np.take_along_axis(x, order, axis=axis)), order.astype(np.int32)


def rank_scatter(dy, indices, axis, length):
    """Zeros of dy's shape with ``axis`` of size ``length``, each ``dy`` element put at the
    position ``indices`` names along ``axis``."""
    shape = (*dy.shape[:axis], int(length), *dy.shape[axis + 1:])
    if backend.current().runs_kernels:
        dy, = E._kernel_inputs("rank_scatter", [dy], precision.FLOATS)
        dx = launch.zeros(shape, dy.dtype)
        outer, k, inner = _layout(dy.shape, axis)
        n = launch.i32(dy.size, "rank_scatter: elements")
        launch.i32(int(np.prod(shape, dtype=np.int64)), "rank_scatter: elements")
        if n:
            launch.run(_FILE, "rank_scatter", launch.blocks_for(n, cap=2048), launch.THREADS, dy,
                       launch.array(indices, np.int32), dx, outer * inner, int(length), inner, k)
        return dx
    dx = np.zeros(shape, dy.dtype)
    np.put_along_axis(dx, indices.astype(np.int64), dy, axis=axis)
    return dx
