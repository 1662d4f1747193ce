"""The backend's launch and transfer points, and the two things that watch them.

Every kernel launch, every host-to-device upload and every device-to-host read of the kernel
backends passes through one of the functions here; so does the training loop's marking of a
step (``step("train")`` around one batch's work). Two watchers use them, and nothing else in
gpunet asks whether they are on:

* strict-sync mode, ``with gpunet.backend.strict_sync():``, the counterpart of CuPy's
  ``cupyx.allow_synchronize(False)``: a device-to-host read while a step runs raises
  :class:`SyncError` (on cudasim: ``to_numpy``, ``float()`` / ``int()`` / ``bool()`` /
  ``.item()`` / ``.tolist()`` of a device array; on cuda the step itself runs under
  ``cupyx.allow_synchronize(False)``, which CuPy enforces on every synchronising call). Reads
  between steps (the end of an epoch, a progress-bar refresh) are allowed.
* observers such as ``gpunet.profiler.profile()``: told of each launch (with its wall time or
  CUDA events), each transfer (direction, bytes, whether the host waited) and each step.

With no observer and strict mode off, each hook costs one attribute test.
"""
import contextlib

__all__ = ["SyncError", "CaptureError", "strict_sync", "strict", "step", "in_step", "device_to_host",
           "host_to_device", "synchronized", "watching", "observe", "launched", "capturing", "capture_mark",
           "graph_launched"]


class SyncError(RuntimeError):
    """A device-to-host read (a host-device synchronisation) inside a step under ``strict_sync()``."""


class CaptureError(RuntimeError):
    """Something a CUDA graph cannot hold happened while one was captured: the host read the device
    or waited for it (on a GPU the capture fails the same way)."""


class _State:
    strict = 0            # nesting depth of strict_sync()
    step = None           # kind of the step running ("train", "test", "predict"), or None
    observers = ()        # objects with launch / transfer / step_begin / step_end methods
    capturing = False     # a CUDA graph is being captured (backend.graphs)


_state = _State()


def watching():
    """True when an observer wants to hear about launches (the profiler)."""
    return bool(_state.observers)


@contextlib.contextmanager
def strict_sync(enabled=True):
    """Raise :class:`SyncError` on any device-to-host read while a training, test or predict
    step runs (``enabled=False`` lifts it for a nested block)."""
    previous = _state.strict
    _state.strict = previous + 1 if enabled else 0
    try:
        yield
    finally:
        _state.strict = previous


def strict():
    """Whether strict-sync mode is on."""
    return _state.strict > 0


def in_step():
    """The kind of step running now ("train", "test", "predict"), or None between steps."""
    return _state.step


class step:
    """``with step("train"):`` marks one batch's work: strict mode and the profiler count per step."""

    __slots__ = ("kind", "previous", "guard")

    def __init__(self, kind):
        self.kind = kind

    def __enter__(self):
        self.previous, _state.step = _state.step, self.kind
        self.guard = None
        if _state.strict:
            from . import current
            self.guard = current().sync_guard()   # cuda: cupyx.allow_synchronize(False)
            if self.guard is not None:
                self.guard.__enter__()
        for observer in _state.observers:
            observer.step_begin(self.kind)
        return self

    def __exit__(self, *exc):
        for observer in _state.observers:
            observer.step_end(self.kind)
        if self.guard is not None:
            self.guard.__exit__(*exc)
        _state.step = self.previous
        return False


def capturing():
    """Whether a CUDA graph is being captured now."""
    return _state.capturing


@contextlib.contextmanager
def capture_mark():
    """Marks a capture (the backends' ``capture()``): reads and waits then raise CaptureError."""
    previous, _state.capturing = _state.capturing, True
    try:
        yield
    finally:
        _state.capturing = previous


def graph_launched(kernels, seconds):
    """Called after a graph replay, one host call that ran ``kernels`` launches: observers that
    know ``graph_launch`` hear it; to the others it is one launch of a pseudo-kernel."""
    for observer in _state.observers:
        observer.graph_launch(kernels, seconds)


def device_to_host(nbytes, what):
    """Called where the host reads device memory and so waits for the device (a sync)."""
    if _state.capturing:
        raise CaptureError(f"{what} reads {nbytes} bytes from the device while a CUDA graph is captured; "
                           "a captured step cannot use values on the host.")
    if _state.strict and _state.step is not None:
        raise SyncError(f"{what} reads {nbytes} bytes from the device inside a {_state.step} step, "
                        "which waits for the device; strict_sync() forbids that. Keep the value on the "
                        "device (a backend array) and read it after the step.")
    for observer in _state.observers:
        observer.transfer("d2h", nbytes, True)


def host_to_device(nbytes, synchronous):
    """Called at each upload; ``synchronous`` when the host waits for the copy (pageable memory)."""
    for observer in _state.observers:
        observer.transfer("h2d", nbytes, synchronous)


def synchronized(what):
    """Called where the host waits for the device without reading (``backend.synchronize()``)."""
    if _state.capturing:
        raise CaptureError(f"{what} waits for the device while a CUDA graph is captured.")
    if _state.strict and _state.step is not None:
        raise SyncError(f"{what} waits for the device inside a {_state.step} step; strict_sync() forbids that.")
    for observer in _state.observers:
        observer.transfer("sync", 0, True)


@contextlib.contextmanager
def observe(observer):
    """Attach ``observer`` for the block (the profiler's ``profile()`` does this)."""
    _state.observers = (*_state.observers, observer)
    try:
        yield observer
    finally:
        _state.observers = tuple(o for o in _state.observers if o is not observer)


def launched(source, signature, grid, block, args, seconds):
    """Called after a launch while an observer watches; ``seconds()`` gives its duration (a wall
    time on cudasim, CUDA events on cuda: call it only after the device has finished)."""
    for observer in _state.observers:
        observer.launch(source, signature, grid, block, args, seconds)
