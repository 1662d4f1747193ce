"""DataParallel, and the four points at which the training loop meets the ranks.

``Replicas`` is what ``training.py`` asks, single-process or not:

    replicas = distribute.replicas(model, samples, batch_size)   # fit begins: check, broadcast
    index = replicas.shard(global_batch_index)                    # this rank's part of a batch
    grads = replicas.gradients(model)                             # after backward: reduced
    logs = replicas.reduce_logs(logs, seen)                       # means over all ranks
    replicas.is_chief                                             # rank 0 prints and writes

The single-process ``Replicas`` returns everything unchanged; ``_DataParallelReplicas`` does
the work over a ``mpi.Communicator`` and a ``buckets.BucketReducer``.
"""
import os

import numpy as np

from .. import backend, utils
from . import buckets, mpi, statistics

DEFAULT_TIMEOUT = 300.0   # seconds any collective may wait for the other ranks
_world = None


def communicator(timeout=None):
    """The process's ``mpi.Communicator`` (made on first use, with the failure excepthook)."""
    global _world
    if _world is None:
        seconds = timeout or float(os.environ.get("GPUNET_COLLECTIVE_TIMEOUT", DEFAULT_TIMEOUT))
        _world = mpi.Communicator(seconds)
        mpi.install_excepthook(_world)
    elif timeout is not None:
        _world.timeout = float(timeout)
    return _world


class Replicas:
    """One process: the training loop's questions, answered with no communication."""

    rank, size, is_chief, synchronized = 0, 1, True, False

    def shard(self, index):
        return index

    def batch_indices(self, count, order=None):
        """The batches of a ``count``-batch dataset (a PyDataset) this rank trains on, one per
        step: ``order`` (default ``range(count)``) here; see the data-parallel version."""
        return list(range(count)) if order is None else list(order)

    def start_batch(self, count):
        """A step on a batch of ``count`` samples begins (the data-parallel version tells the
        other ranks; ``shard`` does this itself for arrays)."""

    def gradients(self, model):
        return model.grads

    def reduce_logs(self, logs, seen):
        return logs

    def local_callbacks(self, callbacks):
        return callbacks


_LOCAL = Replicas()


def local_replicas():
    return _LOCAL


class DataParallel:
    """Train one model on every rank, each on its part of every global batch (Keras 3's name).

    Args:
        devices: Keras's argument; gpunet uses one device per rank, chosen by the launcher:
            the cuda backend takes GPU ``local_rank % GPUs on the node``. None, or a list
            with one entry per rank on this node (``["gpu:0", "gpu:1"]``) to pin them.
        reduction: ``"ordered"`` (all-gather, then add the ranks' gradients in rank order:
            bit-reproducible) or ``"allreduce"`` (MPI / NCCL sum: less traffic beyond 4 ranks).
        bucket_size_mb: gradients are reduced in buckets of about this size (as they are ready).
        timeout: seconds a collective waits for the other ranks before raising
            ``DistributedError`` (default 300, or ``GPUNET_COLLECTIVE_TIMEOUT``).
        threads_per_rank: numpy backend: BLAS threads of each rank (default 1: ranks on one
            machine share its cores; a rank with several threads would oversubscribe them).

    Attributes: ``process_id`` (rank), ``num_processes``, ``local_rank``, ``is_chief``.
    """

    def __init__(self, devices=None, reduction="ordered", bucket_size_mb=25, timeout=None,
                 threads_per_rank=1):
        if reduction not in ("ordered", "allreduce"):
            raise ValueError(f"DataParallel: reduction must be 'ordered' or 'allreduce'; received {reduction!r}.")
        if not (isinstance(bucket_size_mb, (int, float)) and bucket_size_mb > 0):
            raise ValueError(f"DataParallel: bucket_size_mb must be a positive number; received {bucket_size_mb!r}.")
        self.world = communicator(timeout)
        self.process_id, self.num_processes = self.world.rank, self.world.size
        self.local_rank, self.is_chief = self.world.local_rank, self.world.rank == 0
        self.reduction, self.bucket_bytes = reduction, int(bucket_size_mb * (1 << 20))
        self.devices = devices
        self._use_device(devices)
        if backend.get_backend() == "numpy" and threads_per_rank is not None:
            _limit_threads(int(threads_per_rank))

    def _use_device(self, devices):
        if backend.get_backend() != "cuda":
            return
        from . import nccl
        nccl.use_device(self.local_rank, devices)

    def scope(self):
        from . import scope
        return scope(self)

    def replicas_for(self, model, samples, batch_size, batches=None):
        """Check that every rank agrees (the model, the data), synchronise weights and random
        state from rank 0, and return this fit's ``_DataParallelReplicas``. ``samples`` and
        ``batch_size`` for arrays, ``batches`` (its length) for a PyDataset."""
        problem = None
        if getattr(model, "_made_under", None) is not self:
            problem = (f"DataParallel was set after model '{model.name}' was made; call "
                       f"gn.distribute.set_distribution(DataParallel()) before making the model, "
                       f"so that each rank makes its weights on its own device")
        elif samples is not None and samples < self.num_processes:
            problem = f"the data has {samples} samples, fewer than the {self.num_processes} ranks"
        elif batches is not None and batches < self.num_processes:
            problem = f"the dataset has {batches} batches, fewer than the {self.num_processes} ranks"
        elif batch_size is not None and batch_size < self.num_processes:
            problem = (f"batch_size={batch_size} is the global batch, split over the ranks; it must "
                       f"be at least the number of ranks ({self.num_processes})")
        weights = [(name, tuple(w.shape), str(w.dtype)) for name, w in zip(model.weight_names, model.weights)]
        signature = (samples if batches is None else batches, weights)
        _agree(self.world, problem, signature)
        _broadcast_weights(self.world, model)
        utils.set_rng_state(self.world.broadcast_object(utils.get_rng_state(), "random state"))
        return _DataParallelReplicas(self, model)


class _DataParallelReplicas(Replicas):
    """One fit's view of the ranks: shards the batches, reduces gradients and logs."""

    def __init__(self, parallel, model):
        self.world = parallel.world
        self.rank, self.size, self.is_chief = self.world.rank, self.world.size, self.world.rank == 0
        collective, streams = self._transport(parallel)
        self.reducer = buckets.BucketReducer(model, collective, streams, self.rank, self.size,
                                             ordered=parallel.reduction == "ordered",
                                             bucket_bytes=parallel.bucket_bytes)
        model._grad_ready = self.reducer.layer_done
        self.count, self.synchronized = 0, True

    def _transport(self, parallel):
        if backend.get_backend() == "cuda":
            from . import nccl
            return nccl.transport(self.world)
        return buckets.MpiCollective(self.world), buckets.HostStreams()

    def shard(self, index):
        """This rank's contiguous part of a global batch (a slice or index array); the parts
        differ in size by at most one sample, lower ranks taking the extra ones."""
        if isinstance(index, slice):
            index = np.arange(index.start or 0, index.stop)
        counts = [len(part) for part in np.array_split(np.arange(len(index)), self.size)]
        start = sum(counts[:self.rank])
        self.count = counts[self.rank]
        self.reducer.start(counts)
        return index[start:start + self.count]

    def batch_indices(self, count, order=None):
        """A PyDataset's batches, dealt out by index: step s trains rank r on batch
        ``order[s * size + r]``, so one step covers ``size`` batches (the global batch is
        ``size`` dataset batches). Every rank gets ``ceil(count / size)`` steps; where the
        batches run out a rank's entry is None: it idles that step (``start_batch(0)``)."""
        order = list(range(count)) if order is None else list(order)
        steps = -(-len(order) // self.size)
        return [order[k] if k < len(order) else None for k in range(self.rank, steps * self.size, self.size)]

    def start_batch(self, count):
        """Begin a step on this rank's batch of ``count`` samples (0: idle): the ranks exchange
        their counts, which weight their gradients (a PyDataset's batches may differ in size)."""
        counts = self.world.allgather(np.array([count], dtype=np.int64), "batch sizes")[:, 0]
        self.count = int(count)
        self.reducer.start([int(c) for c in counts])

    def gradients(self, model):
        """The global batch's gradients (every rank's, weighted by its share), on every rank."""
        if self.count == 0:
            statistics.idle_step(model)   # join the synchronized BatchNorm exchanges the others run
        return self.reducer.finish(model, empty=self.count == 0)

    def reduce_logs(self, logs, seen):
        """Every log value as its mean over all ranks' samples (weighted by ``seen``, the samples
        this rank has averaged so far): the same numbers, so the same callback decisions, everywhere."""
        keys = list(logs)
        row = np.array([seen, *[float(logs[k]) * seen for k in keys]], dtype=np.float64)
        rows = self.world.allgather(row, "log averaging")
        total = max(rows[:, 0].sum(), 1.0)
        return {k: float(rows[:, 1 + i].sum() / total) for i, k in enumerate(keys)}

    def local_callbacks(self, callbacks):
        """Callbacks marked ``chief_only`` (checkpoints, CSV logs) run on rank 0 alone."""
        return [c for c in callbacks or [] if self.is_chief or not getattr(c, "chief_only", False)]


def _agree(world, problem, signature):
    """Raise the same DistributedError on every rank when any rank has a problem or its model
    or data differ from rank 0's; name the rank and what differed."""
    entries = world.allgather_object((problem, signature), "model and data check")
    ranks_by_problem = {}
    for r, (p, _) in enumerate(entries):
        if p:
            ranks_by_problem.setdefault(p, []).append(str(r))
    if ranks_by_problem:
        raise mpi.DistributedError("; ".join(f"rank{'s' * (len(r) > 1)} {', '.join(r)}: {p}"
                                             for p, r in ranks_by_problem.items()) + ".")
    first_samples, first_weights = entries[0][1]
    for r, (_, (samples, weights)) in enumerate(entries[1:], start=1):
        if samples != first_samples:
            raise mpi.DistributedError(f"rank {r} has {samples} samples to train on, rank 0 has "
                                       f"{first_samples}; every rank must load the same data.")
        if weights != first_weights:
            raise mpi.DistributedError(f"rank {r} built a different model than rank 0: "
                                       f"{_first_difference(first_weights, weights)}.")


def _first_difference(ours, theirs):
    for k, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            return (f"weight {k} is '{b[0]}' {b[1]} {b[2]} there and '{a[0]}' {a[1]} {a[2]} on rank 0")
    return f"it has {len(theirs)} weights, rank 0's has {len(ours)}"


def _broadcast_weights(world, model):
    """Every weight (trainable and not) from rank 0, so that all ranks start alike."""
    device = backend.current()
    for w in model.weights:
        host = np.ascontiguousarray(device.to_numpy(w))
        world.broadcast(host, "initial weight broadcast")
        w[...] = device.asarray(host, dtype=w.dtype)


def _limit_threads(count):
    """BLAS and gpunet's own pool to ``count`` threads in this process."""
    from ..primitives import parallel
    parallel.set_num_threads(count)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return   # OMP_NUM_THREADS / OPENBLAS_NUM_THREADS in the launch environment do the same
    threadpool_limits(count)
