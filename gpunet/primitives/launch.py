"""What an op's kernel branch needs besides the kernel: grid sizes, outputs, arguments.

The kernel backends (cuda, cudasim) share one launch API, ``backend.current().launch(file,
kernel, grid, block, args)``; these helpers size the grid, allocate on the active backend and
turn Python numbers into the exact NumPy scalar types the kernel's C signature asks for::

    from .. import backend
    from . import launch

    def add_forward(a, b):
        be = backend.current()
        if be.runs_kernels:
            a, b = launch.array(a), launch.array(b)          # C-contiguous float32 on the backend
            out = launch.empty(a.shape)
            launch.run("elementwise.cu", "add_forward", launch.blocks_for(a.size), launch.THREADS,
                       a, b, out, a.size)                      # a.size becomes np.int32
            return out
        return a + b

Arguments are checked against the kernel's signature by the backend: a pointer takes a
C-contiguous array of exactly the C type's dtype, a scalar a NumPy scalar of exactly its type.
``pack`` converts Python ints to np.int32 (range-checked) and Python floats to np.float32 and
leaves everything else alone, so a kernel taking ``unsigned`` or ``long long`` still needs an
explicit ``np.uint32(...)`` / ``np.int64(...)``.
"""
import functools
import math

import numpy as np

from .. import backend

__all__ = ["THREADS", "TILE", "blocks_for", "grid_for", "i32", "f32", "pack", "array", "inputs",
           "channel_lanes", "empty", "zeros", "run", "launch_count", "plan", "address_table", "int_table", "float64_table",
           "placeholder", "counters"]

THREADS = 256     # threads per block of a 1-D kernel: 8 warps
TILE = 16         # side of a 2-D tile: 16 x 16 = 256 threads


def plan(function):
    """Cache ``function`` per its (hashable) arguments: an op's launch plan for one input shape.

    A plan is what a launch needs besides the arrays, computed from shapes and settings (output
    shape, grid, NumPy-typed scalar arguments) and checked once; later calls with the same shapes
    look it up. Errors are not cached: a bad shape raises on every call. Lists among the
    arguments (a padding given as lists) are taken as tuples."""
    cached = functools.lru_cache(maxsize=1024)(function)

    @functools.wraps(function)
    def planned(*args, **kwargs):
        try:
            return cached(*args, **kwargs)
        except TypeError as error:
            if "unhashable" not in str(error):
                raise
            return cached(*_frozen(args), **{k: _frozen(v) for k, v in kwargs.items()})

    planned.cache_clear = cached.cache_clear
    return planned


def _frozen(value):
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


@plan
def blocks_for(n, threads=THREADS, cap=None):
    """Blocks of ``threads`` needed to give each of ``n`` items a thread (at least 1).

    ``cap`` bounds the count for grid-stride kernels, which cover any ``n`` with fewer blocks.
    """
    n, threads = int(n), int(threads)
    if n < 0 or threads < 1:
        raise ValueError(f"blocks_for needs n >= 0 and threads >= 1; received n={n}, threads={threads}.")
    blocks = max(1, math.ceil(n / threads))
    blocks = min(blocks, int(cap)) if cap is not None else blocks
    # A thread's index, and a grid-stride loop's last step past n, must stay a 32-bit int.
    if n + blocks * threads > 2 ** 31 - 1:
        raise OverflowError(f"{n} items are too many for a kernel that indexes with 32-bit ints "
                            f"(at most {2 ** 31 - 1 - blocks * threads} with {blocks} blocks of {threads}).")
    return blocks


@plan
def grid_for(sizes, block):
    """Blocks per axis so that ``block`` tiles cover ``sizes``: grid_for((w, h), (16, 16)) -> (gx, gy)."""
    sizes, block = tuple(int(s) for s in sizes), tuple(int(b) for b in block)
    if len(sizes) != len(block) or not 1 <= len(sizes) <= 3:
        raise ValueError(f"grid_for needs 1-3 sizes and as many block sides; received {sizes} and {block}.")
    return tuple(max(1, math.ceil(s / b)) for s, b in zip(sizes, block))


def i32(value, what="value"):
    """``value`` as np.int32, refusing what does not fit (kernels index with 32-bit ints)."""
    value = int(value)
    if not -2 ** 31 <= value < 2 ** 31:
        raise OverflowError(f"{what} = {value} does not fit a kernel's 32-bit int.")
    return np.int32(value)


def f32(value):
    return np.float32(value)


def pack(*values):
    """Kernel arguments: Python ints -> np.int32, floats -> np.float32, the rest unchanged."""
    return [_convert(v) if type(v) in _PYTHON_SCALARS else v for v in values]


_PYTHON_SCALARS = frozenset((int, float, bool, np.bool_))
_converted = {}     # (type, value) -> its NumPy scalar: sizes and settings repeat every step


def _convert(value):
    key = (type(value), value)
    converted = _converted.get(key)
    if converted is None:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError("pass a flag to a kernel as an int: np.int32(1 if flag else 0).")
        converted = i32(value) if isinstance(value, int) else np.float32(value)
        if len(_converted) < 4096:   # a schedule's learning rates are new every step: bounded
            _converted[key] = converted
    return converted


def array(a, dtype=np.float32):
    """``a`` as a C-contiguous array of ``dtype`` on the active backend (no copy when it already is)."""
    return backend.current().asarray(a, dtype=dtype)


def inputs(op, *arrays, dtype=np.float32):
    """The arrays a kernel of ``op`` reads, as C-contiguous arrays on the backend (None stays None).

    ``dtype``: the dtype the kernel takes, or a tuple of those a templated kernel is instantiated
    for (``precision.FLOATS``: float32, bfloat16, float16), in which case the arrays must share one
    of them. Kernels index with 32-bit ints. Another dtype is a TypeError and more than 2**31 - 1
    elements a ValueError, each naming ``op``; the numpy backend runs every dtype.
    """
    accepted = tuple(np.dtype(d) for d in dtype) if isinstance(dtype, tuple) else (np.dtype(dtype),)
    out, chosen = [], None
    for a in arrays:
        if a is not None:
            if a.dtype not in accepted or (chosen is not None and a.dtype != chosen):
                names = " or ".join(d.name for d in accepted)
                raise TypeError(f"{op} on the {backend.current().name} backend runs {names} kernels"
                                f"{' (all inputs of one dtype)' if len(accepted) > 1 else ''}; received an "
                                f"array of dtype {a.dtype}{f' beside {chosen}' if chosen is not None else ''}. "
                                f"Cast it first (gn.ops.cast) or use the numpy backend.")
            chosen = a.dtype
            i32(a.size, f"{op}: elements of an array of shape {tuple(a.shape)}")
            a = array(a, chosen)
        out.append(a)
    return out


def channel_lanes(channels):
    """Channels one 256-thread per-channel reduction block serves side by side: a power of two,
    at most 32 (one warp wide), so its threads read consecutive channels of a pixel (coalesced)."""
    return min(32, 1 << max(int(channels) - 1, 0).bit_length())


_tables = {}   # (backend, values) -> the array on that backend: tables repeat step after step


def address_table(arrays):
    """The device addresses of ``arrays`` as a uint64 array on the backend, for kernels that take
    many tensors in one launch (``optim.cu``'s ``*_update_many``). The kernel reaches the arrays
    through it, so they must be C-contiguous and stay alive during the launch; on cudasim such
    arrays are reached directly, without the guard regions of arguments. Cached by the
    addresses: a step whose arrays sit where earlier ones did uploads nothing."""
    return _table(tuple(_address(a) for a in arrays), np.uint64)


def int_table(values):
    """``values`` (sizes) as an int32 array on the backend, cached like ``address_table``."""
    return _table(tuple(int(v) for v in values), np.int32)


def float64_table(values):
    """``values`` (settings such as an optimizer's schedule) as a float64 array on the backend,
    cached like ``address_table``: the same settings step after step upload nothing."""
    return _table(tuple(float(v) for v in values), np.float64)


def float_table(values):
    """``values`` as a float32 array on the backend, cached like ``float64_table``."""
    return _table(tuple(float(v) for v in values), np.float32)


_counters = {}   # id(backend) -> (backend, int32 zeros): split reductions' arrival counters


def counters(count):
    """At least ``count`` int32 counters, zero, kept by the backend between launches: a kernel that
    finishes a split reduction in its last block counts arrivals there and leaves them zero again.
    Launches on one stream never share them at the same time."""
    be = backend.current()
    held = _counters.get(id(be))
    if held is None or held[0] is not be or held[1].size < count:
        held = _counters[id(be)] = (be, be.zeros((max(int(count), 64),), np.int32))
    return held[1]


def placeholder():
    """A one-element float32 array for a pointer argument a kernel is told not to read."""
    be = backend.current()
    held = _placeholders.get(id(be))
    if held is None or held[0] is not be:
        held = _placeholders[id(be)] = (be, be.zeros((1,), np.float32))
    return held[1]


_placeholders = {}


def _table(values, dtype):
    """``values`` on the device, uploaded through the backend's asynchronous path (pinned memory, a
    copy stream the compute stream waits for), so that a new table never makes the host wait."""
    be = backend.current()
    key = (id(be), dtype, values)
    table = _tables.get(key)
    if table is None or table[0] is not be:
        if len(_tables) >= 256:   # gradients move between steps on some backends: bounded
            _tables.pop(next(iter(_tables)))
        array, event = be.upload_async(np.array(values, dtype), dtype)
        be.wait_events([event])
        table = _tables[key] = (be, array)
    return table[1]


def _address(array):
    data = array.data
    return data.ptr if hasattr(data, "ptr") else array.__array_interface__["data"][0]   # cupy / numpy


def empty(shape, dtype=np.float32):
    """An output array on the active backend (on cudasim filled with NaN, so unwritten elements show)."""
    return backend.current().empty(shape if type(shape) is tuple else tuple(int(s) for s in shape), dtype)


def zeros(shape, dtype=np.float32):
    """A zeroed array on the active backend, for outputs a kernel accumulates into (+=)."""
    return backend.current().zeros(tuple(int(s) for s in shape), dtype)


_launches = 0   # launches through run() in this process: what tests and benchmarks count


def launch_count():
    """How many kernels ``run`` has launched in this process (read it before and after a step)."""
    return _launches


def run(file, kernel, grid, block, *args):
    """``backend.current().launch(file, kernel, grid, block, pack(*args))``, counted."""
    global _launches
    _launches += 1
    backend.current().launch(file, kernel, grid, block, pack(*args))
