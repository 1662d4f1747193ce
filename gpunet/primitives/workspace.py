"""Scratch buffers reused from call to call: im2col matrices, padded copies, GEMM scratch.

A fresh multi-megabyte temporary per call costs page faults and zeroing by the kernel, which
on the numpy backend cost more than the copy that fills it. An op asks instead for
``workspace.buffer(tag, shape, dtype)``: the same memory each time for the same tag, grown
when a larger shape comes, with undefined contents.

Rules: a buffer never leaves the op that asked for it (an op returns fresh arrays, so that
results a caller keeps are never overwritten by a later call); one tag per live buffer within
an op, and an op that calls another op while holding a buffer uses a tag the callee does not.
Buffers are per Python thread, so two threads training two models never share one.
"""
import threading

import numpy as np

__all__ = ["buffer", "clear", "nbytes"]

_local = threading.local()


def _buffers():
    if not hasattr(_local, "buffers"):
        _local.buffers = {}
    return _local.buffers


def buffer(tag, shape, dtype):
    """A C-contiguous scratch array of ``shape`` and ``dtype`` owned by ``tag`` (contents undefined)."""
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    size = 1
    for s in shape:
        size *= s
    buffers = _buffers()
    flat = buffers.get((tag, dtype))
    if flat is None or flat.size < size:
        flat = np.empty(max(size, 1), dtype=dtype)
        buffers[(tag, dtype)] = flat
    return flat[:size].reshape(shape)


def clear():
    """Free this thread's buffers (they are made again on the next use)."""
    _buffers().clear()


def nbytes():
    """Bytes held by this thread's buffers."""
    return sum(flat.nbytes for flat in _buffers().values())
