"""The arithmetic around data-parallel collectives: a rank-ordered weighted sum of gradients.

``weighted_row_sum(parts, weights)``: ``parts`` (rows, n) float32 -- the gradient buffers of
every rank, all-gathered, row r from rank r -- and ``weights`` (rows,), each rank's share of
the global batch; returns (n,) ``sum_r weights[r] * parts[r]`` added in rank order, r = 0
first, on every backend, so that two runs on the same ranks give the same bits (MPI's and
NCCL's own sums leave their order to the library). With one row it scales one buffer.

On a kernel backend the sum is ``kernels/collective.cu``'s ``weighted_row_sum``.
"""
import numpy as np

from .. import backend
from . import launch

__all__ = ["weighted_row_sum"]

_MAX_BLOCKS = 2048   # a grid-stride kernel: enough blocks to fill a GPU


def weighted_row_sum(parts, weights):
    """``parts`` (rows, n), ``weights`` (rows,) -> (n,) ``sum_r weights[r] * parts[r]`` in rank order."""
    if parts.ndim != 2 or np.shape(weights) != (parts.shape[0],) or parts.shape[0] < 1:
        raise ValueError(f"weighted_row_sum needs parts (rows >= 1, n) and weights (rows,); received "
                         f"shapes {tuple(parts.shape)} and {tuple(np.shape(weights))}.")
    if backend.current().runs_kernels:
        return _weighted_row_sum_kernel(parts, weights)
    weights = np.asarray(weights, dtype=parts.dtype)
    total = weights[0] * parts[0]
    for r in range(1, parts.shape[0]):
        total += weights[r] * parts[r]
    return total


def _weighted_row_sum_kernel(parts, weights):
    parts, = launch.inputs("weighted_row_sum", parts)
    weights = launch.array(np.asarray(weights, dtype=np.float32))
    rows, n = parts.shape
    launch.i32(parts.size, "weighted_row_sum: elements")
    out = launch.empty((n,))
    launch.run("collective.cu", "weighted_row_sum", launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS,
               parts, weights, out, rows, n)
    return out
