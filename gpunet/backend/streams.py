"""Batches stream to the device: pinned host buffers, a copy stream, and events that order them.

    device_array, event = backend.current().upload_async(host_array, dtype)
    backend.current().wait_events([event])   # the compute stream waits for the copy; the host does not

The training loop uploads batch i+1 at the start of step i, so the copy runs on the copy stream
while batch i computes. One upload:

1. the host batch is copied into a pinned (page-locked) staging buffer, taken from a small ring
   whose previous copy has finished (else a new buffer is added: the host never waits);
2. the device array is allocated on the compute stream, and the copy stream waits for an event
   recorded there, so that memory the allocator hands back is not overwritten while kernels
   already queued still read it;
3. the copy is queued on the copy stream and an event recorded after it; the consumer makes the
   compute stream wait for that event before its kernels read the array.

The cuda backend drives this with CuPy streams and events (``_CudaDriver``). cudasim runs the
same ``Uploader`` with ``SimDriver``: in-order streams whose work runs when something waits
for it, so the copy of an upload happens only when the compute stream waits for its event - a
consumer that forgets to wait reads the NaN fill of an unwritten array, and the tests see it.
"""
import numpy as np

from . import hooks

__all__ = ["Uploader", "SimDriver", "SimEvent"]

RING = 4   # staging buffers kept; prefetching one batch ahead needs two or three


class SimEvent:
    """A point in a simulated stream: done once the work queued before it has run."""

    def __init__(self, stream, position):
        self.stream, self.position = stream, position

    @property
    def done(self):
        return self.stream.finished >= self.position


class SimStream:
    """An in-order queue of host functions, run when an event after them is waited for."""

    def __init__(self, name):
        self.name, self.queue, self.finished, self.queued = name, [], 0, 0

    def enqueue(self, work):
        self.queue.append(work)
        self.queued += 1

    def record(self):
        return SimEvent(self, self.queued)

    def run_until(self, event):
        while self.finished < event.position:
            self.queue.pop(0)()
            self.finished += 1


class SimDriver:
    """cudasim's streams: the compute stream runs at once (launches are synchronous there); the
    copy stream's work runs when the compute stream waits for it."""

    def __init__(self, backend):
        self.backend = backend
        self.compute, self.copy = SimStream("compute"), SimStream("copy")
        self.compute.record = lambda: SimEvent(self.compute, 0)   # everything queued there has run

    def pinned(self, nbytes):
        return np.empty(nbytes, np.uint8)

    def empty(self, shape, dtype):
        return self.backend.empty(shape, dtype)

    def copy_async(self, device, staged):
        self.copy.enqueue(lambda: np.copyto(device.view(np.ndarray), staged))

    def copy_waits_for(self, event):
        pass   # the compute stream has run all it was given

    def compute_waits_for(self, event):
        event.stream.run_until(event)

    def done(self, event):
        return event.done


class _CudaDriver:
    """The cuda backend's streams: CuPy's current stream computes, a non-blocking stream copies."""

    def __init__(self, backend):
        self.cp = backend.xp
        self.copy = self.cp.cuda.Stream(non_blocking=True)

    def pinned(self, nbytes):
        memory = self.cp.cuda.alloc_pinned_memory(nbytes)   # as cupyx.empty_pinned does
        return np.ndarray((nbytes,), np.uint8, buffer=memory)

    def empty(self, shape, dtype):
        return self.cp.empty(shape, dtype)   # on the current (compute) stream's memory pool

    @property
    def compute(self):
        return self.cp.cuda.get_current_stream()

    def copy_waits_for(self, event):
        self.copy.wait_event(event)

    def copy_async(self, device, staged):
        device.set(staged, stream=self.copy)   # from pinned memory: asynchronous on that stream

    def compute_waits_for(self, event):
        self.compute.wait_event(event)

    def done(self, event):
        return event.done


class Uploader:
    """``upload(host, dtype) -> (device array, event)`` over a driver's copy stream."""

    def __init__(self, driver):
        self.driver = driver
        self.ring = []   # [staging buffer, event of its last copy or None]

    def _staging(self, nbytes):
        for slot in self.ring:
            if slot[0].nbytes >= nbytes and (slot[1] is None or self.driver.done(slot[1])):
                return slot
        slot = [self.driver.pinned(max(nbytes, 1)), None]
        self.ring.append(slot)
        if len(self.ring) > RING:   # drop a buffer whose copy has finished, keeping the ring small
            finished = [i for i, s in enumerate(self.ring[:-1]) if s[1] is None or self.driver.done(s[1])]
            if finished:
                del self.ring[finished[0]]
        return slot

    def upload(self, host, dtype):
        """Queue the copy of ``host`` (a NumPy array) as ``dtype`` to a new device array."""
        host = np.asarray(host)
        dtype = np.dtype(dtype)
        nbytes = host.size * dtype.itemsize
        slot = self._staging(nbytes)
        staged = slot[0][:nbytes].view(dtype).reshape(host.shape)
        np.copyto(staged, host, casting="unsafe")
        device = self.driver.empty(host.shape, dtype)
        self.driver.copy_waits_for(self.driver.compute.record())
        self.driver.copy_async(device, staged)
        slot[1] = event = self.driver.copy.record()
        hooks.host_to_device(nbytes, False)
        return device, event

    def wait(self, events):
        """Make the compute stream wait for ``events`` (None entries are skipped)."""
        for event in events:
            if event is not None:
                self.driver.compute_waits_for(event)
