"""Every kernel compiles with NVRTC (no GPU needed) for sm_70, sm_80 and sm_90 without
spilling registers, and ptxas's resource report is read correctly."""
import os
import pathlib

import pytest

from gpunet.backend import kernel_source, nvrtc

TEST_KERNELS = pathlib.Path(__file__).resolve().parent / "kernels"
SOURCES = kernel_source.all_sources() + kernel_source.all_sources(TEST_KERNELS)

LOG = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'conv2d_forward' for 'sm_90'
ptxas info    : Function properties for conv2d_forward
ptxas         .     16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 40 registers, used 1 barriers, 2048 bytes smem, 380 bytes cmem[0]
ptxas info    : Function properties for _Z6helperf
ptxas         .     160 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Compiling entry function 'add_forward' for 'sm_90'
ptxas info    : Function properties for add_forward
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 18 registers, 380 bytes cmem[0]
"""


@pytest.fixture(autouse=True)
def _nvrtc_installed():
    if not nvrtc.available():
        why = "NVRTC is not installed: pip install nvidia-cuda-nvrtc cuda-bindings (gpunet's test extra)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


@pytest.mark.parametrize("arch", nvrtc.ARCHS)
@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_kernel_compiles_without_spills(path, arch):
    source = kernel_source.load(path)
    _, log = nvrtc.compile_source(source.text, path.name, nvrtc.resolve_arch(arch), [path.parent])
    functions = nvrtc.parse_ptxas(log)
    entries = {f.name for f in functions.values() if f.entry}
    assert set(source.kernels) <= entries, f"ptxas reported no entry for {set(source.kernels) - entries}"
    spilling = [f"{f.name}: {f.spill_stores} B stored, {f.spill_loads} B loaded"
                for f in functions.values() if f.spill_stores or f.spill_loads]
    assert not spilling, f"{path.name} spills registers on {arch}: {'; '.join(spilling)}"


def test_ptxas_report_is_parsed():
    functions = nvrtc.parse_ptxas(LOG)
    conv, helper, add = functions["conv2d_forward"], functions["_Z6helperf"], functions["add_forward"]
    assert (conv.entry, conv.registers, conv.barriers, conv.smem) == (True, 40, 1, 2048)
    assert (conv.stack, conv.spill_stores, conv.spill_loads) == (16, 8, 4)
    assert not helper.entry and helper.stack == 160
    assert (add.registers, add.barriers, add.smem, add.spill_stores) == (18, 0, 0, 0)


@pytest.mark.parametrize("arch, registers, smem, block, expected", [
    ("sm_80", 32, 0, 256, 1.0),
    ("sm_80", 64, 0, 256, 0.5),         # 2048 registers a warp: 32 warps fit
    ("sm_90", 32, 48 * 1024, 256, 0.5),  # 49 KiB a block with the reserved 1 KiB: 4 blocks
    ("sm_70", 32, 0, 96, 63 / 64),       # 3 warps a block: 21 blocks fill 63 of 64 warp slots
    ("sm_80", 255, 0, 1024, 0.0),        # does not fit: the launch would fail
])
def test_occupancy(arch, registers, smem, block, expected):
    assert nvrtc.occupancy(arch, registers, smem, block) == pytest.approx(expected, abs=0.02)


def test_compile_error_carries_the_log():
    with pytest.raises(nvrtc.CompileError, match=r"(?s)broken.cu for sm_90.*broken.cu\(2\).*undeclared"):
        nvrtc.compile_source('extern "C" __global__ void k(float* y) {\n  y[0] = undeclared;\n}\n',
                             "broken.cu", "sm_90")


def test_unsupported_arch_falls_forward():
    built_for = nvrtc.resolve_arch("sm_70")
    assert int(built_for.removeprefix("sm_")) in nvrtc.supported_archs()
    assert built_for in ("sm_70", "sm_75")


def test_write_entry_point(tmp_path):
    out = tmp_path / "kernels.md"
    nvrtc.main(["--write", str(out), str(kernel_source.locate("elementwise.cu"))])
    text = out.read_text()
    for arch in nvrtc.ARCHS:
        assert f"| elementwise.cu | `add_forward` | {arch}" in text
    assert "| registers | smem (B) |" in text
