"""A small thread pool for the memory-bound NumPy passes of the numpy backend.

The GEMMs already run on every core (OpenBLAS has its own threads); the passes around them
(im2col copies, padding, pooling, activations, strided adds) run on one core unless split.
NumPy releases the GIL inside its copy and elementwise loops, so the halves of a batch given
to two Python threads run on two cores::

    def relu_rows(part):
        np.maximum(x[part], 0, out=y[part])
    parallel.run(relu_rows, len(x), work=x.size)

Rules that keep this safe: each chunk writes only its own rows of the outputs; no BLAS call
inside a chunk (OpenBLAS would start its own threads under ours); reductions are not split
(a split sum would depend on the thread count). A ``run`` from inside a chunk runs serially.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

__all__ = ["set_num_threads", "get_num_threads", "chunks", "run", "MIN_WORK"]

MIN_WORK = 1 << 16   # elements: below this a pass takes ~20 us, about what a hand-off costs

_lock = threading.Lock()
_local = threading.local()
_threads = None      # None: os.cpu_count() (or GPUNET_NUM_THREADS), decided on first use
_pool = None


def _default_threads():
    value = os.environ.get("GPUNET_NUM_THREADS")
    if value:
        try:
            count = int(value)
        except ValueError:
            raise ValueError(f"GPUNET_NUM_THREADS must be a positive integer; received {value!r}.") from None
        if count < 1:
            raise ValueError(f"GPUNET_NUM_THREADS must be a positive integer; received {value!r}.")
        return count
    # The cores this process may run on (a container or taskset may allow fewer than exist).
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def get_num_threads():
    """Threads that split memory-bound passes (the calling thread included)."""
    global _threads
    if _threads is None:
        _threads = _default_threads()
    return _threads


def set_num_threads(count):
    """Use ``count`` threads (>= 1) for memory-bound passes; 1 runs every pass serially."""
    global _threads, _pool
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"set_num_threads expects a positive int; received {count!r}.")
    with _lock:
        _threads = count
        if _pool is not None:
            _pool.shutdown(wait=True)
            _pool = None


def _forget_pool_after_fork():
    # A forked child has none of the parent's worker threads: a pool object copied from the
    # parent would queue work that nothing runs. The child starts its own on first use.
    global _pool, _lock
    _pool, _lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def chunks(count, parts):
    """``parts`` contiguous slices covering ``range(count)``, sizes differing by at most one."""
    parts = max(1, min(parts, count))
    base, extra = divmod(count, parts)
    out, start = [], 0
    for k in range(parts):
        stop = start + base + (1 if k < extra else 0)
        out.append(slice(start, stop))
        start = stop
    return out


def _run_marked(fn, part):
    _local.inside = True
    try:
        fn(part)
    finally:
        _local.inside = False


def run(fn, count, work=None):
    """Call ``fn(part)`` for slices ``part`` that cover ``range(count)``, in parallel.

    ``work`` is the number of elements the whole pass touches (default: ``count``); passes
    under ``MIN_WORK`` elements, a single thread, or a call from inside a chunk run as one
    ``fn(slice(0, count))``. Returns after every chunk has finished, failed or not; the error
    of the first chunk (in slice order) that raised is raised here.
    """
    global _pool
    threads = get_num_threads()
    work = count if work is None else work
    if threads == 1 or count < 2 or work < MIN_WORK or getattr(_local, "inside", False):
        fn(slice(0, count))
        return
    parts = chunks(count, threads)
    with _lock:   # set_num_threads may not shut the pool down between getting it and submitting
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="gpunet")
        futures = [_pool.submit(_run_marked, fn, part) for part in parts[1:]]
    errors = []
    try:
        _run_marked(fn, parts[0])
    except BaseException as error:
        errors.append(error)
    # Every chunk finishes before run returns, failed or not: a chunk still running could
    # write into a buffer its caller reuses once the error has been handled.
    wait(futures)
    errors += [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]
