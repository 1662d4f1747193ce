"""The kernel backends' launch layer: cudasim runs real CUDA C correctly, catches races,
out-of-bounds writes and deadlocks, checks arguments, and caches its builds."""
import os
import pathlib
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from gpunet import backend
from gpunet.backend import cuda, cudasim, cudasim_build, cupy_device, kernel_source
from gpunet.primitives import launch

from checks import assert_close

KERNELS = pathlib.Path(__file__).parent / "kernels"
SGEMM, REDUCE, FAULTS = KERNELS / "sgemm.cu", KERNELS / "reduce.cu", KERNELS / "faults.cu"
I32 = np.int32


@pytest.fixture(params=["threads", "fibers"])
def sim(request):
    """A cudasim backend running CUDA threads on OS threads, then on fibers."""
    be = cudasim.CudasimBackend()
    be.contexts = request.param
    return be


def sgemm(be, a, b):
    m, k = a.shape
    n = b.shape[1]
    c = be.empty((m, n))
    be.launch(SGEMM, "sgemm_tiled", grid=launch.grid_for((n, m), (16, 16)), block=(16, 16),
              args=[be.asarray(a), be.asarray(b), c, I32(m), I32(n), I32(k)])
    return be.to_numpy(c)


def block_sums(x, threads):
    return np.array([x[i:i + threads].sum(dtype=np.float64) for i in range(0, len(x), threads)])


# -- correct kernels give NumPy's answers ---------------------------------------------------
@pytest.mark.parametrize("m, n, k", [(37, 29, 45), (1, 17, 3), (16, 48, 16), (33, 1, 70)])
def test_tiled_sgemm_matches_numpy(kernel_backend, rng, m, n, k):
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    with backend.use(kernel_backend) as be:
        assert_close(sgemm(be, a, b), a @ b, rtol=1e-5, atol=1e-5, what=f"sgemm {m}x{k} @ {k}x{n}")


def test_tiled_sgemm_on_each_context(sim, rng):
    a = rng.standard_normal((37, 45), dtype=np.float32)
    b = rng.standard_normal((45, 29), dtype=np.float32)
    assert_close(sgemm(sim, a, b), a @ b, rtol=1e-5, atol=1e-5, what=f"sgemm on {sim.contexts}")


@pytest.mark.parametrize("kernel", ["sum_shared", "sum_shuffle"])
@pytest.mark.parametrize("n, threads", [(1000, 256), (1, 256), (768, 256), (100, 64), (2048, 1024)])
def test_block_reductions_match_numpy(kernel_backend, rng, kernel, n, threads):
    x = rng.standard_normal(n).astype(np.float32)
    with backend.use(kernel_backend) as be:
        partial = be.empty(launch.blocks_for(n, threads))
        be.launch(REDUCE, kernel, grid=partial.size, block=threads, args=[be.asarray(x), partial, I32(n)])
        assert_close(be.to_numpy(partial), block_sums(x, threads), rtol=1e-5, atol=1e-5, what=kernel)


def test_reductions_on_both_contexts(sim, rng):
    x = rng.standard_normal(1000).astype(np.float32)
    for kernel in ("sum_shared", "sum_shuffle"):
        partial = sim.empty(4)
        sim.launch(REDUCE, kernel, grid=4, block=256, args=[x, partial, I32(1000)])
        assert_close(partial, block_sums(x, 256), rtol=1e-5, atol=1e-5, what=f"{kernel} on {sim.contexts}")


def test_atomic_add_on_float_and_int(kernel_backend, rng):
    x = rng.standard_normal(1000).astype(np.float32)
    labels = rng.integers(0, 7, size=1000).astype(np.int32)
    with backend.use(kernel_backend) as be:
        total = be.zeros(1)
        be.launch(REDUCE, "sum_atomic", grid=4, block=256, args=[be.asarray(x), total, I32(1000)])
        counts = be.zeros(7, np.int32)
        be.launch(REDUCE, "histogram", grid=4, block=256, args=[be.asarray(labels, np.int32), counts, I32(1000)])
        assert_close(be.to_numpy(total)[0], x.sum(dtype=np.float64), rtol=1e-4, atol=1e-4, what="atomicAdd float")
        np.testing.assert_array_equal(be.to_numpy(counts), np.bincount(labels, minlength=7))


def test_warp_operations_follow_cuda(kernel_backend, rng):
    x = rng.integers(-50, 50, size=64).astype(np.int32)
    lane = np.arange(64) % 32
    base = np.arange(64) - lane
    expected = {
        "idx": x[base + 3],
        "up": np.where(lane % 16 >= 2, x[np.arange(64) - 2], x),          # width 16
        "down": np.where(lane + 5 < 32, x[np.minimum(np.arange(64) + 5, 63)], x),
        "xr": x[np.arange(64) ^ 1],
    }
    bits = (x % 3 == 0).astype(np.uint64) << lane.astype(np.uint64)
    expected["ballot"] = np.repeat([bits[:32].sum(), bits[32:].sum()], 32).astype(np.uint32)
    with backend.use(kernel_backend) as be:
        outs = {name: be.empty(64, np.uint32 if name == "ballot" else np.int32) for name in expected}
        be.launch(REDUCE, "warp_ops", grid=1, block=64, args=[be.asarray(x, np.int32), *outs.values()])
        for name, want in expected.items():
            np.testing.assert_array_equal(be.to_numpy(outs[name]), want, err_msg=name)


def test_in_place_launch_sees_one_buffer(sim, rng):
    a = rng.standard_normal(300).astype(np.float32)
    b = rng.standard_normal(300).astype(np.float32)
    expected = a + b
    sim.launch("elementwise.cu", "add_forward", grid=2, block=256, args=[a, b, a, I32(300)])
    assert_close(a, expected, what="a += b in place")


# -- planted bugs are caught -----------------------------------------------------------------
@pytest.mark.parametrize("kernel, side, offset", [("write_past_end", "past its end", 100),
                                                  ("write_before_start", "before its start", -1)])
def test_out_of_bounds_write_is_caught(kernel, side, offset):
    be = cudasim.CudasimBackend()
    out = be.zeros(100)
    with pytest.raises(IndexError, match=rf"'{kernel}'.*argument 0 'out'.*element offset {offset}, {side}"):
        be.launch(FAULTS, kernel, grid=4, block=32, args=[out, I32(100)])
    assert not out.any(), "a launch that failed its bounds check must not copy results back"


@pytest.mark.parametrize("run", range(3))
def test_missing_syncthreads_fails_every_run(sim, rng, run):
    x = rng.standard_normal(1024).astype(np.float32)
    partial = sim.empty(4)
    sim.launch(FAULTS, "sum_missing_sync", grid=4, block=256, args=[x, partial, I32(1024)])
    assert not np.allclose(partial, block_sums(x, 256), atol=1e-3), "a racy tree reduction went unnoticed"
    y = sim.empty(1024)
    sim.launch(FAULTS, "scale_missing_sync", grid=4, block=256, args=[x, y, I32(1024)])
    factor = np.repeat(2.0 + np.arange(4), 256).astype(np.float32)
    assert not np.allclose(y, x * factor), "a racy shared-memory broadcast went unnoticed"


@pytest.mark.parametrize("kernel, message", [
    ("divergent_barrier", r"threads 0-15: waiting at __syncthreads \(faults.cu:\d+\); threads 16-63: returned"),
    ("two_barriers", r"threads 0, 2, 4, .*\(32 threads\): waiting at __syncthreads \(faults.cu:\d+\); threads 1, 3"),
    ("divergent_shuffle", r"threads 0-15, 32-47: waiting in __shfl_down_sync \(mask 0xffffffff\); threads 16-31, 48-63: returned"),
])
def test_deadlock_raises_and_the_next_launch_works(sim, rng, kernel, message):
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=rf"kernel '{kernel}', block \(0, 0, 0\): deadlock: {message}"):
        sim.launch(FAULTS, kernel, grid=2, block=64, args=[sim.zeros(64)])
    assert time.perf_counter() - start < 5
    x = rng.standard_normal(500).astype(np.float32)
    partial = sim.empty(2)
    sim.launch(REDUCE, "sum_shared", grid=2, block=256, args=[x, partial, I32(500)])
    assert_close(partial, block_sums(x, 256), rtol=1e-5, atol=1e-5, what="launch after a deadlock")


def test_argument_errors_are_python_errors():
    be = cudasim.CudasimBackend()
    a, out = np.ones(8, np.float32), np.zeros(8, np.float32)
    cases = [
        ([a, a, out], TypeError, r"add_forward<float>\(const float\* a, const float\* b, float\* out, int n\).*takes 4 arguments; received 3"),
        ([a, a, out, 8], TypeError, r"Argument 3 'n' \(int\).*must be np.int32; received int 8"),
        ([a, a, out, np.int64(8)], TypeError, r"'n' \(int\).*must be np.int32; received np.int64"),
        ([a, a.astype(np.float64), out, I32(8)], TypeError, r"Argument 1 'b' \(const float\*\).*float32 array; received float64"),
        ([a, [1.0] * 8, out, I32(8)], TypeError, r"Argument 1 'b'.*must be a numpy.ndarray of float32; received builtins.list"),
        ([np.ones(16, np.float32)[::2], a, out, I32(8)], ValueError, r"'a'.*must be C-contiguous"),
        ([a, a, np.zeros(8, np.float32)[::-1], I32(8)], ValueError, r"'out'.*must be C-contiguous"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            be.launch("elementwise.cu", "add_forward", grid=1, block=32, args=args)
    frozen = np.zeros(8, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="'out'.*read-only"):
        be.launch("elementwise.cu", "add_forward", grid=1, block=32, args=[a, a, frozen, I32(8)])


@pytest.mark.parametrize("grid, block, message", [
    (0, 32, "grid must be a positive int"), (1, (32, 32, 2), "2048 threads"), (1, (1, 1, 65), "exceeds"),
    ((1, 2, 3, 4), 32, "1 to 3"), (1.5, 32, "grid must be"), (1, "32", "block must be"),
])
def test_bad_launch_shapes(grid, block, message):
    be = cudasim.CudasimBackend()
    with pytest.raises(ValueError, match=message):
        be.launch("elementwise.cu", "add_forward", grid=grid, block=block,
                  args=[np.ones(1, np.float32)] * 3 + [I32(1)])


def test_unknown_kernel_and_file():
    be = cudasim.CudasimBackend()
    with pytest.raises(LookupError, match="No kernel 'nope' in .*elementwise.cu: it defines .*add_forward"):
        be.launch("elementwise.cu", "nope", grid=1, block=1, args=[])
    with pytest.raises(FileNotFoundError, match="'missing.cu' not found"):
        be.launch("missing.cu", "nope", grid=1, block=1, args=[])


def test_bad_settings_are_refused():
    be = cudasim.CudasimBackend()
    be.thread_order = "random"
    with pytest.raises(ValueError, match="thread_order must be one of alternate, ascending, descending"):
        be.launch("elementwise.cu", "add_forward", grid=1, block=1, args=[np.ones(1, np.float32)] * 3 + [I32(1)])


def test_empty_marks_unwritten_elements():
    be = cudasim.CudasimBackend()
    assert np.isnan(be.empty((3, 4))).all()
    assert (be.empty(5, np.int32) == 0x7FBADBAD).all()


# -- builds: cached, rebuilt on change, clear errors ----------------------------------------
def _copy_elementwise(folder):
    """kernels/elementwise.cu and the one header it includes (dtype.cuh), copied into ``folder``."""
    for name in ("elementwise.cu", "dtype.cuh"):
        (folder / name).write_text(kernel_source.locate(name).read_text())
    return folder / "elementwise.cu"


def test_second_build_is_a_cache_hit(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUNET_CACHE_DIR", str(tmp_path / "cache"))
    copy = _copy_elementwise(tmp_path)
    first = cudasim_build.build_kernels(kernel_source.load(copy))
    built, mtime = len(cudasim_build.builds), first.stat().st_mtime_ns
    again = cudasim_build.build_kernels(kernel_source.load(copy))
    assert again == first and len(cudasim_build.builds) == built and first.stat().st_mtime_ns == mtime
    (tmp_path / "elsewhere").mkdir()   # the key is the content, not the folder
    moved = _copy_elementwise(tmp_path / "elsewhere")
    assert cudasim_build.build_kernels(kernel_source.load(moved)) == first
    assert len(cudasim_build.builds) == built
    copy.write_text(copy.read_text() + "\n// an edit\n")
    edited = cudasim_build.build_kernels(kernel_source.load(copy))
    assert edited != first and len(cudasim_build.builds) == built + 1
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([first.name, edited.name])


def test_two_processes_building_at_once_share_one_library(tmp_path):
    copy = _copy_elementwise(tmp_path)
    script = ("import sys; from gpunet.backend import cudasim_build, kernel_source; "
              "print(cudasim_build.build_kernels(kernel_source.load(sys.argv[1])))")
    root = pathlib.Path(__file__).resolve().parent.parent
    env = {**os.environ, "GPUNET_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    builders = [subprocess.Popen([sys.executable, "-c", script, str(copy)], env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(b.communicate(timeout=300), b.returncode) for b in builders]
    assert [code for _, code in results] == [0, 0], [err for (_, err), _ in results]
    paths = {out.strip().splitlines()[-1] for (out, _), _ in results}
    assert len(paths) == 1
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [pathlib.Path(paths.pop()).name]


def test_compile_error_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUNET_CACHE_DIR", str(tmp_path / "cache"))
    broken = tmp_path / "broken.cu"
    broken.write_text('extern "C" __global__ void k(float* y) {\n    y[0] = undeclared;\n}\n')
    with pytest.raises(RuntimeError, match=r"(?s)could not compile .*broken.cu.*broken.cu:2.*undeclared"):
        cudasim.CudasimBackend().launch(broken, "k", grid=1, block=1, args=[np.zeros(1, np.float32)])


def test_missing_compiler_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-gpunet")
    assert not cudasim.compiler_available()
    with pytest.raises(RuntimeError, match="'no-such-compiler-gpunet' was not found on PATH.*apt-get install g\\+\\+"):
        cudasim.CudasimBackend()


# -- cost: barrier-free kernels never switch; barriers cost microseconds ---------------------
def test_kernel_without_barriers_runs_on_one_context(sim):
    a = np.ones(1000, np.float32)
    before = cudasim.switch_count()
    sim.launch("elementwise.cu", "add_forward", grid=4, block=256, args=[a, a, sim.empty(1000), I32(1000)])
    assert cudasim.switch_count() - before == 2     # into the pool and back


def test_hundred_blocks_with_two_barriers_take_milliseconds(sim, rng):
    a = rng.standard_normal((160, 16), dtype=np.float32)
    b = rng.standard_normal((16, 160), dtype=np.float32)
    sgemm(sim, a, b)
    before, start = cudasim.switch_count(), time.perf_counter()
    c = sgemm(sim, a, b)                       # 10 x 10 blocks of 256 threads, 2 barriers each
    seconds = time.perf_counter() - start
    switches = cudasim.switch_count() - before
    print(f"cudasim {sim.contexts}: 100 blocks x 256 threads x 2 barriers: {seconds * 1e3:.1f} ms, "
          f"{switches} switches, {seconds / switches * 1e6:.2f} us each")
    assert_close(c, a @ b, rtol=1e-5, atol=1e-5)
    # The switch count is the deterministic bound; the wall time is printed, never asserted
    # (machines here are shared: a timed assertion fails under load, not for a slow cudasim).
    assert switches <= 100 * 256 * 3 + 2


# -- the cuda backend -------------------------------------------------------------------------
def test_cuda_backend_without_a_gpu_says_why():
    if cupy_device.usable():
        pytest.skip("a GPU is visible here, so the cuda backend constructs")
    with pytest.raises(RuntimeError, match="The cuda backend needs CuPy and a visible GPU"):
        backend.set_backend("cuda")


def fake_cupy(calls, compile_log=None):
    """Just enough of CuPy to run CudaBackend.launch without a GPU, recording what it is asked."""
    class CompileException(Exception):
        pass

    class RawModule:
        def __init__(self, code, options, name_expressions=()):
            calls.append(("module", options))

        def get_function(self, name):
            if compile_log:
                raise CompileException(compile_log)
            return lambda grid, block, args: calls.append(("launch", name, grid, block, args))

    device = types.SimpleNamespace(id=0, compute_capability="120")
    compiler = types.SimpleNamespace(CompileException=CompileException)
    return types.SimpleNamespace(ndarray=np.ndarray, RawModule=RawModule,
                                 cuda=types.SimpleNamespace(Device=lambda: device, compiler=compiler))


def test_cuda_backend_launches_through_rawmodule(monkeypatch):
    calls = []
    monkeypatch.setattr(cupy_device, "cupy", lambda: fake_cupy(calls))
    monkeypatch.setattr(cuda, "_modules", {})
    be, a = cuda.CudaBackend(), np.ones(3, np.float32)
    with pytest.raises(TypeError, match="'n' \\(int\\).*must be np.int32"):
        be.launch("elementwise.cu", "add_forward", grid=1, block=256, args=[a, a, a, 3])
    assert calls == []
    for _ in range(2):
        be.launch("elementwise.cu", "add_forward", grid=2, block=(256,), args=[a, a, a, I32(3)])
    (_, options), launch_call = calls[0], calls[1]
    assert "-std=c++17" in options and "--pre-include=nvrtc_prelude.h" in options
    assert launch_call[:4] == ("launch", "add_forward<float>", (2, 1, 1), (256, 1, 1)) and len(launch_call[4]) == 4
    assert [c[0] for c in calls] == ["module", "launch", "launch"], "one RawModule per file"


def test_cuda_backend_explains_an_unsupported_gpu(monkeypatch):
    log = "nvrtc: error: invalid value for --gpu-architecture (-arch)"
    monkeypatch.setattr(cupy_device, "cupy", lambda: fake_cupy([], compile_log=log))
    monkeypatch.setattr(cuda, "_modules", {})
    a = np.ones(3, np.float32)
    with pytest.raises(RuntimeError, match=r"cannot compile elementwise.cu for this GPU \(compute capability 120\)"):
        cuda.CudaBackend().launch("elementwise.cu", "add_forward", grid=1, block=32, args=[a, a, a, I32(3)])


def test_cuda_and_cudasim_agree(rng):
    if not cupy_device.usable():
        pytest.skip(f"the cuda half needs a GPU: {cupy_device.why_unusable()}")
    a = rng.standard_normal((37, 45), dtype=np.float32)
    b = rng.standard_normal((45, 29), dtype=np.float32)
    with backend.use("cuda") as gpu:
        on_gpu = sgemm(gpu, a, b)
    assert_close(on_gpu, sgemm(cudasim.CudasimBackend(), a, b), rtol=1e-5, atol=1e-5, what="cuda vs cudasim")


# -- sources and the op-layer helpers ----------------------------------------------------------
def test_signatures_are_parsed_from_the_source():
    text = '''
    // extern "C" __global__ void commented_out(int n) {}
    #define BLOCK 128
    extern "C" __global__ void __launch_bounds__(BLOCK * 2)
    first(const float* __restrict__ x, float *y, unsigned int n, long long big, const int) { }
    extern "C" __global__ void second(void) { }
    __global__ void not_extern_c(float* y) { }
    '''
    kernels = kernel_source.parse_kernels(text)
    assert sorted(kernels) == ["first", "second"]
    first = kernels["first"]
    assert str(first) == "first(const float* x, float* y, unsigned int n, long long big, int arg4)"
    assert [p.dtype for p in first.params] == [np.float32, np.float32, np.uint32, np.int64, np.int32]
    assert [p.pointer for p in first.params] == [True, True, False, False, False]
    assert first.params[0].const and not first.params[1].const
    assert first.launch_bounds == 256 and kernels["second"].params == ()


def test_launch_bounds_may_name_a_macro_of_an_included_header(tmp_path):
    """tc_gemm.cu's kernels declare __launch_bounds__(TC_THREADS), defined in tc_gemm.cuh: the
    block size docs/kernels.md computes occupancy for, and the one cudasim holds launches to."""
    (tmp_path / "inner.cuh").write_text("#define THREADS 96\n")
    (tmp_path / "outer.cuh").write_text('#include "inner.cuh"\n#define BOUND (THREADS + 32)\n')
    (tmp_path / "k.cu").write_text('#include "outer.cuh"\n'
                                   'extern "C" __global__ void __launch_bounds__(BOUND) k(float* y) { }\n')
    assert kernel_source.load(str(tmp_path / "k.cu")).kernels["k"].launch_bounds == 128
    assert kernel_source.load("tc_gemm.cu").kernels["tc_gemm_bf16_nt_128x128"].launch_bounds == 128
    assert kernel_source.load("tc_conv.cu").kernels["tc_conv2d_forward_tf32"].launch_bounds == 128


def test_kernels_dir_is_the_repositorys():
    assert kernel_source.kernels_dir() == pathlib.Path(__file__).resolve().parent.parent / "kernels"
    assert kernel_source.locate("elementwise.cu").name == "elementwise.cu"
    assert "add_forward<float>" in kernel_source.load("elementwise.cu").kernels


def test_launch_helpers():
    assert launch.blocks_for(0) == 1 and launch.blocks_for(257) == 2 and launch.blocks_for(10 ** 6, cap=64) == 64
    assert launch.grid_for((33, 16, 1), (16, 16, 1)) == (3, 1, 1)
    packed = launch.pack(3, 0.5, np.uint32(7))
    assert [type(v) for v in packed] == [np.int32, np.float32, np.uint32]
    with pytest.raises(OverflowError, match="does not fit"):
        launch.i32(2 ** 31)
    # A grid-stride loop's last step (i += blocks * threads) must not pass 2**31 - 1 either.
    largest = 2 ** 31 - 1 - 2048 * 256
    assert launch.blocks_for(largest, cap=2048) == 2048
    with pytest.raises(OverflowError, match="too many for a kernel that indexes with 32-bit ints"):
        launch.blocks_for(largest + 1, cap=2048)
    with pytest.raises(TypeError, match="flag"):
        launch.pack(True)


def test_run_through_the_active_backend(rng):
    a = rng.standard_normal(300).astype(np.float32)
    b = rng.standard_normal(300).astype(np.float32)
    with backend.use("cudasim"):
        a_dev, b_dev = launch.array(a), launch.array(b)
        out = launch.empty(a.shape)
        launch.run("elementwise.cu", "add_forward", launch.blocks_for(a.size), launch.THREADS, a_dev, b_dev, out, a.size)
        assert_close(backend.current().to_numpy(out), a + b, what="add_forward via launch.run")


def test_math_and_integer_intrinsics_match_numpy(kernel_backend, rng):
    x = rng.uniform(-3, 3, size=50).astype(np.float32)
    x[:3] = [0.0, -0.0, 1.5]
    ax = np.abs(x)
    expected = np.stack([np.exp(x), np.log(ax + 1), np.sqrt(ax), 1 / np.sqrt(ax + 1),
                         np.maximum(x, 0.25) + np.minimum(x, -0.25), np.tanh(x),
                         np.exp(x) + np.log(ax + 2), x / 3, ax,
                         np.where(x > 0, np.inf, -np.finfo(np.float32).max),
                         np.maximum(x, 0.5) - np.minimum(x, -0.5), np.clip(x, 0, 1)], axis=1)
    a = rng.integers(-20, 20, size=50).astype(np.int32)
    u = a.astype(np.uint32)
    popc = np.array([bin(int(v)).count("1") for v in u])
    ffs = np.array([(int(v) & -int(v)).bit_length() for v in a])
    clz = np.array([32 - int(v).bit_length() for v in u])
    int_expected = np.stack([np.minimum(a, 3) + np.maximum(a, -3), np.minimum(a * a, 100), popc + ffs, clz], axis=1)
    with backend.use(kernel_backend) as be:
        out = be.empty((50, 12))
        be.launch(KERNELS / "intrinsics.cu", "float_ops", grid=2, block=32, args=[be.asarray(x), out, I32(50)])
        ints, top = be.empty((50, 4), np.int32), be.asarray(np.array([-100]), np.int32)
        be.launch(KERNELS / "intrinsics.cu", "int_ops", grid=2, block=32, args=[be.asarray(a, np.int32), ints, top, I32(50)])
        got, finite = be.to_numpy(out), np.arange(12) != 9
        np.testing.assert_array_equal(got[:, 9], expected[:, 9].astype(np.float32))   # INFINITY, -FLT_MAX
        assert_close(got[:, finite], expected[:, finite].astype(np.float32), rtol=2e-6, atol=1e-6,
                     what="float intrinsics")
        np.testing.assert_array_equal(be.to_numpy(ints), int_expected)
        assert be.to_numpy(top)[0] == a.max()
