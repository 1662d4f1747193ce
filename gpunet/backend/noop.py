"""The noop backend: the kernel backends' launch path with the device call replaced by nothing.

It exists to measure what gpunet's Python costs per launch (``benchmarks/host_overhead.py``)
and to count launches quickly (tests/test_launch_count.py), never to compute: arrays are NumPy
arrays, ``empty`` does not fill them and a kernel's outputs keep whatever memory held. A launch
runs everything the ``cuda`` backend runs before it hands the kernel to CuPy (the source, the
checks of grid, block and arguments, cached per argument kinds), then returns.

    with gpunet.backend.use("noop"):
        model.train_on_batch(x, y)        # every op takes its kernel branch; nothing is computed
"""
import numpy as np

from . import kernel_source

__all__ = ["NoopBackend"]


class NoopBackend:
    """NumPy arrays; ``launch`` checks its arguments as the cuda backend does, then returns."""

    name = "noop"
    xp = np
    runs_kernels = True

    def __init__(self):
        self._checked = kernel_source.LaunchChecks((np.ndarray,), "numpy.ndarray")

    def asarray(self, a, dtype=np.float32):
        return np.asarray(a, dtype=dtype, order="C")   # (ascontiguousarray would make a 0-d array 1-d)

    def to_numpy(self, a):
        return np.asarray(a)

    def empty(self, shape, dtype=np.float32):
        return np.empty(shape, dtype)

    def zeros(self, shape, dtype=np.float32):
        return np.zeros(shape, dtype)

    def synchronize(self):
        pass

    def sync_guard(self):
        return None   # nothing runs, so nothing waits

    def upload_async(self, host, dtype=np.float32):
        return np.ascontiguousarray(host, dtype=dtype), None

    def wait_events(self, events):
        """Nothing to wait for: uploads are plain copies here."""

    def launch(self, file, kernel, grid, block, args):
        """Check the launch as the cuda backend would; run nothing."""
        self._checked.get(file, kernel, grid, block, args)
