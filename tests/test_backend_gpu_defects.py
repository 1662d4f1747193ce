"""GPU-only defects of the cuda backend, each shown where cudasim (or NVRTC alone) can show it
(issue 12, item 7): the binary cache key, flush-to-zero, __launch_bounds__, FMA contraction."""
import os
import pathlib

import numpy as np
import pytest

from gpunet import backend
from gpunet.backend import cuda, fma_report, kernel_source, nvrtc

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "kernels.md"

KERNEL = '''#include "helper.cuh"
extern "C" __global__ void __launch_bounds__(64) scale(const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] * FACTOR;
}
extern "C" __global__ void multiply_add(const float* a, const float* b, const float* c, float* out) {
    out[threadIdx.x] = a[threadIdx.x] * b[threadIdx.x] + c[threadIdx.x];
}
'''


def _kernel_folder(folder, factor):
    folder.mkdir()
    (folder / "k.cu").write_text(KERNEL)
    (folder / "helper.cuh").write_text(f"#define FACTOR {factor}\n")
    return folder / "k.cu"


def test_module_code_carries_a_digest_of_the_included_headers(tmp_path):
    """CuPy keys its binary cache on the code text: a header edit must change that text."""
    first = kernel_source.load(_kernel_folder(tmp_path / "v1", "2.0f"))
    second = kernel_source.load(_kernel_folder(tmp_path / "v2", "3.0f"))
    options = tuple(nvrtc.compile_options([first.path.parent]))
    assert first.text == second.text
    code_1, code_2 = cuda.module_code(first, options), cuda.module_code(second, options)
    assert code_1 != code_2 and code_1.startswith(first.text)
    assert cuda.module_code(first, options) == code_1                      # stable for the same files
    assert cuda.module_code(first, options + ("-DX",)) != code_1           # and keyed on the options


@pytest.mark.parametrize("contexts", ["threads", "fibers"])
def test_denormals_flush_to_zero_in_cudasim_kernels_as_with_ftz(contexts):
    """NVRTC compiles with -ftz=true (CuPy forces it): cudasim flushes denormal inputs and results
    too, and leaves the Python thread's NumPy with IEEE denormals afterwards."""
    assert "-ftz=true" in nvrtc.compile_options()
    with backend.use("cudasim") as sim:
        sim.contexts = contexts
        from gpunet.primitives import activation
        x = np.array([1e-40, -1e-40, 3e-39, 2e-38, 1.0], np.float32)
        y = sim.to_numpy(activation.relu_forward(sim.asarray(x)))
    assert y.tolist() == [0.0, 0.0, 0.0, np.float32(2e-38), 1.0]
    assert np.float32(1e-40) * np.float32(1.0) != 0    # the caller's floating-point mode is restored


def test_block_sizes_are_checked_against_launch_bounds(tmp_path):
    path = _kernel_folder(tmp_path / "bounds", "2.0f")
    with backend.use("cudasim") as sim:
        x, y = np.arange(64, dtype=np.float32), sim.empty(64)
        with pytest.raises(ValueError, match=r"'scale' declares __launch_bounds__\(64\); a block of "
                                             r"\(128, 1, 1\) has 128 threads"):
            sim.launch(str(path), "scale", 1, 128, [x, y, np.int32(64)])
        sim.launch(str(path), "scale", 1, 64, [x, y, np.int32(64)])
    assert np.array_equal(y, 2 * x)


def test_cudasim_does_not_contract_multiply_add(tmp_path):
    """a*b + c where one rounding (FMA) and two differ: cudasim rounds twice, like NumPy."""
    path = _kernel_folder(tmp_path / "fma", "2.0f")
    a = np.full(32, 1 + 2.0 ** -12, np.float32)
    c = np.full(32, -(1 + 2.0 ** -11), np.float32)
    with backend.use("cudasim") as sim:
        out = sim.empty(32)
        sim.launch(str(path), "multiply_add", 1, 32, [a, a, c, out])
    assert np.array_equal(out, a * a + c) and out[0] == 0.0       # fused would give 2**-24


def _require_nvrtc():
    if not nvrtc.available("sm_90"):
        message = "needs NVRTC for sm_90 (pip install nvidia-cuda-nvrtc)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)


def test_fma_report_finds_contractions_and_math_calls(tmp_path):
    _require_nvrtc()
    rows = {kernel: (fmas, math) for _, kernel, fmas, math in fma_report.report_file(
        _kernel_folder(tmp_path / "report", "2.0f"))}
    assert rows == {"scale": (0, "-"), "multiply_add": (1, "-")}
    activation = {kernel: (fmas, math) for _, kernel, fmas, math in fma_report.report_file("activation.cu")}
    assert activation["relu_forward<float>"] == (0, "-") and activation["sigmoid_forward<float>"][1] == "expf"


def test_docs_list_where_cuda_and_cudasim_may_differ():
    _require_nvrtc()
    text = DOCS.read_text()
    assert "## Where cuda and cudasim may differ in the last bit" in text and "-ftz=true" in text
    for file, kernel, fmas, math in fma_report.report_file("gemm.cu"):
        verdict = "may differ in the last bit" if fmas or math != "-" else "same operations"
        assert f"| {file} | `{kernel}` | {fmas} | {math} | {verdict} |" in text, \
            "docs/kernels.md is stale: run python -m gpunet.backend.nvrtc --write docs/kernels.md"
