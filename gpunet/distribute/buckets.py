"""Gradient buckets: the training step's gradients, packed, reduced over the ranks, unpacked.

The step's trainable weights are split into buckets of about ``bucket_bytes``, in the order
backward finishes them (last layer first). As each layer's backward returns, the model calls
``layer_done(layer)``; its gradients are copied into their bucket's flat buffer, and a bucket
whose last gradient has arrived is reduced at once -- on the cuda backend on a side stream,
so NCCL moves it while the compute stream runs the rest of the backward. ``finish`` reduces
what is left and returns the reduced gradients (views of the buckets), in the model's order.

The layers' non-trainable weights that a training forward updates (BatchNormalization's
moving statistics) travel in a last bucket and are replaced by their rank-weighted mean, so
every rank keeps the same statistics and evaluates alike.

Reduction: ``ordered`` all-gathers each bucket and adds the ranks' rows in rank order
(``primitives.collective.weighted_row_sum``): the same bits on every run. Otherwise each rank
scales its own bucket by its weight and the library all-reduces (its order, faster at scale).
The collective (``MpiCollective``, ``nccl.NcclCollective``, or a test's fake) and the streams
(``HostStreams`` or ``nccl.CudaStreams``) are all this module knows of the transport.
"""
import numpy as np

from .. import backend
from ..primitives.collective import weighted_row_sum


class MpiCollective:
    """Host arrays over MPI: ``all_gather(buf)`` -> (ranks, n), ``all_reduce(buf)`` -> (n,)."""

    def __init__(self, communicator):
        self.world = communicator

    def all_gather(self, buf):
        return self.world.allgather(buf, "gradient all-gather")

    def all_reduce(self, buf):
        return self.world.allreduce_sum(buf, "gradient all-reduce")


class HostStreams:
    """Numpy and cudasim: one stream of work; a collective runs when it is called."""

    def on_side(self, fn):
        return fn()

    def join(self, what):
        pass


class _Bucket:
    def __init__(self, entries, dtype, xp):
        self.entries = entries            # [(slot, shape, offset, size)]: slot indexes the step's arrays
        self.size = sum(e[3] for e in entries)
        self.flat = xp.zeros(self.size, dtype=dtype)
        self.pending = len(entries)
        self.result = None


class BucketReducer:
    """Reduce one model's gradients (and updated statistics) over the ranks, bucket by bucket.

    ``rank``, ``size``: this rank and the rank count; ``collective``, ``streams``: see above.
    """

    def __init__(self, model, collective, streams, rank, size, ordered=True, bucket_bytes=25 << 20):
        self.collective, self.streams, self.rank, self.size = collective, streams, rank, size
        self.ordered = ordered
        self.xp = backend.current().xp
        self._plan(model, bucket_bytes)
        self.weights, self.active = None, False

    def _plan(self, model, bucket_bytes):
        """Slots: trainable weights in model order, then the statistics; buckets in backward order."""
        self.trainable = list(model.trainable_weights)
        owners, self.statistics = [], []
        for layer in model.layers:
            owners += [layer] * len(layer.trainable_weights)
            if layer.trainable:
                self.statistics += list(layer.non_trainable_weights)
        self.buckets, self.slot_bucket, self.layer_slots = [], {}, {}
        group, group_bytes = [], 0
        for slot in reversed(range(len(self.trainable))):   # the order backward finishes them
            self.layer_slots.setdefault(id(owners[slot]), []).append(slot)
            array = self.trainable[slot]
            if group and (self.trainable[group[0]].dtype != array.dtype or group_bytes + array.nbytes > bucket_bytes):
                self._add_bucket(group)
                group, group_bytes = [], 0
            group.append(slot)
            group_bytes += array.nbytes
        if group:
            self._add_bucket(group)
        by_dtype = {}
        for k, w in enumerate(self.statistics):
            by_dtype.setdefault(np.dtype(w.dtype), []).append(k)
        self.stat_buckets = [self._make_bucket(group, self.statistics) for group in by_dtype.values()]

    def _make_bucket(self, slots, arrays):
        entries, offset = [], 0
        for slot in slots:
            entries.append((slot, tuple(arrays[slot].shape), offset, int(arrays[slot].size)))
            offset += int(arrays[slot].size)
        return _Bucket(entries, arrays[slots[0]].dtype, self.xp)

    def _add_bucket(self, slots):
        bucket = self._make_bucket(slots, self.trainable)
        for entry in bucket.entries:
            self.slot_bucket[entry[0]] = (bucket, entry)
        self.buckets.append(bucket)

    # -- one step ---------------------------------------------------------------------------
    def start(self, counts):
        """A step begins; ``counts[r]``: samples rank r trains on (weights ``counts / sum``)."""
        total = float(sum(counts))
        self.weights = np.array([c / total for c in counts], dtype=np.float64)
        for bucket in self.buckets + self.stat_buckets:
            bucket.pending, bucket.result = len(bucket.entries), None
        self.active = True

    def layer_done(self, layer, grads):
        """``layer``'s backward has filled ``grads`` (its trainable weights' gradients)."""
        slots = self.layer_slots.get(id(layer)) if self.active else None
        if not slots or len(grads) != len(slots):
            return
        for slot, grad in zip(sorted(slots), grads):
            bucket, (_, _, offset, size) = self.slot_bucket[slot]
            bucket.flat[offset:offset + size] = grad.reshape(-1)
            bucket.pending -= 1
            if bucket.pending == 0:
                self._reduce(bucket)

    def finish(self, model, empty=False):
        """The reduced gradients in ``model.trainable_weights`` order; statistics updated in place.

        ``empty``: this rank had no samples this step; its buffers count as zeros (weight 0).
        """
        for bucket in self.buckets:
            if bucket.result is None:
                self._fill(bucket, None if empty else list(model.grads))
                self._reduce(bucket)
        for bucket in self.stat_buckets:
            self._fill(bucket, self.statistics)
            self._reduce(bucket)
        self.streams.join("gradient reduction")
        self.active = False
        grads = [None] * len(self.trainable)
        for bucket in self.buckets:
            for slot, shape, offset, size in bucket.entries:
                grads[slot] = bucket.result[offset:offset + size].reshape(shape)
        for bucket in self.stat_buckets:
            for slot, shape, offset, size in bucket.entries:
                self.statistics[slot][...] = bucket.result[offset:offset + size].reshape(shape)
        return grads

    @staticmethod
    def _fill(bucket, sources):
        if sources is None:
            bucket.flat[...] = 0
            return
        for slot, _, offset, size in bucket.entries:
            bucket.flat[offset:offset + size] = sources[slot].reshape(-1)

    def _reduce(self, bucket):
        weights = self.weights

        def run():
            if self.ordered:
                bucket.result = weighted_row_sum(self.collective.all_gather(bucket.flat), weights)
            else:
                mine = weighted_row_sum(bucket.flat.reshape(1, -1), weights[self.rank:self.rank + 1])
                bucket.result = self.collective.all_reduce(mine)
        self.streams.on_side(run)
