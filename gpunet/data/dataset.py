"""``Dataset``: a re-iterable pipeline of host elements, chained as scripts chain a tf.data.Dataset.

    ds = gn.data.Dataset.from_tensor_slices((images, labels))
    ds = ds.shuffle(1000, seed=1).map(augment, num_parallel_calls=gn.data.AUTOTUNE).batch(32).prefetch(2)
    model.fit(ds, epochs=5)                  # fit / evaluate / predict iterate it once per epoch
    for x, y in ds.take(1): ...              # NumPy arrays

Elements are NumPy arrays or tuples of them. ``map`` with ``num_parallel_calls`` runs the function
on a thread pool, in order; ``prefetch`` makes elements ahead on a background thread.
``image_dataset_from_directory`` returns one of these.
"""
import collections
import concurrent.futures
import itertools
import queue
import threading

import numpy as np

__all__ = ["Dataset", "AUTOTUNE"]

AUTOTUNE = -1   # tf.data.AUTOTUNE: "choose for me" wherever a count of threads or elements is asked


def _threads(num_parallel_calls):
    if num_parallel_calls is None or num_parallel_calls == 1:
        return 1
    if num_parallel_calls == AUTOTUNE:
        return 4
    if isinstance(num_parallel_calls, bool) or not isinstance(num_parallel_calls, (int, np.integer)) \
            or num_parallel_calls < 1:
        raise ValueError(f"num_parallel_calls must be a positive int or AUTOTUNE; received {num_parallel_calls!r}.")
    return int(num_parallel_calls)


def _apply(fn, element):
    return fn(*element) if isinstance(element, tuple) else fn(element)


def _stack(elements, what):
    first = elements[0]
    if isinstance(first, tuple):
        return tuple(_stack([e[k] for e in elements], what) for k in range(len(first)))
    if isinstance(first, dict):
        return {key: _stack([e[key] for e in elements], what) for key in first}
    try:
        return np.stack([np.asarray(e) for e in elements])
    except ValueError:
        shapes = sorted({np.shape(e) for e in elements})
        raise ValueError(f"{what}: elements of different shapes {shapes} cannot form one batch; "
                         f"resize them to one shape first.") from None


def _unstack(batch):
    if isinstance(batch, tuple):
        parts = [list(_unstack(b)) for b in batch]
        return [tuple(p[i] for p in parts) for i in range(len(parts[0]))]
    return list(np.asarray(batch))


class Dataset:
    """A pipeline: ``make()`` gives a fresh iterator of elements each time it is iterated."""

    def __init__(self, make, length=None):
        self._make, self._length = make, length

    # -- sources ------------------------------------------------------------------------------
    @staticmethod
    def from_tensor_slices(tensors):
        """Elements are the slices along the first axis: an array, or a tuple of arrays of one length."""
        if isinstance(tensors, list):
            tensors = tuple(tensors)
        arrays = tuple(np.asarray(t) for t in tensors) if isinstance(tensors, tuple) else np.asarray(tensors)
        items = arrays if isinstance(arrays, tuple) else (arrays,)
        lengths = {len(a) for a in items}
        if len(lengths) != 1:
            raise ValueError(f"from_tensor_slices needs arrays of one length; received lengths {sorted(lengths)}.")
        count = lengths.pop()
        if isinstance(arrays, tuple):
            return Dataset(lambda: (tuple(a[i] for a in arrays) for i in range(count)), count)
        return Dataset(lambda: iter(arrays), count)

    @staticmethod
    def from_generator(generator, length=None):
        """Elements from ``generator()`` (called once per iteration)."""
        return Dataset(lambda: iter(generator()), length)

    @staticmethod
    def zip(datasets):
        """Elements are tuples of the datasets' elements (an image dataset and a mask dataset, say)."""
        datasets = tuple(datasets)
        lengths = [d._length for d in datasets]
        length = None if None in lengths else min(lengths)
        return Dataset(lambda: zip(*datasets), length)

    # -- iteration ------------------------------------------------------------------------------
    def __iter__(self):
        return iter(self._make())

    def __len__(self):
        if self._length is None:
            raise TypeError("This dataset's length is unknown (a filter or a generator without a length).")
        if self._length == float("inf"):
            raise TypeError("This dataset repeats forever: it has no length.")
        return int(self._length)

    def cardinality(self):
        """The number of elements; -1 for infinite, -2 for unknown (tf.data's constants)."""
        return -2 if self._length is None else -1 if self._length == float("inf") else int(self._length)

    def as_numpy_iterator(self):
        return iter(self)

    @property
    def num_batches(self):   # fit reads a dataset of batches as a PyDataset reads its length
        return None if self._length in (None, float("inf")) else int(self._length)

    # -- transformations ------------------------------------------------------------------------
    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None):
        """``map_func(*element)`` (or ``map_func(element)``) for each element, in order; with
        ``num_parallel_calls`` (or AUTOTUNE) on that many threads."""
        threads = _threads(num_parallel_calls)
        if threads == 1:
            return Dataset(lambda: (_apply(map_func, e) for e in self), self._length)
        return Dataset(lambda: _parallel_map(map_func, iter(self), threads), self._length)

    def filter(self, predicate):
        return Dataset(lambda: (e for e in self if _apply(predicate, e)), None)

    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None, deterministic=None, name=None):
        """Stacks ``batch_size`` consecutive elements (the last batch may be smaller)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int; received {batch_size!r}.")

        def make():
            iterator = iter(self)
            while True:
                chunk = list(itertools.islice(iterator, batch_size))
                if not chunk or (drop_remainder and len(chunk) < batch_size):
                    return
                yield _stack(chunk, "Dataset.batch")
        length = self._length
        if length is not None and length != float("inf"):
            length = length // batch_size if drop_remainder else -(-length // batch_size)
        return Dataset(make, length)

    def unbatch(self):
        return Dataset(lambda: (e for batch in self for e in _unstack(batch)), None)

    def take(self, count):
        count = int(count)
        length = count if self._length is None or count < 0 else min(count, self._length)
        return Dataset(lambda: itertools.islice(iter(self), None if count < 0 else count),
                       None if self._length is None and count >= 0 else length)

    def skip(self, count):
        length = None if self._length is None else max(self._length - int(count), 0)
        return Dataset(lambda: itertools.islice(iter(self), int(count), None), length)

    def repeat(self, count=None):
        if count is None or count < 0:
            return Dataset(lambda: itertools.chain.from_iterable(itertools.repeat(self)), float("inf"))
        length = None if self._length is None else self._length * int(count)
        return Dataset(lambda: itertools.chain.from_iterable(itertools.repeat(self, int(count))), length)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True, name=None):
        """A buffer of ``buffer_size`` elements, drawn from at random (tf.data's algorithm)."""
        base = np.random.SeedSequence(seed)
        epochs = itertools.count()

        def make():
            epoch = next(epochs) if reshuffle_each_iteration else 0
            rng = np.random.default_rng([base.entropy if seed is not None else np.random.SeedSequence().entropy,
                                         epoch])
            buffer, iterator = [], iter(self)
            for element in iterator:
                buffer.append(element)
                if len(buffer) >= buffer_size:
                    k = int(rng.integers(len(buffer)))
                    buffer[k], buffer[-1] = buffer[-1], buffer[k]
                    yield buffer.pop()
            while buffer:
                k = int(rng.integers(len(buffer)))
                buffer[k], buffer[-1] = buffer[-1], buffer[k]
                yield buffer.pop()
        return Dataset(make, self._length)

    def prefetch(self, buffer_size=AUTOTUNE, name=None):
        """Elements made ahead on a background thread (``buffer_size`` of them; AUTOTUNE: 2)."""
        size = 2 if buffer_size in (None, AUTOTUNE) else max(int(buffer_size), 1)
        return Dataset(lambda: _prefetched(iter(self), size), self._length)

    def cache(self, filename=""):
        """Keep the elements of the first full pass in memory (``filename`` is not used)."""
        stored = []

        def make():
            if stored:
                return iter(stored[0])
            elements = list(self)
            stored.append(elements)
            return iter(elements)
        return Dataset(make, self._length)

    def __repr__(self):
        return f"<gpunet.data.Dataset cardinality={self.cardinality()}>"


def _parallel_map(fn, iterator, threads):
    with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="gpunet-map") as pool:
        pending = collections.deque()
        for element in iterator:
            pending.append(pool.submit(_apply, fn, element))
            if len(pending) >= 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


_DONE = object()


def _prefetched(iterator, size):
    """Runs ``iterator`` on a thread ``size`` elements ahead; its error is raised here, in order."""
    slots, stop = queue.Queue(size), threading.Event()

    def work():
        try:
            for element in iterator:
                while not stop.is_set():
                    try:
                        slots.put((element, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put((_DONE, None))
        except Exception as error:   # handed to the consumer, which raises it
            slots.put((_DONE, error))
    thread = threading.Thread(target=work, name="gpunet-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            element, error = slots.get()
            if error is not None:
                raise error
            if element is _DONE:
                return
            yield element
    finally:
        stop.set()
