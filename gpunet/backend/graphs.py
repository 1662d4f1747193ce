"""CUDA graphs: capture a sequence of launches once, replay it with one host call.

    with be.capture() as graph:      # the launches of the block are recorded, not run
        ...                          # (as CUDA's stream capture: nothing executes)
    graph.replay()                   # runs them all, in order, on the arrays they were given

What a graph holds is what CUDA's holds: each launch's kernel, grid, block and arguments, the
arrays by address (here: the array objects, kept alive by the graph, so that their memory is
never handed to anyone else) and the scalars by value. A replay therefore reads the arrays'
contents at replay time and the scalars as they were at capture: a number that must change from
step to step has to live in device memory (the optimizer's step state, Dropout's call count).
While a capture runs, a device-to-host read or a wait for the device raises
``hooks.CaptureError``: on a GPU such a capture fails.

* cudasim (``SimGraph``): ``launch`` appends to the graph instead of running; ``replay`` runs
  the list through the same launch path (argument checks, guard regions, thread schedules).
* cuda (``CudaGraph``): ``cupy.cuda.Graph`` from ``Stream.begin_capture`` / ``end_capture`` on a
  non-default stream; a replay waits for the work queued before it on the current stream and
  makes the current stream wait for it, so eager work before and after stays ordered. Uploads
  during capture (a new address table) are queued on the capturing stream from pinned memory
  the graph keeps (a memcpy node), not on the copy stream.

Each replay is reported to observers as one launch (``hooks.graph_launched``): the profiler
counts it as one host call and lists the kernels it ran.
"""
import contextlib
import time

import numpy as np

from . import hooks

__all__ = ["SimGraph", "CudaGraph", "sim_capture", "cuda_capture"]


class SimGraph:
    """cudasim's graph: the recorded launches ``(file, kernel, grid, block, args)``."""

    def __init__(self, backend):
        self.backend, self.launches = backend, []

    def record(self, file, kernel, grid, block, args):
        self.launches.append((file, kernel, grid, block, list(args)))

    def record_copy(self, source, target):
        """A device-to-device copy (CuPy's ``copy()`` inside a capture is a memcpy node)."""
        self.launches.append((source, target))

    def replay(self):
        """Run every recorded launch (and copy) in order (one host call for the profiler)."""
        started = time.perf_counter()
        previous, self.backend._replaying = self.backend._replaying, True
        try:
            for node in self.launches:
                if len(node) == 2:   # a copy node
                    node[1].view(np.ndarray)[...] = node[0]
                    continue
                self.backend.launch(*node)
        finally:
            self.backend._replaying = previous
        seconds = time.perf_counter() - started
        hooks.graph_launched(len(self.launches), lambda: seconds)


@contextlib.contextmanager
def sim_capture(backend):
    """cudasim's ``capture()``: launches are recorded into the yielded SimGraph, not run."""
    if backend._graph is not None:
        raise RuntimeError("cudasim: a graph is already being captured; captures do not nest.")
    graph = SimGraph(backend)
    backend._graph = graph
    try:
        with hooks.capture_mark():
            yield graph
    finally:
        backend._graph = None


class CudaGraph:
    """The cuda backend's graph: a ``cupy.cuda.Graph`` and every array its launches use."""

    def __init__(self, backend, stream):
        self.backend, self.stream = backend, stream
        self.graph, self.kept, self.count = None, [], 0

    def record(self, args):
        self.kept.append(tuple(args))   # their memory must outlive the graph's replays
        self.count += 1

    def replay(self):
        cp = self.backend.xp
        current = cp.cuda.get_current_stream()
        self.stream.wait_event(current.record())   # after what was queued before (the batch copy)
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record(self.stream)
        self.graph.launch(stream=self.stream)
        end.record(self.stream)
        current.wait_event(end)                    # and before what comes after

        def seconds():   # asked by the profiler after the steps
            end.synchronize()
            return cp.cuda.get_elapsed_time(start, end) / 1e3
        hooks.graph_launched(self.count, seconds)


@contextlib.contextmanager
def cuda_capture(backend):
    """The cuda backend's ``capture()`` on its own non-blocking stream (not run on a GPU yet)."""
    cp = backend.xp
    if backend._graph is not None:
        raise RuntimeError("cuda: a graph is already being captured; captures do not nest.")
    stream = backend._graph_stream = backend._graph_stream or cp.cuda.Stream(non_blocking=True)
    graph = CudaGraph(backend, stream)
    stream.wait_event(cp.cuda.get_current_stream().record())
    with stream:
        stream.begin_capture()
        backend._graph = graph
        try:
            with hooks.capture_mark():
                yield graph
        finally:
            backend._graph = None
            graph.graph = stream.end_capture()
