"""Data-parallel training over MPI (numpy, cudasim) and NCCL (cuda), in Keras 3's words.

    import gpunet as gn
    gn.distribute.set_distribution(gn.distribute.DataParallel())   # before the model is made
    model = gn.Sequential([...]); model.compile(...); model.fit(x, y, batch_size=64)

    mpiexec -n 4 python train.py          # the same script on 4 ranks

Names follow ``keras.distribution`` (``DataParallel``, ``list_devices``, ``set_distribution``,
``distribution``, ``initialize``); ``gn.distribution`` is this module too. ``batch_size`` is
the *global* batch, split over the ranks as Keras's DataParallel splits it over devices, so
N ranks see the batches one rank sees and end with its weights (within float32 rounding).

What fit does under DataParallel (``gpunet/distribute/data_parallel.py``): checks that every
rank built the same model and data, broadcasts rank 0's weights and random state, gives each
rank its contiguous part of every global batch, all-gathers the gradients and adds them in
rank order (``reduction="ordered"``, bit-reproducible) or all-reduces them
(``reduction="allreduce"``), averages losses and metrics over the ranks, and lets only rank 0
print progress and run ``ModelCheckpoint`` / ``CSVLogger``. Layers and ops never see a rank.
"""
from .data_parallel import DataParallel, Replicas, local_replicas
from .mpi import DistributedError
from .statistics import cross_replica

__all__ = ["DataParallel", "DistributedError", "distribution", "set_distribution", "list_devices",
           "initialize", "scope"]

_distribution = None


def set_distribution(value):
    """Make ``value`` (a ``DataParallel``, or None for one process) the distribution of the
    models made from now on. Set it before making the model: the device, the initial weights
    and the data order are chosen per rank when the model is made and first trained."""
    global _distribution
    if value is not None and not isinstance(value, DataParallel):
        raise TypeError(f"set_distribution takes a gn.distribute.DataParallel or None; received {value!r}.")
    _distribution = value


def distribution():
    """The distribution set by ``set_distribution`` (None: a single process)."""
    return _distribution


class scope:
    """``with DataParallel().scope():`` -- Keras's form: the distribution holds inside the block."""

    def __init__(self, value):
        self.value, self.previous = value, None

    def __enter__(self):
        self.previous = distribution()
        set_distribution(self.value)
        return self.value

    def __exit__(self, *exc):
        set_distribution(self.previous)


def list_devices(device_type=None):
    """Devices this process could use, Keras-style strings: ``"gpu:0"``, ... on the cuda backend
    (every GPU this node has; rank ``local_rank`` uses one), else ``["cpu:0"]``."""
    from .. import backend
    from ..backend import cupy_device
    kind = (device_type or ("gpu" if backend.get_backend() == "cuda" else "cpu")).lower()
    if kind == "gpu":
        if not cupy_device.usable():
            return []
        return [f"gpu:{i}" for i in range(cupy_device.cupy().cuda.runtime.getDeviceCount())]
    if kind == "cpu":
        return ["cpu:0"]
    raise ValueError(f"list_devices: device_type must be 'cpu', 'gpu' or None; received {device_type!r}.")


def initialize(timeout=None):
    """Start MPI and return ``(process_id, num_processes)``; ``DataParallel()`` calls it itself.

    Keras's ``initialize(job_addresses, num_processes, process_id)`` takes the job layout as
    arguments; here the launcher (mpiexec, srun) gives it to MPI.
    """
    from .data_parallel import communicator
    world = communicator(timeout)
    return world.rank, world.size


def replicas(model, samples=None, batch_size=None, batches=None):
    """The training loop's view of the ranks for ``model``: ``local_replicas()`` in one process,
    else its distribution's, which checks and synchronises the ranks first (``DataParallel``).
    A model made under a distribution stays with it.

    Arrays: ``replicas(model, samples, batch_size)``, then ``shard(index)`` per global batch.
    A PyDataset of ``n`` batches: ``replicas(model, batches=n)``, then the loop runs over
    ``batch_indices(n, order)`` (this rank's batch per step, None: idle) and calls
    ``start_batch(len(batch))`` before each step.
    """
    chosen = getattr(model, "_made_under", None) or _distribution
    if chosen is None:
        return local_replicas()
    return chosen.replicas_for(model, samples, batch_size, batches)
