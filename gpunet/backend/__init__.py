"""The active backend: which array module holds tensors and who runs the kernels.

Three backends share one op layer (``gpunet/primitives``):

* ``numpy``   - NumPy arrays, vectorised NumPy reference code; runs anywhere.
* ``cuda``    - CuPy arrays, every op a kernel from ``kernels/*.cu`` (needs a GPU).
* ``cudasim`` - NumPy arrays, the same ``kernels/*.cu`` compiled for the CPU, each block's
  threads run as real threads. This is how the kernels are tested without a GPU.

Choose with ``gpunet.set_backend(name)`` or the ``GPUNET_BACKEND`` environment variable.
Without either, gpunet takes ``cuda`` when CuPy sees a GPU and ``numpy`` otherwise, and
says which in one line on stderr.
"""
import contextlib
import os
import sys

import numpy as np

from .hooks import SyncError, in_step, step, strict_sync

NAMES = ("numpy", "cuda", "cudasim")


class NumpyBackend:
    """Host arrays, NumPy reference code; no kernels."""

    name = "numpy"
    xp = np
    runs_kernels = False

    def asarray(self, a, dtype=np.float32):
        return np.asarray(a, dtype=dtype, order="C")   # (ascontiguousarray would make a 0-d array 1-d)

    def to_numpy(self, a):
        return np.asarray(a)

    def empty(self, shape, dtype=np.float32):
        return np.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype=np.float32):
        return np.zeros(shape, dtype=dtype)

    def synchronize(self):
        pass

    def sync_guard(self):
        return None   # host memory only: there is nothing to wait for

    def upload_async(self, host, dtype=np.float32):
        """``(array, event)``: ``host`` as a backend array; on the kernel backends the copy is queued
        on a copy stream (see ``backend.streams``); here there is nothing to copy, the event is None."""
        return np.ascontiguousarray(host, dtype=dtype), None

    def wait_events(self, events):
        """Make the compute stream wait for upload events (no host wait); nothing to wait for here."""


_active = None


def _make(name):
    if name == "numpy":
        return NumpyBackend()
    if name == "cuda":
        from .cuda import CudaBackend
        return CudaBackend()
    if name == "cudasim":
        from .cudasim import CudasimBackend
        return CudasimBackend()
    if name == "noop":   # measurement only: see noop.py
        from .noop import NoopBackend
        return NoopBackend()
    raise ValueError(f"Unknown backend {name!r}; expected one of {', '.join(NAMES)}.")


def _default():
    requested = os.environ.get("GPUNET_BACKEND")
    if requested:
        return _make(requested.strip().lower())
    from . import cupy_device
    if cupy_device.usable():
        backend = _make("cuda")
        print("gpunet: using the cuda backend (GPU found).", file=sys.stderr)
    else:
        backend = NumpyBackend()
        print(f"gpunet: using the numpy backend ({cupy_device.why_unusable()}).", file=sys.stderr)
    return backend


def current():
    """The active backend object (chosen on first use)."""
    global _active
    if _active is None:
        _active = _default()
    return _active


def set_backend(name):
    """Switch the active backend: ``"numpy"``, ``"cuda"`` or ``"cudasim"``.

    Layers built under one backend keep their arrays; build models after switching.
    """
    global _active
    _active = _make(str(name).strip().lower())
    return _active


def get_backend():
    """Name of the active backend."""
    return current().name


@contextlib.contextmanager
def use(name):
    """Run a block under another backend, then restore the previous one."""
    global _active
    previous = _active
    set_backend(name)
    try:
        yield _active
    finally:
        _active = previous


def xp():
    """The array module of the active backend (numpy or cupy)."""
    return current().xp


def available():
    """Names of the backends that can run on this machine."""
    from . import cupy_device
    from .cudasim import compiler_available
    names = ["numpy"]
    if compiler_available():
        names.append("cudasim")
    if cupy_device.usable():
        names.append("cuda")
    return names
