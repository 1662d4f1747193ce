"""The one module that imports mpi4py: the ranks, their collectives, and how a failure spreads.

Every collective gpunet runs is non-blocking underneath and waited on by ``_wait``, which
gives up after ``timeout`` seconds and, while it waits, listens for a *failure notice*: a
rank whose script raises sends one to every other rank (``notify_failure``, called by the
excepthook that ``install_excepthook`` sets), so a rank stuck in a collective that a dead
peer will never join raises ``DistributedError("rank 1 failed: ...")`` at once instead of
hanging. Notices travel on a duplicate of the world communicator, apart from the data.

On exit after an error every rank first prints its traceback, then waits (at most
``EXIT_GRACE`` seconds) for the others to have printed theirs, then leaves with status 1;
a rank that left at once would have mpiexec kill the rest before they said what happened.
"""
import os
import pickle
import sys
import time

import numpy as np

_NOTICE = 77          # tag of failure notices on the control communicator
EXIT_GRACE = 10.0     # seconds a failing rank waits for the others to report before exiting


class DistributedError(RuntimeError):
    """A collective failed: another rank raised, the ranks disagree, or a timeout passed."""


def _module():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise RuntimeError("gpunet.distribute needs mpi4py and an MPI library: "
                           "pip install 'gpunet[distributed]' (mpi4py and the mpich wheel); "
                           f"importing mpi4py failed: {exc}") from exc
    return MPI


def available():
    """True when mpi4py imports (an MPI library is installed); launching is another matter."""
    try:
        _module()
    except RuntimeError:
        return False
    return True


class Communicator:
    """The world's ranks over MPI: ``rank``, ``size``, ``local_rank``, timed collectives."""

    def __init__(self, timeout):
        MPI = _module()
        self._mpi = MPI
        world = MPI.COMM_WORLD
        self.comm = world.Dup()          # data collectives, apart from the user's own MPI use
        self._control = world.Dup()      # failure notices and the exit barrier
        node = world.Split_type(MPI.COMM_TYPE_SHARED)
        self.rank, self.size, self.local_rank = world.Get_rank(), world.Get_size(), node.Get_rank()
        self.local_size = node.Get_size()
        node.Free()
        self.timeout = float(timeout)
        self.failed = None               # the notice that stopped this rank, once one came

    # -- waiting --------------------------------------------------------------------------
    def _check_notices(self):
        status = self._mpi.Status()
        if self._control.Iprobe(source=self._mpi.ANY_SOURCE, tag=_NOTICE, status=status):
            message = self._control.recv(source=status.Get_source(), tag=_NOTICE)
            self.failed = message
            raise DistributedError(f"{message.rstrip('.')}; rank {self.rank} stops too.")

    def poll(self, done, what):
        """Wait until ``done()`` is true, raising on a failure notice or after ``timeout`` s.

        ``done`` is a request's ``Test`` or a CUDA event's query: anything that returns True
        once the operation has finished.
        """
        start, pause = time.monotonic(), 2e-5
        while not done():
            self._check_notices()
            if time.monotonic() - start > self.timeout:
                raise DistributedError(
                    f"rank {self.rank}: {what} did not complete within {self.timeout:g} s "
                    f"(DataParallel(timeout=...)); another rank is hung, died, or took another path.")
            time.sleep(pause)
            pause = min(pause * 2, 2e-3)   # short waits stay short; long ones cost little CPU

    def _wait(self, request, what):
        self.poll(request.Test, what)

    # -- collectives ------------------------------------------------------------------------
    def allgather(self, array, what):
        """``array`` (n,) from every rank -> (size, n), row r from rank r."""
        array = np.ascontiguousarray(array)
        out = np.empty((self.size, *array.shape), dtype=array.dtype)
        self._wait(self.comm.Iallgather(array, out), what)
        return out

    def allreduce_sum(self, array, what):
        """Elementwise sum over the ranks, in an order MPI chooses (not bit-reproducible)."""
        array = np.ascontiguousarray(array)
        out = np.empty_like(array)
        self._wait(self.comm.Iallreduce(array, out, op=self._mpi.SUM), what)
        return out

    def broadcast(self, array, what, root=0):
        """``array`` filled in place on every rank from ``root``'s."""
        self._wait(self.comm.Ibcast(array, root=root), what)
        return array

    def allgather_object(self, value, what):
        """Any picklable value from every rank -> a list, item r from rank r (small values only)."""
        data = np.frombuffer(pickle.dumps(value), dtype=np.uint8)
        sizes = self.allgather(np.array([data.size], dtype=np.int64), what)[:, 0]
        padded = np.zeros(int(sizes.max()), dtype=np.uint8)
        padded[:data.size] = data
        rows = self.allgather(padded, what)
        return [pickle.loads(rows[r, :sizes[r]].tobytes()) for r in range(self.size)]

    def broadcast_object(self, value, what, root=0):
        return self.allgather_object(value if self.rank == root else None, what)[root]

    # -- failure ------------------------------------------------------------------------------
    def notify_failure(self, message):
        """Tell every other rank that this one failed (``message`` names the rank and error)."""
        if self.failed is not None:
            return   # this rank stops because of another's notice: that rank told everyone
        self.failed = message
        for other in range(self.size):
            if other != self.rank:
                self._control.isend(message, dest=other, tag=_NOTICE)

    def exit_barrier(self, grace=EXIT_GRACE):
        """Wait up to ``grace`` s for every rank to reach its own exit (after printing its error)."""
        request = self._control.Ibarrier()
        deadline = time.monotonic() + grace
        while not request.Test() and time.monotonic() < deadline:
            time.sleep(1e-3)


def install_excepthook(communicator):
    """On an uncaught exception: notify the other ranks, print, wait for them, exit with 1.

    Exiting without MPI_Finalize is deliberate: a finalize would wait for collectives that
    a failed peer never joins.
    """
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        if communicator.failed is None:   # this rank is the first to fail: say so, tell the others
            print(f"gpunet.distribute: rank {communicator.rank} of {communicator.size} failed "
                  f"({kind.__name__}); stopping every rank.", file=sys.stderr)
            communicator.notify_failure(f"rank {communicator.rank} failed: {kind.__name__}: {value}")
        sys.stderr.flush()
        sys.stdout.flush()
        communicator.exit_barrier()
        os._exit(1)

    sys.excepthook = hook
