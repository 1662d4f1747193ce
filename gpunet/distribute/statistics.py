"""Batch statistics over every rank, for BatchNormalization(synchronized=True).

A synchronized layer asks ``cross_replica()``: None in one process (it then uses its own
batch), else an object that combines the ranks' per-channel numbers on the host in float64,
each rank weighted by its rows (Chan's parallel formula for the variance):

    mean, var, inv_std = sync.moments(local_mean, local_var, rows, epsilon)   # forward
    dgamma_sum, dbeta_sum = sync.weighted_sums(dgamma, dbeta)                 # backward

Each is one small all-gather of 1 + 2C numbers per layer per step (forward in layer order,
backward in reverse), on every rank; a rank with no part of a short last batch joins the
same exchanges with zero rows (``idle_step``).
"""
import numpy as np

from .. import backend
from . import mpi


def cross_replica():
    """The ranks' exchange while data parallel with more than one rank, else None."""
    from . import distribution
    current = distribution()
    if current is None or current.num_processes == 1:
        return None
    return CrossReplica(current.world)


class CrossReplica:
    def __init__(self, world):
        self.world, self.shares = world, None

    def _gather(self, rows, *vectors):
        device = backend.current()
        host = [np.asarray(device.to_numpy(v), dtype=np.float64).ravel() for v in vectors]
        row = np.concatenate([[float(rows)], *host])
        return self.world.allgather(row, "synchronized BatchNormalization statistics")

    def moments(self, mean, var, rows, epsilon):
        """(mean, biased var, 1 / sqrt(var + epsilon)) of all ranks' rows together: backend arrays (C,)."""
        channels = int(np.size(mean))
        table = self._gather(rows, mean, var)
        counts, means, variances = table[:, 0], table[:, 1:1 + channels], table[:, 1 + channels:]
        total = counts.sum()
        if total <= 0:
            raise mpi.DistributedError("synchronized BatchNormalization: no rank had any rows this step.")
        self.shares = counts / total
        global_mean = (self.shares[:, None] * means).sum(axis=0)
        global_var = (self.shares[:, None] * (variances + (means - global_mean) ** 2)).sum(axis=0)
        device, dtype = backend.current(), np.asarray(backend.current().to_numpy(mean)).dtype
        return tuple(device.asarray(v, dtype=dtype) for v in
                     (global_mean, global_var, 1.0 / np.sqrt(global_var + epsilon)))

    def weighted_sums(self, dgamma, dbeta):
        """``sum_r share_r * dgamma_r`` and the same for ``dbeta`` (shares from ``moments``): backend arrays."""
        channels = int(np.size(dgamma))
        table = self._gather(0, dgamma, dbeta)
        summed = (self.shares[:, None] * table[:, 1:]).sum(axis=0)
        device, dtype = backend.current(), np.asarray(backend.current().to_numpy(dgamma)).dtype
        return device.asarray(summed[:channels], dtype=dtype), device.asarray(summed[channels:], dtype=dtype)



def idle_step(model):
    """The exchanges of ``model``'s synchronized layers for a rank with no rows this step, in
    the order the others run them: every forward in layer order, then every backward reversed."""
    sync = cross_replica()
    layers = list(_synchronized_layers(model))
    if sync is None or not layers:
        return
    for layer in layers + layers[::-1]:
        zeros = np.zeros(int(layer.moving_mean.shape[0]))
        sync._gather(0, zeros, zeros)


def _synchronized_layers(model):
    """The trainable synchronized layers in forward order, those of nested models included."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from _synchronized_layers(layer)
        elif getattr(layer, "synchronized", False) and layer.trainable:
            yield layer
