"""The cuda backend: CuPy arrays, every kernel from ``kernels/*.cu`` compiled by NVRTC.

Same launch API as cudasim (see ``gpunet.backend.cudasim``)::

    be.launch("conv.cu", "conv2d_forward", grid=(gx, gy, gz), block=(bx, by, bz), args=[...])

Each .cu file becomes one ``cupy.RawModule`` (``nvrtc.compile_options``: C++17, the file's
folder on the include path, ``nvrtc_prelude.h`` pre-included, ``-ftz=true``), compiled on
first use and cached per file and device; CuPy keeps its own on-disk cache of the binaries,
keyed on the code text, which therefore carries a digest of every header (``module_code``).
Arguments are checked against the kernel's C signature and the block against its
``__launch_bounds__`` before the launch (``kernel_source.LaunchChecks``: once per argument
kinds), so a wrong type is a Python error, not a silent reinterpretation of bytes on the GPU. CuPy is reached only through
``cupy_device``. Under a profiler each launch is timed by two CUDA events (``hooks``);
``upload_async`` streams batches through pinned memory on a copy stream (``streams``).
"""
import hashlib

import numpy as np

from . import cupy_device, graphs, hooks, kernel_source, streams
from .nvrtc import PRELUDE, compile_options

__all__ = ["CudaBackend"]

_modules = {}


class CudaBackend:
    """CuPy arrays on the current GPU; kernels run through CuPy's RawModule."""

    name = "cuda"
    runs_kernels = True

    def __init__(self):
        self.xp = cupy_device.cupy()   # a clear RuntimeError without CuPy or a visible GPU
        self._uploader = None
        self._checked = kernel_source.LaunchChecks((self.xp.ndarray,), "cupy.ndarray")
        self._graph, self._graph_stream = None, None   # the graph being captured, and its stream

    def capture(self):
        """``with be.capture() as graph:`` capture the block's launches into a CUDA graph (not run);
        ``graph.replay()`` launches it (see ``backend.graphs``)."""
        return graphs.cuda_capture(self)

    def asarray(self, a, dtype=np.float32):
        if not isinstance(a, self.xp.ndarray):   # pageable host memory: CuPy copies synchronously
            hooks.host_to_device(np.asarray(a).size * np.dtype(dtype).itemsize, True)
        return self.xp.asarray(a, dtype=dtype, order="C")   # 0-d stays 0-d, as on the other backends

    def to_numpy(self, a):
        if isinstance(a, self.xp.ndarray):
            hooks.device_to_host(a.nbytes, f"to_numpy() of a device array of shape {a.shape}")
        return self.xp.asnumpy(a)

    def empty(self, shape, dtype=np.float32):
        return self.xp.empty(shape, dtype)

    def zeros(self, shape, dtype=np.float32):
        return self.xp.zeros(shape, dtype)

    def synchronize(self):
        hooks.synchronized("synchronize()")
        self.xp.cuda.get_current_stream().synchronize()

    def upload_async(self, host, dtype=np.float32):
        """``(device array, event)``: ``host`` copied from a pinned buffer on the copy stream
        (``backend.streams``); pass the event to ``wait_events`` before a kernel reads the array.
        While a graph is captured the copy is queued on the capturing stream instead (a memcpy
        node of the graph, from pinned memory the graph keeps), and the event is None."""
        if self._graph is not None:
            host = np.asarray(host)
            memory = self.xp.cuda.alloc_pinned_memory(max(host.size * np.dtype(dtype).itemsize, 1))
            staged = np.ndarray(host.shape, dtype, buffer=memory)
            np.copyto(staged, host, casting="unsafe")
            device = self.xp.empty(staged.shape, dtype)
            device.set(staged, stream=self.xp.cuda.get_current_stream())
            self._graph.kept.append(staged)
            return device, None
        if self._uploader is None:
            self._uploader = streams.Uploader(streams._CudaDriver(self))
        return self._uploader.upload(host, dtype)

    def wait_events(self, events):
        """Make the compute stream wait for upload events (the host does not wait)."""
        if self._uploader is not None:
            self._uploader.wait(events)

    def sync_guard(self):
        """What a step runs under in strict-sync mode: ``cupyx.allow_synchronize(False)``, which
        makes CuPy raise ``cupyx.DeviceSynchronized`` at every synchronising call."""
        import cupyx
        guard = getattr(cupyx, "allow_synchronize", None)   # experimental in CuPy: absent, no guard
        return guard(False) if guard is not None else None

    def launch(self, file, kernel, grid, block, args):
        """Run ``kernel`` from ``file`` over ``grid`` blocks of ``block`` threads."""
        checked = self._checked.get(file, kernel, grid, block, args)   # checks once per argument kinds
        device = self.xp.cuda.Device().id
        if checked.handle is None or checked.handle[0] != device:
            checked.handle = (device, self._function(checked.source, checked.signature.name))
        function, grid, block, args = checked.handle[1], checked.grid, checked.block, tuple(args)
        if self._graph is not None:   # captured, not run: the graph keeps the arrays alive
            self._graph.record(args)
        if not hooks.watching():
            function(grid, block, args)
            return
        start, end = self.xp.cuda.Event(), self.xp.cuda.Event()
        start.record()
        function(grid, block, args)
        end.record()
        hooks.launched(checked.source, checked.signature, grid, block, args, lambda: _elapsed(self.xp, start, end))

    def _function(self, source, kernel):
        cp = self.xp
        device = cp.cuda.Device()
        key = (source.path, source.digest, device.id)
        if key not in _modules:
            options = tuple(compile_options([source.path.parent]))
            # A templated kernel's instances (name<T>) are reached through NVRTC name expressions,
            # which instantiate them and map each to its mangled name.
            instances = [name for name, signature in source.kernels.items() if signature.template]
            named = {"name_expressions": instances} if instances else {}
            _modules[key] = (cp.RawModule(code=module_code(source, options), options=options, **named), {})
        module, functions = _modules[key]
        if kernel not in functions:
            try:
                functions[kernel] = module.get_function(kernel)   # NVRTC compiles here, once per module
            except cp.cuda.compiler.CompileException as exc:
                raise _compile_error(source, device, exc) from exc
        return functions[kernel]


def _elapsed(cp, start, end):
    """Seconds between two recorded events; waits for the second (the profiler asks after the steps)."""
    end.synchronize()
    return cp.cuda.get_elapsed_time(start, end) / 1e3


def module_code(source, options):
    """The text RawModule compiles: the .cu, then a comment with a digest of it, every local header
    it includes, the pre-included ``nvrtc_prelude.h`` and the options. CuPy keys its on-disk binary
    cache on this text, and the .cu alone does not change when only a header does: without the
    digest an upgrade that edits ``common.cuh`` would run the old binary."""
    digest = hashlib.sha256("\0".join((source.digest, PRELUDE.read_text(), *options)).encode()).hexdigest()
    return f"{source.text}\n// gpunet build digest {digest} (the .cu, its includes, nvrtc_prelude.h, options)\n"


def _compile_error(source, device, exc):
    log = str(exc)
    if "gpu-architecture" in log or "-arch" in log:
        return RuntimeError(
            f"NVRTC cannot compile {source.path.name} for this GPU (compute capability "
            f"{device.compute_capability}): {log.strip().splitlines()[0]}. Install the CuPy build that "
            "matches your CUDA toolkit and driver (gpunet[cuda12] or gpunet[cuda13]).")
    return RuntimeError(f"NVRTC could not compile {source.path}:\n{log.strip()}")
