"""The cheap launch path: checks once per argument kinds, sources read once, plans per shape."""
import numpy as np
import pytest

from gpunet import backend
from gpunet.backend import kernel_source
from gpunet.primitives import launch

I32 = np.int32


@pytest.fixture
def noop():
    with backend.use("noop") as be:
        yield be


def test_arguments_are_checked_once_per_kinds(noop, monkeypatch):
    checks = []
    real = kernel_source.check_args
    monkeypatch.setattr(kernel_source, "check_args", lambda *a: (checks.append(a[1].name), real(*a)))
    a = np.ones(8, np.float32)
    for _ in range(3):
        noop.launch("elementwise.cu", "add_forward", 1, 256, [a, a.copy(), np.empty_like(a), I32(8)])
    assert checks == ["add_forward<float>"]   # the template's float32 instance
    noop.launch("elementwise.cu", "add_forward", 2, 256, [a, a, a, I32(8)])   # another grid: checked
    assert checks == ["add_forward<float>"] * 2


@pytest.mark.parametrize("bad, error, message", [
    (np.ones(16, np.float32)[::2], ValueError, "must be C-contiguous"),
    (np.ones(8, np.float64), TypeError, "must be a float32 array; received float64"),
    (3, TypeError, "must be a numpy.ndarray of float32"),
])
def test_a_cached_launch_still_refuses_other_kinds(noop, bad, error, message):
    a = np.ones(8, np.float32)
    noop.launch("elementwise.cu", "add_forward", 1, 256, [a, a, a, I32(8)])
    with pytest.raises(error, match=message):
        noop.launch("elementwise.cu", "add_forward", 1, 256, [a, bad, a, I32(8)])
    with pytest.raises(TypeError, match="'n' \\(int\\).*must be np.int32; received np.int64"):
        noop.launch("elementwise.cu", "add_forward", 1, 256, [a, a, a, np.int64(8)])


def test_a_list_grid_is_checked_each_time(noop):
    a = np.ones(8, np.float32)
    noop.launch("elementwise.cu", "add_forward", [1], [256], [a, a, a, I32(8)])
    with pytest.raises(ValueError, match="block \\(2048, 1, 1\\) exceeds CUDA"):
        noop.launch("elementwise.cu", "add_forward", [1], [2048], [a, a, a, I32(8)])


def test_a_shipped_source_is_read_once_per_process(monkeypatch):
    first = kernel_source.load("elementwise.cu")
    monkeypatch.setattr(kernel_source, "locate", lambda f: pytest.fail("located again"))
    assert kernel_source.load("elementwise.cu") is first


def test_run_counts_and_packs_python_scalars(noop):
    a = np.ones(8, np.float32)
    before = launch.launch_count()
    launch.run("elementwise.cu", "add_forward", 1, 256, a, a, a, 8)
    assert launch.launch_count() == before + 1
    assert launch.pack(8, 0.5, a)[:2] == [I32(8), np.float32(0.5)]
    assert type(launch.pack(8)[0]) is np.int32 and type(launch.pack(0.5)[0]) is np.float32
    with pytest.raises(TypeError, match="pass a flag to a kernel as an int"):
        launch.pack(True)
    with pytest.raises(OverflowError, match="does not fit a kernel's 32-bit int"):
        launch.pack(2 ** 31)


def test_a_plan_is_computed_once_per_arguments():
    calls = []

    @launch.plan
    def geometry(shape, stride):
        calls.append(shape)
        return tuple(s // stride for s in shape)

    assert geometry((8, 4), 2) == geometry((8, 4), 2) == (4, 2)
    assert geometry((6, 4), 2) == (3, 2) and calls == [(8, 4), (6, 4)]
