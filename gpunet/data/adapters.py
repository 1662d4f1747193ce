"""One adapter per kind of data fit / evaluate / predict take, each yielding host batches.

    arrays            x (an array, or a list for several inputs), y, sample_weight: sliced
                      into batches of batch_size, shuffled each epoch when asked
    PyDataset         dataset[i] for i in range(len(dataset)), made ahead by its workers
    generator         next(generator) until it stops; the same generator every epoch

Every batch comes out as ``(x, y, sample_weight)`` of NumPy arrays (y, sample_weight may be
None). ``EpochIterator`` adds ``steps_per_epoch`` with Keras 3's rule: with steps given, one
iteration goes on across epochs and restarts when a sized source is used up.
"""
import inspect
import itertools
import warnings

import numpy as np

from .. import utils
from .dataset import Dataset
from .py_dataset import PyDataset, ordered_batches

__all__ = ["unpack", "ArrayAdapter", "PyDatasetAdapter", "GeneratorAdapter", "get_adapter", "EpochIterator",
           "is_array_data", "reject_extra_arrays", "replicas_for_fit", "should_validate", "take"]


def unpack(data, where):
    """``x`` / ``(x,)`` / ``(x, y)`` / ``(x, y, sample_weight)`` -> ``(x, y, sample_weight)`` (Keras's rule:
    a list counts as such a tuple, so several inputs go in a tuple or list inside it)."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if not 1 <= len(data) <= 3:
        raise ValueError(f"{where}: a batch must be x, (x,), (x, y) or (x, y, sample_weight); "
                         f"received a tuple of {len(data)} items.")
    return tuple(data) + (None,) * (3 - len(data))


def is_generator(x):
    return inspect.isgenerator(x) or (hasattr(x, "__next__") and hasattr(x, "__iter__")
                                     and not isinstance(x, (np.ndarray, list, tuple, dict, str)))


def is_array_data(x):
    """True for what ArrayAdapter slices: arrays, or lists / tuples of them (one per input)."""
    return not (isinstance(x, (PyDataset, Dataset)) or is_generator(x))


def take(a, index):
    """``a[index]`` for an array, each array's for a list of them (several outputs), None for None."""
    if a is None:
        return None
    return [take(b, index) for b in a] if isinstance(a, list) else a[index]


class CheckedBatch(tuple):
    """``(xs, y, sample_weight)`` sliced from arrays the caller checked whole: no per-batch checks."""

    checked = True


class ArrayAdapter:
    """Batches of ``batch_size`` sliced from in-memory arrays; ``xs`` is a list (one per input)."""

    def __init__(self, xs, y, sample_weight, batch_size, shuffle):
        self.xs, self.y, self.sample_weight = xs, y, sample_weight
        self.batch_size, self.shuffle = batch_size, shuffle
        self.shard = None   # data parallel: this rank's part of a global batch's index (see replicas_for_fit)
        self.count = len(xs[0])
        self.num_batches = -(-self.count // batch_size)

    def _order(self):
        if self.shuffle == "batch":   # Keras: shuffle the batches' order, not the samples
            starts = utils.rng().permutation(self.num_batches) * self.batch_size
            return np.concatenate([np.arange(s, min(s + self.batch_size, self.count)) for s in starts])
        return utils.rng().permutation(self.count) if self.shuffle else None

    def batches(self):
        order = self._order()
        for start in range(0, self.count, self.batch_size):
            index = slice(start, start + self.batch_size) if order is None else order[start:start + self.batch_size]
            if self.shard is not None:
                index = self.shard(index)
            xs = [a[index] for a in self.xs]
            if not len(xs[0]):
                yield None   # data parallel: no part of this batch for this rank; it idles the step
                continue
            yield CheckedBatch((xs, take(self.y, index), take(self.sample_weight, index)))

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


class PyDatasetAdapter:
    """``dataset[0 .. len - 1]`` each epoch (endless without ``__len__``), in order."""

    def __init__(self, dataset, where):
        self.dataset, self.where = dataset, where
        self.num_batches = dataset.num_batches
        self.deal = None   # data parallel: this rank's batch indices (None: idle), see replicas_for_fit

    def batches(self):
        if self.num_batches is None:
            indices, idle = itertools.count(), 0
        else:
            dealt = list(range(self.num_batches)) if self.deal is None else self.deal(self.num_batches)
            indices = [i for i in dealt if i is not None]
            idle = len(dealt) - len(indices)   # the dealt-out list ends with its idle entries
        for index, data in zip(indices, ordered_batches(self.dataset, indices)):
            yield unpack(data, f"{self.where}: batch {index} of {type(self.dataset).__name__}")
        for _ in range(idle):
            yield None

    def on_epoch_begin(self):
        self.dataset.on_epoch_begin()

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


class DatasetAdapter:
    """A ``gpunet.data.Dataset`` of batches (``image_dataset_from_directory``, ``.batch(...)``),
    iterated afresh each epoch."""

    def __init__(self, dataset, where):
        self.dataset, self.where = dataset, where
        self.num_batches = dataset.num_batches

    def batches(self):
        for index, data in enumerate(self.dataset):
            yield unpack(data, f"{self.where}: batch {index} of the dataset")

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


class GeneratorAdapter:
    """``next(generator)`` until it stops; a generator cannot restart, so later epochs continue it."""

    def __init__(self, generator, where):
        self.generator, self.where = iter(generator), where
        self.num_batches = None
        self._index = 0

    def batches(self):
        for data in self.generator:
            batch = unpack(data, f"{self.where}: batch {self._index} of the generator")
            self._index += 1
            yield batch

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


def replicas_for_fit(model, train, batch_size):
    """The ranks' view of this fit (gpunet.distribute; one process: nothing changes): array batches
    are sharded by index, a PyDataset's batches dealt out by index, one per rank and step."""
    from .. import distribute
    adapter = train.adapter
    if isinstance(adapter, ArrayAdapter):
        replicas = distribute.replicas(model, adapter.count, batch_size)
        adapter.shard = replicas.shard
    else:
        replicas = distribute.replicas(model, batches=adapter.num_batches)
        if isinstance(adapter, PyDatasetAdapter):
            adapter.deal = replicas.batch_indices
    return replicas


def reject_extra_arrays(x, y, sample_weight, where):
    """A dataset or generator brings its own targets and weights (Keras's rule)."""
    for name, value in (("y", y), ("sample_weight", sample_weight)):
        if value is not None:
            raise ValueError(f"{where}: {name} must be None when x is a {type(x).__name__}: its batches carry "
                             f"the targets and sample weights, as (x, y) or (x, y, sample_weight).")


def should_validate(epoch, validation_freq):
    """Keras's rule: validate after epoch ``epoch`` (from 0) when ``epoch + 1`` is a multiple of an
    int ``validation_freq``, or is listed in a list / tuple of them."""
    if isinstance(validation_freq, (int, np.integer)) and not isinstance(validation_freq, bool) \
            and validation_freq >= 1:
        return (epoch + 1) % int(validation_freq) == 0
    if isinstance(validation_freq, (list, tuple)):
        return epoch + 1 in validation_freq
    raise ValueError(f"validation_freq must be a positive int or a list of epochs; received {validation_freq!r}.")


def get_adapter(x, where):
    """The adapter for a PyDataset, a gpunet.data.Dataset (``image_dataset_from_directory``) or a
    generator / iterator; arrays are sliced by the caller (it checks them whole first)."""
    if isinstance(x, PyDataset):
        return PyDatasetAdapter(x, where)
    if isinstance(x, Dataset):
        return DatasetAdapter(x, where)
    if is_generator(x):
        return GeneratorAdapter(x, where)
    raise TypeError(f"{where}: x must be arrays, a gn.utils.PyDataset or a generator; received {type(x).__name__}.")


class EpochIterator:
    """``epoch()`` yields ``(step, batch)`` for one epoch of ``adapter``, ``steps`` at most.

    As Keras 3: without ``steps`` each epoch is one full pass; with ``steps`` one pass goes on
    across epochs and restarts (a sized source) when used up. A sized source shorter than
    ``steps`` ends the epoch early with a warning; a generator that runs dry raises.
    """

    def __init__(self, adapter, steps, where, steps_name="steps_per_epoch", class_weight=None):
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1):
            raise ValueError(f"{where}: {steps_name} must be None or a positive int; received {steps!r}.")
        self.adapter, self.steps, self.where, self.steps_name = adapter, steps, where, steps_name
        self.class_weight = class_weight   # applied by the trainer to batches not from arrays
        self.resume = None   # (batches done, random state): BackupAndRestore's mid-epoch backup
        self._iterator, self._seen, self._epochs = None, 0, 0

    @property
    def num_batches(self):
        return self.steps or self.adapter.num_batches

    def epoch(self):
        self.adapter.on_epoch_begin()
        sized = self.adapter.num_batches
        if self._iterator is None or self.steps is None:
            self._iterator, self._seen = self.adapter.batches(), 0
        if self.resume is not None:
            self._resume(*self.resume)
        step = 0
        while self.steps is None or step < self.steps:
            if sized and self._seen >= sized:
                if self.steps is None:
                    break
                warnings.warn(f"{self.where}: the data ran out after {step} of {self.steps_name}={self.steps} "
                              f"batches in this epoch: a pass has {sized} batches, and with {self.steps_name} "
                              f"one pass goes on across epochs, restarting when used up (as in Keras).",
                              stacklevel=3)
                break
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._ran_dry(step)
                break
            self._seen += 1
            yield step, batch
            step += 1
        if sized and self._seen >= sized:
            self._iterator, self._seen = None, 0
        self._epochs += 1
        self.adapter.on_epoch_end()

    def _resume(self, done, state):
        """Continue an epoch a backup stopped: the order is drawn again (the random state restored at
        the epoch's start), the ``done`` batches are passed over, then the state goes on from the backup."""
        self.resume = None
        for _ in range(done):
            next(self._iterator, None)
            self._seen += 1
        utils.set_rng_state(state)

    def _ran_dry(self, step):
        self._iterator = None
        if self.adapter.num_batches is None and (step == 0 or self.steps is not None):
            need = f"{self.steps_name}={self.steps} batches per epoch" if self.steps else "at least one batch"
            raise ValueError(f"{self.where}: the generator ran out of data after {step} batch(es) in pass "
                             f"{self._epochs + 1}, which needs {need}. A generator cannot restart: make it "
                             f"loop forever and pass {self.steps_name}, or use a gn.utils.PyDataset.")
