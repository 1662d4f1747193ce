"""Matrix products of ``gn.ops.matmul`` on operands of rank >= 2, forward and backward side by side.

Shapes follow NumPy's matmul: a (..., M, K) @ b (..., K, N) -> (..., M, N), the batch axes (all but
the last two) broadcast against each other.

* ``matmul_forward(a, b)``. NumPy reference: ``np.matmul`` (16-bit operands widened to float32,
  the product rounded once). Kernel backends: a 2-D ``b`` is a Dense layer's product, the batch
  axes of ``a`` folded into rows (gemm.cu's ``dense_forward``, the very kernel and bits of the 2-D
  path); otherwise one launch of ``matmul_batched_nn`` over every batch matrix (``blockIdx.z``),
  each operand read at its own batch offset, a broadcast batch axis having stride 0.
* ``matmul_backward(dy, a, b, need_a, need_b)``: ``da = dy @ b^T`` and ``db = a^T @ dy``, each
  summed over the batch axes its operand was broadcast along. A 2-D ``b``: ``dense_backward``
  (dx and dw of one Dense product); otherwise one ``matmul_batched_nt`` / ``matmul_batched_tn``
  launch each, then the sum over broadcast axes (``elementwise_nd.sum_to_shape``).

Dtypes: float32, bfloat16, float16 (float64 on numpy). The batched kernels store float32; a
16-bit result is rounded once at the end (after a broadcast operand's batch sum), as the reference.
The batched kernels run the FFMA path (float32 or 16-bit operands, float32 sums; no TF32).
"""
import numpy as np

from .. import backend
from . import cast, dense, launch, precision
from . import elementwise_nd as E

_FILE = "gemm.cu"
_BLOCK = (256, 1, 1)       # gemm.cu's THREADS
_TILE = (64, 64)           # gemm.cu's BLOCK_M, BLOCK_N
_MAX_Z = 65535             # grid axis z: larger batches launch in chunks (batch0)


def swap(a):
    """``a`` with its last two axes swapped (a C-contiguous copy)."""
    return E.transpose(a, tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2))


def batch_shape(a_shape, b_shape):
    """The broadcast batch axes of two operands, or a ValueError quoting both shapes."""
    try:
        return tuple(int(s) for s in np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2])))
    except ValueError:
        raise ValueError(f"matmul: the batch axes of shapes {tuple(a_shape)} and {tuple(b_shape)} do not "
                         "broadcast together.") from None


def matmul_forward(a, b):
    """a (..., M, K) @ b (..., K, N) -> (..., M, N) in the operands' (shared) dtype."""
    if not backend.current().runs_kernels:
        return precision.narrow(np.matmul(precision.widen(a), precision.widen(b)), a.dtype)
    if b.ndim == 2:   # a Dense product: a's batch axes are rows
        m, k = int(np.prod(a.shape[:-1])), a.shape[-1]
        return dense.dense_forward(a.reshape(m, k), b).reshape(*a.shape[:-1], b.shape[1])
    batch = batch_shape(a.shape, b.shape)
    out = _batched("matmul_batched_nn", a, b, batch, a.shape[-2], a.shape[-1], b.shape[-1])
    return _rounded(out, a.dtype)


def matmul_backward(dy, a, b, need_a=True, need_b=True):
    """``(da, db)`` of :func:`matmul_forward` for dy (..., M, N), each shaped and typed like its
    operand (None when not needed)."""
    if not backend.current().runs_kernels:
        dy32, a32, b32 = precision.widen(dy), precision.widen(a), precision.widen(b)
        da = precision.narrow(E.sum_to_shape(dy32 @ np.swapaxes(b32, -1, -2), a.shape), a.dtype) if need_a else None
        db = precision.narrow(E.sum_to_shape(np.swapaxes(a32, -1, -2) @ dy32, b.shape), b.dtype) if need_b else None
        return da, db
    if b.ndim == 2:
        m, n = int(np.prod(a.shape[:-1])), b.shape[1]
        da, db, _ = dense.dense_backward(dy.reshape(m, n), a.reshape(m, a.shape[-1]), b, need_dx=need_a,
                                         need_db=False, need_dw=need_b)
        da = None if da is None else da.reshape(a.shape)
        return da, None if db is None else _rounded(db, b.dtype)   # dense's dw is float32
    batch = batch_shape(a.shape, b.shape)
    (m, k), n = a.shape[-2:], b.shape[-1]
    da = db = None
    if need_a:
        full = _batched("matmul_batched_nt", dy, b, batch, m, n, k)
        da = _rounded(E.sum_to_shape(full, a.shape), a.dtype)
    if need_b:
        full = _batched("matmul_batched_tn", a, dy, batch, k, m, n)
        db = _rounded(E.sum_to_shape(full, b.shape), b.dtype)
    return da, db


def _rounded(out, dtype):
    """A float32 kernel result in ``dtype``: rounded once by the cast kernel when 16-bit."""
    return cast.cast(out, dtype) if precision.is_half(dtype) else out


def _batch_strides(shape, batch):
    """Element strides of a contiguous operand's batch axes read as ``batch`` (0 where it broadcasts)."""
    matrix = int(shape[-1]) * int(shape[-2])
    own = E._contiguous_strides(shape[:-2]) if len(shape) > 2 else []
    lead = len(batch) - (len(shape) - 2)
    strides = [0] * lead
    for size, stride in zip(shape[:-2], own):
        strides.append(0 if size == 1 else stride * matrix)
    return strides


@launch.plan
def _plan(kernel, a_shape, b_shape, batch, m, k, n):
    """(grid x / y as gemm.cu's rule, meta values, batch count) of one batched product."""
    count = int(np.prod(batch)) if batch else 1
    for what, size in (("batch x rows x columns", count * m * n), ("first operand", int(np.prod(a_shape))),
                       ("second operand", int(np.prod(b_shape)))):
        launch.i32(size, f"{kernel}: {what}")
    rows, cols = launch.grid_for((m, n), _TILE)
    grid = (rows, cols) if m >= n else (cols, rows)      # the longer side of C on grid axis x
    dims = list(batch) or [1]
    strides = [_batch_strides(a_shape, batch) or [0], _batch_strides(b_shape, batch) or [0]]
    return grid, np.array([*dims, *strides[0], *strides[1]], np.int32), count


_METAS = {}   # (backend, meta values) -> the meta array on that backend, uploaded once


def _meta(values):
    key = (backend.current().name, values.tobytes())
    meta = _METAS.get(key)
    if meta is None:
        meta = _METAS[key] = backend.current().asarray(values, dtype=np.int32)
    return meta


def _batched(kernel, a, b, batch, m, k, n):
    """One batched product (float32, shape batch + (m, n)), in chunks of 65,535 batch matrices."""
    a, b = launch.inputs(kernel, a, b, dtype=precision.FLOATS)
    grid, meta_values, count = _plan(kernel, tuple(a.shape), tuple(b.shape), batch, m, k, n)
    out = launch.empty(batch + (m, n), np.float32)
    if out.size == 0:
        return out
    meta = _meta(meta_values)
    ndim = len(meta_values) // 3
    for start in range(0, count, _MAX_Z):
        chunk = min(_MAX_Z, count - start)
        launch.run(_FILE, kernel, (*grid, chunk), _BLOCK, a, b, out, m, k, n, start, ndim, meta)
    return out
