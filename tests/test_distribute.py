"""gn.distribute: two ranks under mpiexec against one process, faults, bad input; the gradient
buckets and the rank-ordered sum in one process (a fake collective stands in for MPI / NCCL).

The 2-rank runs start ``mpiexec -n 2 python distribute_worker.py CASE DIR`` (the mpich wheel's
mpiexec, installed with gpunet[test]); without MPI they skip with the reason, except under
CI=true, where a missing MPI is a failure.
"""
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import gpunet as gn
from checks import compare_with_numpy
from gpunet.distribute import buckets, mpi
from gpunet.primitives import collective

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import distribute_worker as worker  # noqa: E402


def _mpiexec():
    beside_python = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = beside_python if os.path.exists(beside_python) else shutil.which("mpiexec")
    missing = None if found else "no mpiexec on PATH"
    if found and not mpi.available():
        missing = "mpi4py does not import"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the 2-rank tests: {missing} (pip install -e '.[test]' installs mpich and mpi4py).")
        pytest.skip(f"{missing}: pip install 'gpunet[distributed]' to run the 2-rank tests.")
    return found


def run_ranks(case, folder, ranks=2, timeout=120):
    """``mpiexec -n ranks`` the worker's ``case``; returns (returncode, stdout, stderr, seconds)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]),
               GPUNET_BACKEND="numpy" if case != "exact" else os.environ.get("GPUNET_BACKEND", "numpy"))
    start = time.monotonic()
    done = subprocess.run([_mpiexec(), "-n", str(ranks), sys.executable, os.path.join(HERE, "distribute_worker.py"),
                           case, str(folder)], capture_output=True, text=True, timeout=timeout, env=env)
    return done.returncode, done.stdout, done.stderr, time.monotonic() - start


def _load(folder, name, rank):
    with np.load(os.path.join(folder, f"{name}.rank{rank}.npz")) as f:
        weights = [f[f"arr_{k}"] for k in range(len([n for n in f.files if n.startswith("arr_")]))]
        return weights, f["loss"], f["accuracy"]


def _relative_error(a, b):
    """Largest |a - b| of each weight over that weight's largest |b| (at least 1e-3: a bias in
    front of a batch norm gets gradients of 1e-9 whose rounding is not a relative quantity)."""
    return max(float(np.max(np.abs(x - y)) / max(np.max(np.abs(y)), 1e-3)) for x, y in zip(a, b))


# -- two ranks --------------------------------------------------------------------------------
def test_two_ranks_give_one_rank_weights_and_repeat_bit_for_bit(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder in (first, second):
        folder.mkdir()
        code, out, err, _ = run_ranks("exact", folder)
        assert code == 0, err
    reference, history = worker.train()                 # one process, the same 10 global batches
    ref_weights = reference.get_weights()
    w0, loss0, acc0 = _load(first, "exact", 0)
    w1, loss1, _ = _load(first, "exact", 1)
    again, _, _ = _load(second, "exact", 0)
    for a, b, c in zip(w0, w1, again):
        assert np.array_equal(a, b), "the ranks ended with different weights"
        assert np.array_equal(a, c), "two 2-rank runs differ (the reduction order is not fixed)"
    error = _relative_error(w0, ref_weights)
    assert error < 1e-5, f"2 ranks vs 1 rank after 10 Adam steps: relative error {error:.2e}"
    assert np.allclose(loss0, history.history["loss"], rtol=1e-5)
    assert np.allclose(acc0, history.history["accuracy"], rtol=1e-6)
    assert np.array_equal(loss0, loss1)
    on_batch, loss0, acc0 = _load(first, "on_batch", 0)
    reference, history = worker.train_on_batches()     # global batches of 16, 15, 1: rank 1 idles last
    assert _relative_error(on_batch, reference.get_weights()) < 1e-5
    assert np.allclose(loss0, history.history["loss"], rtol=1e-5)
    assert np.allclose(acc0, history.history["accuracy"], rtol=1e-6)


def test_uneven_last_batch_and_batchnorm_statistics_agree_across_ranks(tmp_path):
    code, _, err, _ = run_ranks("bn", tmp_path)
    assert code == 0, err
    w0, loss0, _ = _load(tmp_path, "bn", 0)
    w1, loss1, _ = _load(tmp_path, "bn", 1)
    assert len(w0) == 8   # conv kernel, bias, gamma, beta, moving mean, moving variance, dense
    for a, b in zip(w0, w1):
        assert np.array_equal(a, b)
    assert not np.allclose(w0[4], 0.0) and np.isfinite(loss0).all() and np.array_equal(loss0, loss1)


def test_synchronized_batchnorm_on_two_ranks_is_batchnorm_on_one(tmp_path):
    code, _, err, _ = run_ranks("syncbn", tmp_path)
    assert code == 0, err
    reference, history = worker.train_batchnorm(synchronized=True)   # one process: plain batch norm
    w0, loss0, _ = _load(tmp_path, "syncbn", 0)
    w1, _, _ = _load(tmp_path, "syncbn", 1)
    assert all(np.array_equal(a, b) for a, b in zip(w0, w1))
    error = _relative_error(w0, reference.get_weights())   # moving statistics included
    assert error < 1e-5, f"synchronized BatchNorm, 2 ranks vs 1: relative error {error:.2e}"
    assert np.allclose(loss0, history.history["loss"], rtol=1e-5)


def test_pydataset_batches_dealt_by_index_match_one_rank_on_their_union(tmp_path):
    code, out, err, _ = run_ranks("pydataset", tmp_path)
    assert code == 0, err
    assert "rank 0 batches [0, 2, 4, 6]" in out and "rank 1 batches [1, 3, 5, None]" in out
    batches = worker.dataset_batches()
    steps = [tuple(np.concatenate(part) for part in zip(*batches[k:k + 2])) for k in range(0, 7, 2)]
    reference = worker.train_batches(steps)   # one process: each step on the union of two batches
    w0, _, _ = _load(tmp_path, "pydataset", 0)
    w1, _, _ = _load(tmp_path, "pydataset", 1)
    assert all(np.array_equal(a, b) for a, b in zip(w0, w1))
    error = _relative_error(w0, reference.get_weights())
    assert error < 1e-5, f"PyDataset batches on 2 ranks vs 1: relative error {error:.2e}"


def test_checkpoint_from_two_ranks_resumes_on_one(tmp_path):
    code, _, err, _ = run_ranks("checkpoint", tmp_path)
    assert code == 0, err
    rows = (tmp_path / "log.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch,") and len(rows) == 2, rows   # one writer, one epoch
    model = gn.models.load_model(str(tmp_path / "ckpt.h5"))
    x, y = worker.data()
    history = model.fit(x, y, batch_size=worker.BATCH, epochs=2, initial_epoch=1, verbose=0)
    two_ranks, loss, _ = _load(tmp_path, "two_epochs", 0)
    error = _relative_error(model.get_weights(), two_ranks)
    assert error < 1e-5, f"epoch 2 on 1 rank after a 2-rank epoch 1: relative error {error:.2e}"
    assert np.allclose(history.history["loss"], loss, rtol=1e-5)


def test_a_rank_that_raises_stops_every_rank(tmp_path):
    code, out, err, seconds = run_ranks("raise", tmp_path)
    assert code != 0 and "finished without an error" not in out
    assert "RuntimeError: boom in rank 1's callback" in err
    assert "rank 1 of 2 failed (RuntimeError)" in err
    assert "rank 1 failed: RuntimeError: boom in rank 1's callback; rank 0 stops too." in err
    assert seconds < 60


def test_a_hung_rank_times_out_on_every_rank(tmp_path):
    code, out, err, seconds = run_ranks("hang", tmp_path)
    assert code != 0 and "finished without an error" not in out
    assert "rank 0: model and data check did not complete within 1 s" in err
    assert "rank 1 stops too" in err
    assert seconds < 60


def test_bad_input_is_reported_on_every_rank(tmp_path):
    code, out, err, _ = run_ranks("bad_input", tmp_path)
    assert code == 0, err
    for rank in (0, 1):
        assert (f"models: rank {rank} got: rank 1 built a different model than rank 0: weight 0 is "
                f"'conv2d/kernel' (3, 3, 2, 5) float32 there and 'conv2d/kernel' (3, 3, 2, 4) float32 on rank 0.") in out
        assert f"short: rank {rank} got: ranks 0, 1: the data has 1 samples, fewer than the 2 ranks." in out
        assert f"batches: rank {rank} got: ranks 0, 1: the dataset has 1 batches, fewer than the 2 ranks." in out
        assert f"late: rank {rank} got: ranks 0, 1: DataParallel was set after model" in out


# -- one process: the rank-ordered sum and the buckets -------------------------------------------
@pytest.mark.parametrize("rows, n", [(1, 5), (3, 1000), (2, 257)])
def test_weighted_row_sum_kernel(kernel_backend, rng, rows, n):
    parts = rng.standard_normal((rows, n)).astype(np.float32)
    weights = rng.uniform(0.1, 1.0, rows)
    out, = compare_with_numpy(kernel_backend, lambda: collective.weighted_row_sum(parts, weights),
                              ["weighted_row_sum"])
    expected = sum(np.float64(w) * p.astype(np.float64) for w, p in zip(weights, parts))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 5, 4)])
def test_batch_norm_backward_from_own_sums_is_batch_norm_backward(kernel_backend, rng, shape):
    from gpunet.primitives import norm, norm_sync
    x, dy = rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, shape[-1]).astype(np.float32)
    with gn.backend.use("numpy"):
        _, mean, inv_std, _ = norm.batch_norm_train_forward(x, gamma, None, 1e-3)
        expected, dgamma, dbeta = norm.batch_norm_backward(dy, x, gamma, mean, inv_std)
    dx, = compare_with_numpy(kernel_backend, lambda: norm_sync.batch_norm_backward_from_sums(
        dy, x, gamma, mean, inv_std, dgamma, dbeta), ["batch_norm_backward_input"])
    np.testing.assert_allclose(dx, expected, rtol=1e-4, atol=1e-5)


def test_weighted_row_sum_refuses_mismatched_weights():
    with pytest.raises(ValueError, match=r"weights \(rows,\); received shapes \(2, 3\) and \(3,\)"):
        collective.weighted_row_sum(np.zeros((2, 3), np.float32), np.ones(3))


class FakeCollective:
    """Ranks 0..size-1 in one process: this rank's buffer, and peers' made from its own."""

    def __init__(self, rank, size):
        self.rank, self.size, self.calls = rank, size, []

    def peer(self, buf, r):
        # A different, known buffer for every rank. Linear: under "allreduce" each rank scales its
        # own buffer first, so the fake's peers scale theirs by this rank's weight (equal counts).
        return buf * (r + 1)

    def all_gather(self, buf):
        self.calls.append(("all_gather", int(buf.size)))
        host = np.asarray(gn.backend.current().to_numpy(buf))
        rows = np.stack([host if r == self.rank else self.peer(host, r) for r in range(self.size)])
        return gn.backend.current().asarray(rows)

    def all_reduce(self, buf):
        self.calls.append(("all_reduce", int(buf.size)))
        host = np.asarray(gn.backend.current().to_numpy(buf))
        return gn.backend.current().asarray(sum(self.peer(host, r) if r != self.rank else host
                                                for r in range(self.size)))


def _model_and_grads():
    gn.utils.set_random_seed(5)
    model = gn.Sequential([gn.Input((4, 4, 2)), gn.layers.Conv2D(3, 3), gn.layers.BatchNormalization(),
                           gn.layers.Flatten(), gn.layers.Dense(2)])
    model.compile("sgd", "mse")
    x = np.random.default_rng(1).standard_normal((6, 4, 4, 2)).astype(np.float32)
    return model, x


@pytest.mark.parametrize("ordered", [True, False])
def test_bucket_reducer_reduces_as_backward_goes(ordered):
    model, x = _model_and_grads()
    fake = FakeCollective(rank=1, size=3)
    reducer = buckets.BucketReducer(model, fake, buckets.HostStreams(), 1, 3, ordered=ordered, bucket_bytes=200)
    counts = [3, 2, 1] if ordered else [2, 2, 2]
    stats_before = [np.array(w) for w in model.layers[1].non_trainable_weights]
    reducer.start(counts)
    model._grad_ready = reducer.layer_done
    model.forward(model._to_backend([x]), training=True)
    stats_mine = [np.array(w) for w in model.layers[1].non_trainable_weights]
    model._train_backward(np.ones((6, 2), np.float32), from_logits=False)
    reduced_during_backward = len(fake.calls)
    grads = reducer.finish(model)
    assert reduced_during_backward >= 2 and len(fake.calls) == reduced_during_backward + 1   # + statistics
    shares = np.array(counts) / 6.0
    for mine, got in zip(model.grads, grads):
        mine = np.asarray(mine, np.float64)
        expected = sum(shares[r] * (mine if r == 1 else fake.peer(mine, r)) for r in range(3))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    for before, mine, now in zip(stats_before, stats_mine, model.layers[1].non_trainable_weights):
        expected = sum(shares[r] * (mine if r == 1 else fake.peer(mine, r)) for r in range(3))
        assert not np.allclose(before, mine)
        np.testing.assert_allclose(now, expected, rtol=1e-5, atol=1e-6)


def test_bucket_reducer_on_kernels_matches_numpy(kernel_backend):
    """The buckets' packing and rank-ordered sum on a kernel backend, up to where NCCL would run."""
    results = []
    for name in ("numpy", kernel_backend):
        with gn.backend.use(name):
            model, x = _model_and_grads()
            fake = FakeCollective(rank=0, size=2)
            reducer = buckets.BucketReducer(model, fake, buckets.HostStreams(), 0, 2, bucket_bytes=64)
            reducer.start([4, 2])
            model._grad_ready = reducer.layer_done
            model.forward(model._to_backend([x]), training=True)
            model._train_backward(gn.backend.current().asarray(np.ones((6, 2))), from_logits=False)
            results.append([np.array(gn.backend.current().to_numpy(g)) for g in reducer.finish(model)])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_an_empty_rank_contributes_zeros():
    model, x = _model_and_grads()
    fake = FakeCollective(rank=1, size=2)
    reducer = buckets.BucketReducer(model, fake, buckets.HostStreams(), 1, 2)
    model.forward(model._to_backend([x]), training=True)
    model._train_backward(np.ones((6, 2), np.float32), from_logits=False)   # stale gradients
    reducer.start([1, 0])
    grads = reducer.finish(model, empty=True)
    # rank 0's row is the fake's peer(zeros) = zeros, weighted 1; stale gradients would show
    assert all(np.array_equal(g, np.zeros_like(g)) for g in grads)


# -- the NCCL glue, with CuPy and NCCL faked (no GPU here): arguments, bootstrap, abort ---------
class _DeviceArray(np.ndarray):
    """A NumPy array with CuPy's ``.data.ptr``."""

    @property
    def data(self):
        return type("Pointer", (), {"ptr": self.ctypes.data})()


class _FakeCupy:
    def __init__(self):
        self.arrays, self.cuda = {}, self
        self.Stream = lambda non_blocking: _FakeStream()
        self.Event = lambda disable_timing: _FakeEvent()

    def _track(self, a):
        a = a.view(_DeviceArray)
        self.arrays[a.ctypes.data] = a
        return a

    def empty(self, shape, dtype):
        return self._track(np.empty(shape, dtype))

    def empty_like(self, a):
        return self._track(np.empty_like(a))

    def get_current_stream(self):
        return _FakeStream()


class _FakeStream:
    ptr = 1234

    def wait_event(self, event):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


class _FakeEvent:
    done = False   # a collective that never completes: a peer that died

    def record(self, stream=None):
        pass


class _FakeNccl:
    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = 7, 8, 0

    def __init__(self, cp):
        self.cp, self.calls = cp, []
        outer = self

        class Communicator:
            def __init__(self, size, unique_id, rank):
                outer.calls.append(("init", size, unique_id, rank))

            def allGather(self, send, recv, count, dtype, stream):
                outer.calls.append(("allGather", count, dtype, stream))
                out = outer.cp.arrays[recv]
                out[0] = np.ctypeslib.as_array(np.ctypeslib.ctypes.cast(
                    send, np.ctypeslib.ctypes.POINTER(np.ctypeslib.ctypes.c_float)), (count,))
                out[1:] = 2 * out[0]

            def abort(self):
                outer.calls.append(("abort",))
        self.NcclCommunicator = Communicator

    def get_unique_id(self):
        return tuple(range(128))


class _FakeWorld:
    rank, size = 0, 3

    def __init__(self):
        self.broadcasts = []

    def broadcast_object(self, value, what):
        self.broadcasts.append(what)
        return value

    def poll(self, done, what):
        if not done():
            raise mpi.DistributedError(f"rank 0: {what} did not complete within 0 s")


def test_nccl_glue_bootstraps_gathers_and_aborts(monkeypatch):
    from gpunet.backend import cupy_device
    from gpunet.distribute import nccl
    cp = _FakeCupy()
    fake = _FakeNccl(cp)
    monkeypatch.setattr(cupy_device, "cupy", lambda: cp)
    monkeypatch.setattr(nccl, "_nccl", lambda: fake)
    world = _FakeWorld()
    collective = nccl.NcclCollective(world)
    assert world.broadcasts == ["NCCL unique id broadcast"] and fake.calls[0] == ("init", 3, tuple(range(128)), 0)
    buf = cp._track(np.arange(5, dtype=np.float32))
    gathered = collective.all_gather(buf)
    assert fake.calls[1] == ("allGather", 5, fake.NCCL_FLOAT32, _FakeStream.ptr)
    np.testing.assert_array_equal(gathered, [np.arange(5), 2 * np.arange(5), 2 * np.arange(5)])
    with pytest.raises(TypeError, match="float32 or float64; received int32"):
        collective.all_gather(cp._track(np.arange(5, dtype=np.int32)))
    streams = nccl.CudaStreams(world, collective)
    streams.on_side(lambda: None)
    streams.join("gradient reduction")            # the first step: nothing earlier to check
    with pytest.raises(mpi.DistributedError, match="gradient reduction did not complete"):
        streams.join("gradient reduction")        # the step before never finished
    assert fake.calls[-1] == ("abort",)
