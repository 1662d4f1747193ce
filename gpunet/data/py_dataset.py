"""``PyDataset``: batches made by Python code, prefetched by threads or processes (Keras 3's class).

    class Images(gn.utils.PyDataset):
        def __init__(self, files, labels, batch_size, **kwargs):
            super().__init__(**kwargs)            # workers, use_multiprocessing, max_queue_size
            self.files, self.labels, self.batch_size = files, labels, batch_size
        def __len__(self):                        # batches per epoch
            return math.ceil(len(self.files) / self.batch_size)
        def __getitem__(self, index):             # batch `index`: x, (x, y) or (x, y, sample_weight)
            ...

    model.fit(Images(files, labels, 32, workers=4), epochs=10)

With ``workers > 1`` (or ``use_multiprocessing=True``) up to ``max_queue_size`` batches are made
ahead of the training step by a pool of threads (or processes), and delivered in index order.
A ``__getitem__`` that raises stops the pool and the error reaches the caller naming the batch.
"""
import concurrent.futures
import multiprocessing
import warnings

__all__ = ["PyDataset", "Sequence", "ordered_batches"]


class PyDataset:
    """Base class for a dataset of batches: define ``__len__`` and ``__getitem__(index)``.

    workers: how many threads (or processes) make batches ahead; 1 makes them in the loop.
    use_multiprocessing: processes instead of threads (for Python-heavy ``__getitem__``; the
        dataset must then be picklable where ``fork`` is unavailable).
    max_queue_size: how many batches may be ready ahead of the one being trained on.
    ``on_epoch_begin`` / ``on_epoch_end`` run between epochs (shuffle your indices there).
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        for what, value in (("workers", workers), ("max_queue_size", max_queue_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PyDataset {what} must be a positive int; received {value!r}.")
        self._workers = workers
        self._use_multiprocessing = bool(use_multiprocessing)
        self._max_queue_size = max_queue_size

    # Subclasses that forget super().__init__() still work, with Keras's defaults (and a warning).
    def _setting(self, name, default):
        if not hasattr(self, "_" + name):
            warnings.warn(f"{type(self).__name__} should call super().__init__(**kwargs) in its __init__ "
                          f"so that workers, use_multiprocessing and max_queue_size take effect.", stacklevel=3)
            setattr(self, "_" + name, default)
        return getattr(self, "_" + name)

    @property
    def workers(self):
        return self._setting("workers", 1)

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self):
        return self._setting("use_multiprocessing", False)

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = value

    @property
    def max_queue_size(self):
        return self._setting("max_queue_size", 10)

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index) returning a batch.")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__() (the number of batches).")

    @property
    def num_batches(self):
        """Batches per epoch: ``len(self)``, or None for an endless dataset without ``__len__``."""
        try:
            return len(self)
        except NotImplementedError:
            return None

    def on_epoch_begin(self):
        """Called before each epoch."""

    def on_epoch_end(self):
        """Called after each epoch."""


Sequence = PyDataset   # keras.utils.Sequence is the same class in Keras 3


# -- prefetching ------------------------------------------------------------------------------

_PROCESS_DATASET = None   # the dataset a worker process serves (set by _init_process)


def _init_process(dataset):
    global _PROCESS_DATASET
    _PROCESS_DATASET = dataset


def _process_item(index):
    return _PROCESS_DATASET[index]


def _item_error(dataset, index, error):
    return RuntimeError(f"{type(dataset).__name__}.__getitem__({index}) raised "
                        f"{type(error).__name__}: {error} (batch {index}; the workers were stopped).")


def _executor(dataset):
    if not dataset.use_multiprocessing:
        return concurrent.futures.ThreadPoolExecutor(dataset.workers, thread_name_prefix="gpunet-data"), \
            dataset.__getitem__
    # A fresh pool each epoch: processes then see what on_epoch_end changed (e.g. a shuffled order).
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = concurrent.futures.ProcessPoolExecutor(dataset.workers, mp_context=multiprocessing.get_context(method),
                                                  initializer=_init_process, initargs=(dataset,))
    return pool, _process_item


def ordered_batches(dataset, indices):
    """``dataset[i]`` for each i of ``indices`` in order; made ahead by the dataset's workers.

    A batch that raises stops the pool (queued batches are cancelled) and raises a RuntimeError
    naming the batch index, chained to the original error.
    """
    if dataset.workers <= 1 and not dataset.use_multiprocessing:
        for index in indices:
            try:
                yield dataset[index]
            except Exception as error:
                raise _item_error(dataset, index, error) from error
        return
    pool, fetch = _executor(dataset)
    pending, indices = [], iter(indices)
    try:
        for index in indices:
            pending.append((index, pool.submit(fetch, index)))
            if len(pending) >= dataset.max_queue_size:
                break
        while pending:
            index, future = pending.pop(0)
            try:
                batch = future.result()
            except Exception as error:
                raise _item_error(dataset, index, error) from error
            for more in indices:   # keep the queue full before handing this batch over
                pending.append((more, pool.submit(fetch, more)))
                break
            yield batch
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
