"""The cuda backend: CuPy arrays, every kernel from ``kernels/*.cu`` compiled by NVRTC.

Same launch API as cudasim (see ``gpunet.backend.cudasim``)::

    be.launch("conv.cu", "conv2d_forward", grid=(gx, gy, gz), block=(bx, by, bz), args=[...])

Each .cu file becomes one ``cupy.RawModule`` (``nvrtc.compile_options``: C++17, the file's
folder on the include path, ``nvrtc_prelude.h`` pre-included), compiled on first use and cached per file and device; CuPy keeps its own
on-disk cache of the binaries. Arguments are checked against the kernel's C signature
before the launch (``kernel_source.check_args``), so a wrong type is a Python error, not a
silent reinterpretation of bytes on the GPU. CuPy is reached only through ``cupy_device``.
"""
import numpy as np

from . import cupy_device, kernel_source
from .nvrtc import compile_options

__all__ = ["CudaBackend"]

_modules = {}


class CudaBackend:
    """CuPy arrays on the current GPU; kernels run through CuPy's RawModule."""

    name = "cuda"
    runs_kernels = True

    def __init__(self):
        self.xp = cupy_device.cupy()   # a clear RuntimeError without CuPy or a visible GPU

    def asarray(self, a, dtype=np.float32):
        return self.xp.ascontiguousarray(self.xp.asarray(a, dtype=dtype))

    def to_numpy(self, a):
        return self.xp.asnumpy(a)

    def empty(self, shape, dtype=np.float32):
        return self.xp.empty(shape, dtype)

    def zeros(self, shape, dtype=np.float32):
        return self.xp.zeros(shape, dtype)

    def synchronize(self):
        self.xp.cuda.get_current_stream().synchronize()

    def launch(self, file, kernel, grid, block, args):
        """Run ``kernel`` from ``file`` over ``grid`` blocks of ``block`` threads."""
        source = kernel_source.load(file)
        signature = source.kernel(kernel)
        grid, block = kernel_source.launch_dims(grid, "grid"), kernel_source.launch_dims(block, "block")
        args = tuple(args)
        kernel_source.check_args(source, signature, args, lambda a: isinstance(a, self.xp.ndarray), "cupy.ndarray")
        self._function(source, kernel)(grid, block, args)

    def _function(self, source, kernel):
        cp = self.xp
        device = cp.cuda.Device()
        key = (source.path, source.digest, device.id)
        if key not in _modules:
            options = tuple(compile_options([source.path.parent]))
            _modules[key] = (cp.RawModule(code=source.text, options=options), {})
        module, functions = _modules[key]
        if kernel not in functions:
            try:
                functions[kernel] = module.get_function(kernel)   # NVRTC compiles here, once per module
            except cp.cuda.compiler.CompileException as exc:
                raise _compile_error(source, device, exc) from exc
        return functions[kernel]


def _compile_error(source, device, exc):
    log = str(exc)
    if "gpu-architecture" in log or "-arch" in log:
        return RuntimeError(
            f"NVRTC cannot compile {source.path.name} for this GPU (compute capability "
            f"{device.compute_capability}): {log.strip().splitlines()[0]}. Install the CuPy build that "
            "matches your CUDA toolkit and driver (gpunet[cuda12] or gpunet[cuda13]).")
    return RuntimeError(f"NVRTC could not compile {source.path}:\n{log.strip()}")
