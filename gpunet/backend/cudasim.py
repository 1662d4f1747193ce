"""The cudasim backend: NumPy arrays, and the real ``kernels/*.cu`` compiled for the CPU.

The launch API, the same on the ``cuda`` backend::

    be = gpunet.backend.current()            # be.runs_kernels is True
    y = be.empty((n,), np.float32)
    be.launch("elementwise.cu", "add_forward", grid=blocks, block=256,
              args=[a, b, y, np.int32(n)])

``grid`` and ``block`` are ints or 1-3 tuples. ``args`` follow the kernel's C signature
(see ``kernel_source``): C-contiguous arrays for pointers, NumPy scalars for scalars, checked
before anything runs. Arrays are passed by pointer; the kernel's writes land in them.

How a launch runs here (``cudasim_runtime.h`` has the details): blocks one after another;
inside a block one CUDA thread at a time, each on its own stack, switching only at
``__syncthreads`` and warp operations; even blocks visit their threads in ascending order,
odd blocks in descending order, so a missing barrier gives a wrong answer on every run. A
barrier that not all threads reach raises a ``RuntimeError`` describing who waits where.

Every array argument is copied into a buffer with a guard region on each side (a NaN
pattern, so out-of-bounds reads of floats poison results), and the guards are checked after
the kernel: a write outside an array raises ``IndexError`` naming the kernel, the argument
and the element offset. Arrays from ``empty()`` are filled with NaN (floats) or a large
pattern (ints), so an output element a kernel forgets to write shows in the results.

Settings (attributes of the backend, or environment variables when it is created):

* ``thread_order`` (``GPUNET_CUDASIM_ORDER``): "alternate" (default), "ascending", "descending".
* ``contexts`` (``GPUNET_CUDASIM_CONTEXTS``): "threads" (default; one OS thread per CUDA
  thread of a block, a pool reused across blocks) or "fibers" (ucontext fibers on the calling
  thread: the same schedule, about ten times cheaper per switch at barriers).
* ``guard_bytes``: size of each guard region (default 4096).
* ``misalign`` (``GPUNET_CUDASIM_MISALIGN``): bytes (a multiple of 4, below 256) added to
  every array's address, which is otherwise 256-byte aligned like cudaMalloc's. With 4, a
  16-byte vector load or cp.async of an array's first element is misaligned: the kernel must
  notice and take its slower path (the emulated cp.async and ldmatrix fail the launch on a
  misaligned address, as the GPU faults).
"""
import ctypes
import os
import time

import numpy as np

from . import cudasim_build, graphs, hooks, kernel_source, streams
from .cudasim_build import compiler_available

__all__ = ["CudasimBackend", "DeviceArray", "compiler_available"]

_ORDERS = {"alternate": 0, "ascending": 1, "descending": 2}
_CONTEXTS = {"threads": 0, "fibers": 1}
_POISON_WORD = 0x7FBADBAD       # a float32 NaN; as int32 a large positive number
_ALIGN = 256                    # cudaMalloc's alignment
_runtime = None
_libraries = {}


def _load_runtime():
    global _runtime
    if _runtime is None:
        lib = ctypes.CDLL(str(cudasim_build.build_runtime()))
        lib.gpunet_cudasim_launch.restype = ctypes.c_int
        lib.gpunet_cudasim_launch.argtypes = [ctypes.c_void_p] * 5 + [
            ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.gpunet_cudasim_switches.restype = ctypes.c_ulonglong
        _runtime = lib
    return _runtime


class _KernelLibrary:
    """One built .cu file: its entry points and its ``gpunet_cudasim_current`` slot."""

    def __init__(self, source):
        self.lib = ctypes.CDLL(str(cudasim_build.build_kernels(source)))
        abi = ctypes.c_int.in_dll(self.lib, "gpunet_cudasim_abi").value
        expected = _load_runtime().gpunet_cudasim_runtime_abi()
        if abi != expected:
            raise RuntimeError(f"cudasim: {source.path.name} was built against header ABI {abi}, "
                               f"the runtime has {expected}; clear {cudasim_build.cache_dir()}.")
        self.slot = ctypes.addressof(ctypes.c_void_p.in_dll(self.lib, "gpunet_cudasim_current"))
        self.entries = {name: ctypes.cast(self.lib[f"gpunet_cudasim_entry_{kernel_source.entry_symbol(name)}"], ctypes.c_void_p).value
                        for name in source.kernels}


def _library(source):
    key = (source.path, source.digest)
    if key not in _libraries:
        _libraries[key] = _KernelLibrary(source)
    return _libraries[key]


def switch_count():
    """Context switches the runtime has made in this process (a cost measure for benchmarks)."""
    return int(_load_runtime().gpunet_cudasim_switches())


class DeviceArray(np.ndarray):
    """cudasim's device memory: a NumPy array whose host reads go through the backend's transfer
    points (``hooks.device_to_host``), as a CuPy array's do: ``float()``, ``int()``, ``bool()``,
    ``.item()``, ``.tolist()`` of it are device-to-host reads that strict-sync mode refuses inside
    a step and the profiler counts. NumPy operations on it stay "on the device" (they return
    DeviceArrays or plain arrays, as CuPy operations return CuPy arrays)."""

    def _read(self, what):
        hooks.device_to_host(self.nbytes, f"{what} of a cudasim device array of shape {self.shape}")
        return self.view(np.ndarray)

    def __float__(self):
        return self._read("float()").__float__()

    def __int__(self):
        return self._read("int()").__int__()

    def __index__(self):
        return self._read("an index").__index__()

    def __bool__(self):
        return self._read("bool()").__bool__()

    def item(self, *args):
        return self._read(".item()").item(*args)

    def tolist(self):
        return self._read(".tolist()").tolist()

    def copy(self, order="C"):
        """A device copy; while a graph is captured, recorded in it as a memcpy node (as CuPy's
        copy is captured on a GPU), so that a replay copies the contents it then finds."""
        out = super().copy(order)
        if hooks.capturing():
            from . import current
            graph = getattr(current(), "_graph", None)
            if graph is None:
                _not_while_capturing("copy()")
            graph.record_copy(self, out)
        return out

    def __setitem__(self, key, value):
        _not_while_capturing("an assignment into")   # host code here: a replay would not redo it
        super().__setitem__(key, value)

    def fill(self, value):
        _not_while_capturing("fill()")
        super().fill(value)

    def astype(self, dtype, *args, **kwargs):
        _not_while_capturing("astype()")   # a host conversion (CuPy's would be a captured kernel)
        return super().astype(dtype, *args, **kwargs)

    def __array_function__(self, func, types, args, kwargs):
        # np.where / np.stack / np.concatenate ... of device arrays are device arrays, as with CuPy.
        _not_while_capturing(func.__name__)
        return _device_result(super().__array_function__(func, types, args, kwargs))

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _not_while_capturing(f"np.{ufunc.__name__}")
        args = [i.view(np.ndarray) if isinstance(i, DeviceArray) else i for i in inputs]
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, DeviceArray) else o for o in out)
        result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:   # the caller's own arrays (``a += b`` rebinds a to what this returns)
            return out[0] if len(out) == 1 else out
        return _device_result(result)


def _not_while_capturing(what):
    """A NumPy operation on device arrays is host code here; on a GPU CuPy would launch a kernel that
    a graph could hold, but cudasim cannot record it: refuse it (the step then runs eagerly)."""
    if hooks.capturing():
        raise hooks.CaptureError(f"{what} on a cudasim device array while a graph is captured: cudasim "
                                 "records kernel launches only, so this operation would not be replayed.")


def _device_result(result):
    if type(result) is np.ndarray:
        return result.view(DeviceArray)
    if isinstance(result, (tuple, list)):
        return type(result)(_device_result(r) for r in result)
    return result


def _on_device(array):
    return array.view(DeviceArray)


class CudasimBackend:
    """NumPy arrays; kernels from ``kernels/*.cu`` built with g++ and run on CPU threads."""

    name = "cudasim"
    xp = np
    runs_kernels = True

    def __init__(self):
        cudasim_build.require_compiler()
        self.thread_order = os.environ.get("GPUNET_CUDASIM_ORDER", "alternate")
        self.contexts = os.environ.get("GPUNET_CUDASIM_CONTEXTS", "threads")
        self.guard_bytes = 4096
        self._uploader = None
        self.misalign = int(os.environ.get("GPUNET_CUDASIM_MISALIGN", "0"))
        self._checked = kernel_source.LaunchChecks((np.ndarray, DeviceArray), "numpy.ndarray")
        self._graph, self._replaying = None, False   # the graph being captured; a replay running

    def capture(self):
        """``with be.capture() as graph:`` record the block's launches (not run); ``graph.replay()``
        runs them (see ``backend.graphs``)."""
        return graphs.sim_capture(self)

    def asarray(self, a, dtype=np.float32):
        if not isinstance(a, DeviceArray):
            hooks.host_to_device(np.asarray(a).size * np.dtype(dtype).itemsize, True)
        return _on_device(np.asarray(a, dtype=dtype, order="C"))   # 0-d stays 0-d (ascontiguousarray: 1-d)

    def to_numpy(self, a):
        if isinstance(a, DeviceArray):
            hooks.device_to_host(a.nbytes, f"to_numpy() of a device array of shape {a.shape}")
            return np.array(a.view(np.ndarray), copy=True)   # a host copy, as on the GPU
        return np.asarray(a)

    def empty(self, shape, dtype=np.float32):
        """An uninitialised-looking array: NaN for floats, 0x7FBADBAD bytes otherwise."""
        out = np.empty(shape, dtype)
        if out.dtype.kind == "f":
            out.fill(np.nan)
        else:
            out.view(np.uint8).reshape(-1)[:] = np.frombuffer(_poison(out.nbytes), np.uint8)
        return _on_device(out)

    def zeros(self, shape, dtype=np.float32):
        return _on_device(np.zeros(shape, dtype))

    def synchronize(self):
        hooks.synchronized("synchronize()")

    def upload_async(self, host, dtype=np.float32):
        """``(device array, event)``: ``host`` copied from a pinned buffer on the copy stream
        (``backend.streams``); pass the event to ``wait_events`` before a kernel reads the array."""
        if self._uploader is None:
            self._uploader = streams.Uploader(streams.SimDriver(self))
        return self._uploader.upload(host, dtype)

    def wait_events(self, events):
        """Make the compute stream wait for upload events (the host does not wait)."""
        if self._uploader is not None:
            self._uploader.wait(events)

    def sync_guard(self):
        """Nothing to enter: strict mode is enforced by DeviceArray and to_numpy themselves."""
        return None

    def launch(self, file, kernel, grid, block, args):
        """Run ``kernel`` from ``file`` over ``grid`` blocks of ``block`` threads (see the module doc)."""
        args = list(args)
        checked = self._checked.get(file, kernel, grid, block, args)
        source, signature, grid, block = checked.source, checked.signature, checked.grid, checked.block
        _check_writable(signature, args)
        if self._graph is not None:   # CUDA's capture records and does not execute
            self._graph.record(file, kernel, grid, block, args)
            return
        order, contexts = self._setting("thread_order", _ORDERS), self._setting("contexts", _CONTEXTS)
        library = _library(source)
        if self.misalign % 4 or not 0 <= self.misalign < _ALIGN:
            raise ValueError(f"cudasim misalign must be a multiple of 4 in [0, {_ALIGN}); received {self.misalign!r}.")
        guarded = _GuardedArgs(signature, args, self.guard_bytes, self.misalign)
        error = ctypes.create_string_buffer(4096)
        started = time.perf_counter() if hooks.watching() else None
        status = _load_runtime().gpunet_cudasim_launch(
            library.entries[signature.name], guarded.pointer_table(), library.slot, _dims(grid), _dims(block),
            order, contexts, signature.name.encode(), error, len(error))
        if status != 0:
            raise RuntimeError(f"cudasim ({source.path.name}): {error.value.decode(errors='replace')}")
        guarded.check(signature.name, source.path.name)
        guarded.copy_back()
        if started is not None and not self._replaying:   # a replay reports itself, as one launch
            seconds = time.perf_counter() - started
            hooks.launched(source, signature, grid, block, args, lambda: seconds)

    def _setting(self, attribute, choices):
        value = getattr(self, attribute)
        if value not in choices:
            raise ValueError(f"cudasim {attribute} must be one of {', '.join(choices)}; received {value!r}.")
        return choices[value]


def _check_writable(signature, args):
    for index, (param, value) in enumerate(zip(signature.params, args)):
        if param.pointer and not param.const and not value.flags.writeable:
            raise ValueError(f"Argument {index} '{param.name}' ({param.ctype}) of kernel '{signature.name}' "
                             "is written by the kernel (not const), but the array is read-only.")


def _dims(dims):
    return (ctypes.c_uint * 3)(*dims)


def _poison(nbytes):
    words = np.full((nbytes + 3) // 4, _POISON_WORD, np.uint32)
    return words.tobytes()[:nbytes]


class _GuardedArgs:
    """The argument table of one launch, every array copied between two guard regions.

    Arrays that share memory (the same array twice, or views of one buffer) share one guarded
    copy, so the kernel sees the aliasing it would see on a GPU.
    """

    def __init__(self, signature, args, guard, misalign=0):
        self.signature, self.args, self.guard, self.misalign = signature, args, guard, misalign
        self.pattern = np.frombuffer(_poison(guard), np.uint8)
        self.values = []        # keeps every argument value alive during the launch
        self.views = {}         # arg index -> its view inside a guarded buffer
        self.regions = []       # (buffer, start, span, [arg indices])
        arrays = [i for i, p in enumerate(signature.params) if p.pointer]
        for indices in _overlapping_groups(args, arrays):
            self._allocate(indices)

    def _allocate(self, indices):
        starts = [_address(self.args[i]) for i in indices]
        low = min(starts)
        span = max(s + self.args[i].nbytes for s, i in zip(starts, indices)) - low
        raw = np.empty(span + 2 * self.guard + 2 * _ALIGN, np.uint8)
        start = self.guard + (-(raw.ctypes.data + self.guard)) % _ALIGN + self.misalign
        raw[start - self.guard:start] = self.pattern
        raw[start + span:start + span + self.guard] = self.pattern
        for s, i in zip(starts, indices):
            array = self.args[i]
            offset = start + s - low
            view = raw[offset:offset + array.nbytes].view(array.dtype).reshape(array.shape)
            np.copyto(view, array)
            self.views[i] = (view, offset)
        self.regions.append((raw, start, span, indices))

    def pointer_table(self):
        addresses = []
        for index, (param, value) in enumerate(zip(self.signature.params, self.args)):
            if param.pointer:
                raw, offset = self._raw_for(index), self.views[index][1]
                holder = np.array(raw.ctypes.data + offset, dtype=np.uintp)
            else:
                holder = np.array(value, dtype=param.dtype)
            self.values.append(holder)
            addresses.append(holder.ctypes.data)
        table = np.array(addresses or [0], dtype=np.uintp)
        self.values.append(table)
        return table.ctypes.data

    def _raw_for(self, index):
        return next(raw for raw, _, _, indices in self.regions if index in indices)

    def check(self, kernel, file):
        for raw, start, span, indices in self.regions:
            before = np.flatnonzero(raw[start - self.guard:start] != self.pattern)
            after = np.flatnonzero(raw[start + span:start + span + self.guard] != self.pattern)
            if before.size:
                self._raise(kernel, file, indices, start, start - self.guard + int(before[0]), "before its start")
            if after.size:
                self._raise(kernel, file, indices, start, start + span + int(after[0]), "past its end")

    def _raise(self, kernel, file, indices, start, byte, side):
        if side == "before its start":   # blame the array that starts first / ends last
            index = min(indices, key=lambda i: self.views[i][1])
        else:
            index = max(indices, key=lambda i: self.views[i][1] + self.args[i].nbytes)
        array, param = self.args[index], self.signature.params[index]
        element = (byte - self.views[index][1]) // max(array.itemsize, 1)
        raise IndexError(
            f"cudasim: kernel '{kernel}' ({file}) wrote out of bounds of argument {index} '{param.name}' "
            f"({param.ctype}, {array.dtype.name} array of {array.size} elements, shape {array.shape}): "
            f"first at element offset {element}, {side}.")

    def copy_back(self):
        for index, (view, _) in self.views.items():
            if not self.signature.params[index].const:
                np.copyto(self.args[index], view)


def _address(array):
    return array.__array_interface__["data"][0]


def _overlapping_groups(args, indices):
    """Arg indices grouped so that arrays whose memory overlaps share a group."""
    spans = sorted((_address(args[i]), _address(args[i]) + args[i].nbytes, i) for i in indices)
    groups, end = [], None
    for low, high, i in spans:
        if groups and low < end and high > low:
            groups[-1].append(i)
            end = max(end, high)
        else:
            groups.append([i])
            end = high
    return groups
