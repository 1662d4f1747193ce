"""Random draws from dropout's counter-based hash: uniform and normal, with no random state.

* ``uniform(shape, lo, hi, seed, dtype)``: ``lo + (hi - lo) * u``, ``u = (hash(seed, i) >> 8) * 2**-24``.
* ``normal(shape, mean, stddev, seed, dtype)``: Box-Muller over ``hash(seed, 2i)`` and ``hash(seed, 2i + 1)``.

``seed`` is an int, or dropout's ``(base, calls)`` pair (a seeded layer's device call count, read
and advanced by the kernel, so that a replayed CUDA graph draws anew). On a kernel backend they
run ``random_uniform`` / ``random_normal`` of ``kernels/dropout.cu``; the NumPy reference below
computes the same float32 arithmetic (uniform draws are bit-identical; normal draws go through
logf / cosf / sqrtf, a few float32 ulps from NumPy's). 16-bit outputs are rounded once.
"""
import numpy as np

from .. import backend
from . import launch, precision
from .dropout import _MAX_BLOCKS, _host_seed, _kernel_seed, mix32

_FILE = "dropout.cu"
_TWO_PI = np.float32(6.2831853)
_UNIT = np.float32(2.0 ** -24)


def _hashes(size, seed, stride=1, offset=0):
    """hash(seed, stride * i + offset) for i < size (uint32 arithmetic, wrapping)."""
    key = mix32(np.array([int(seed) % 2 ** 32], dtype=np.uint32))
    index = np.arange(size, dtype=np.uint64).astype(np.uint32) * np.uint32(stride) + np.uint32(offset)
    return mix32(mix32(index ^ key) + key)


def _check(shape, dtype, op):
    shape = tuple(int(s) for s in shape)
    dtype = np.dtype(dtype)
    if dtype not in [np.dtype(d) for d in precision.FLOATS]:
        raise ValueError(f"{op}: dtype must be float32, bfloat16 or float16; received {dtype}.")
    return shape, dtype


def uniform(shape, lo, hi, seed, dtype=np.float32):
    """An array of ``shape`` uniform in [lo, hi)."""
    shape, dtype = _check(shape, dtype, "uniform")
    lo, hi = np.float32(lo), np.float32(hi)
    if backend.current().runs_kernels:
        return _kernel("random_uniform", shape, dtype, seed, lo, hi)
    size = int(np.prod(shape))
    u = (_hashes(size, _host_seed(seed)) >> np.uint32(8)).astype(np.float32) * _UNIT
    return precision.narrow((lo + (hi - lo) * u).reshape(shape), dtype)


def normal(shape, mean, stddev, seed, dtype=np.float32):
    """An array of ``shape`` drawn from N(mean, stddev**2)."""
    shape, dtype = _check(shape, dtype, "normal")
    mean, stddev = np.float32(mean), np.float32(stddev)
    if backend.current().runs_kernels:
        return _kernel("random_normal", shape, dtype, seed, mean, stddev)
    size, seed = int(np.prod(shape)), _host_seed(seed)
    u1 = ((_hashes(size, seed, 2, 0) >> np.uint32(8)) + np.uint32(1)).astype(np.float32) * _UNIT
    u2 = (_hashes(size, seed, 2, 1) >> np.uint32(8)).astype(np.float32) * _UNIT
    z = np.sqrt(np.float32(-2.0) * np.log(u1)) * np.cos(_TWO_PI * u2)
    return precision.narrow((mean + stddev * z).reshape(shape), dtype)


def _kernel(name, shape, dtype, seed, a, b):
    out = launch.empty(shape, dtype)
    n = launch.i32(out.size, f"{name}: elements")
    if n:
        launch.run(_FILE, name, launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS,
                   out, n, *_kernel_seed(seed), launch.counters(1), a, b)
    return out
