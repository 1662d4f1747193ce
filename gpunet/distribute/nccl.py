"""The one module that reaches NCCL (``cupy.cuda.nccl``; CuPy itself comes from ``cupy_device``).

On the cuda backend each rank drives one GPU (``use_device``: local rank -> device). The
NCCL communicator is bootstrapped over MPI: rank 0 draws the unique id, MPI broadcasts it,
every rank joins with ``NcclCommunicator(size, id, rank)``.

``CudaStreams`` runs each gradient bucket's collective on a side stream that first waits for
an event recorded on the compute stream (the bucket's gradients are then written), so NCCL
moves bucket k while the compute stream runs the backward of the layers before it. ``join``
makes the compute stream wait for the side stream (a GPU-side wait, the host does not
block); the host checks the *previous* step's completion event with the collective timeout,
by then long done in a healthy run, and aborts the NCCL communicator when it times out or
another rank failed, so a dead peer cannot hang the GPU forever.
"""
import importlib

from ..backend import cupy_device
from .mpi import DistributedError

_collective = None


def _nccl():
    cupy_device.cupy()   # a clear error without CuPy or a GPU
    try:
        module = importlib.import_module("cupy.cuda.nccl")
    except ImportError as exc:
        raise RuntimeError(f"DataParallel on the cuda backend needs NCCL: pip install nvidia-nccl-cu12 "
                           f"(or -cu13) beside CuPy; importing cupy.cuda.nccl failed: {exc}") from exc
    if not getattr(module, "available", True):
        raise RuntimeError("DataParallel on the cuda backend needs NCCL, which this CuPy cannot load: "
                           "pip install nvidia-nccl-cu12 (or -cu13).")
    return module


def use_device(local_rank, devices=None):
    """Make this rank's GPU current: ``devices[local_rank]`` ("gpu:2" or 2), else
    ``local_rank % GPUs on this node``."""
    cp = cupy_device.cupy()
    count = cp.cuda.runtime.getDeviceCount()
    if devices is None:
        index = local_rank % count
    else:
        if local_rank >= len(devices):
            raise ValueError(f"DataParallel(devices={devices!r}) lists {len(devices)} devices; this node "
                             f"runs local rank {local_rank}, which needs one of its own.")
        index = int(str(devices[local_rank]).rsplit(":", 1)[-1])
    if not 0 <= index < count:
        raise ValueError(f"DataParallel: local rank {local_rank} was given GPU {index}; this node has {count}.")
    cp.cuda.Device(index).use()


class NcclCollective:
    """``all_gather`` / ``all_reduce`` of CuPy buffers on the current stream, over NCCL."""

    def __init__(self, world):
        self.nccl, self.cp, self.size = _nccl(), cupy_device.cupy(), world.size
        unique_id = self.nccl.get_unique_id() if world.rank == 0 else None
        unique_id = world.broadcast_object(unique_id, "NCCL unique id broadcast")
        self.comm = self.nccl.NcclCommunicator(world.size, tuple(unique_id), world.rank)

    def _dtype(self, buf):
        kinds = {"float32": self.nccl.NCCL_FLOAT32, "float64": self.nccl.NCCL_FLOAT64}
        if buf.dtype.name not in kinds:
            raise TypeError(f"NCCL gradient buckets hold float32 or float64; received {buf.dtype}.")
        return kinds[buf.dtype.name]

    def all_gather(self, buf):
        out = self.cp.empty((self.size, buf.size), dtype=buf.dtype)
        self.comm.allGather(buf.data.ptr, out.data.ptr, buf.size, self._dtype(buf),
                            self.cp.cuda.get_current_stream().ptr)
        return out

    def all_reduce(self, buf):
        out = self.cp.empty_like(buf)
        self.comm.allReduce(buf.data.ptr, out.data.ptr, buf.size, self._dtype(buf), self.nccl.NCCL_SUM,
                            self.cp.cuda.get_current_stream().ptr)
        return out

    def abort(self):
        self.comm.abort()


class CudaStreams:
    """Collectives on a side stream, overlapped with the compute stream (see the module doc)."""

    def __init__(self, world, collective):
        self.cp, self.world, self.collective = cupy_device.cupy(), world, collective
        self.side = self.cp.cuda.Stream(non_blocking=True)
        self.previous = None   # the last step's "all collectives done" event

    def on_side(self, fn):
        ready = self.cp.cuda.Event(disable_timing=True)
        ready.record(self.cp.cuda.get_current_stream())   # the bucket's gradients are written
        self.side.wait_event(ready)
        with self.side:
            return fn()

    def join(self, what):
        done = self.cp.cuda.Event(disable_timing=True)
        done.record(self.side)
        self.cp.cuda.get_current_stream().wait_event(done)
        previous, self.previous = self.previous, done
        if previous is not None:
            try:
                self.world.poll(lambda: previous.done, what)
            except DistributedError:
                self.collective.abort()   # NCCL kernels waiting for a dead peer would never return
                raise


def transport(world):
    """(collective, streams) for the cuda backend; the communicator is made once per process."""
    global _collective
    if _collective is None:
        _collective = NcclCollective(world)
    return _collective, CudaStreams(world, _collective)
