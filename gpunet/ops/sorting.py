"""Sorting ops with Keras's names: sort, argsort, top_k (kernels/sort.cu through primitives.sort).

Each sorts the lines along one axis where they lie (the kernel strides through them: no
transposes). The gradient of the sorted values puts each dy back where its value came from
(``rank_scatter``); indices have none.
"""
import numpy as np

from ..autodiff import Tensor, as_tensor, record
from ..primitives import elementwise_nd as E
from ..primitives import precision
from ..primitives import sort as sorting
from .array import reshape

__all__ = ["sort", "argsort", "top_k"]


def _along(op, x, axis):
    """``x`` as a Tensor (flattened for ``axis=None``) and the non-negative axis to sort along."""
    t = as_tensor(x, op)
    if axis is None:
        return reshape(t, (-1,)), 0
    if t.ndim == 0:
        raise ValueError(f"{op}: a scalar has no axis {axis} to sort along.")
    return t, E.normalize_axis(op, axis, t.ndim)[0]


def _sorted(t, axis, k, descending):
    """(values Tensor with gradient, indices Tensor) of the first ``k`` of each line of ``t``."""
    values, indices = sorting.rank_sort(t.data, axis, k, descending)
    index = Tensor(indices)
    length = t.shape[axis]
    if not precision.is_float(t.dtype):
        return record("sort", values, (t,), None), index
    return record("sort", values, (t,), lambda dy, n, idx: (sorting.rank_scatter(dy, idx, axis, length),),
                  saved=(index,)), index


def sort(x, axis=-1):
    """``x`` sorted in ascending order along ``axis`` (None: flattened first), stable, NaN last.
    Same shape; the gradient goes back to each value's original place."""
    t, axis = _along("sort", x, axis)
    return _sorted(t, axis, t.shape[axis], False)[0]


def argsort(x, axis=-1):
    """The int32 positions that sort ``x`` along ``axis`` (None: flattened), stable, NaN last."""
    t, axis = _along("argsort", x, axis)
    return Tensor(sorting.rank_sort(t.data, axis, t.shape[axis], False)[1])


def top_k(x, k, sorted=True):
    """``(values, indices)``: the ``k`` largest entries of each last-axis line, largest first (ties:
    the lower index first; NaN counts as the largest), and their int32 positions. (..., n) ->
    (..., k) twice. ``sorted=False`` returns them sorted too, which Keras allows."""
    t = as_tensor(x, "top_k")
    if t.ndim == 0:
        raise ValueError("top_k: the input must have at least one axis; received a scalar.")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= t.shape[-1]:
        raise ValueError(f"top_k: k must be an int in [0, {t.shape[-1]}] (the last axis of shape {t.shape}); "
                         f"received k={k!r}.")
    return _sorted(t, t.ndim - 1, int(k), True)
