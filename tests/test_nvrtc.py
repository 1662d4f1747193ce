"""Every kernel compiles with NVRTC (no GPU needed) for sm_70, sm_80 and sm_90 without
spilling registers, each for that very architecture (sm_70 by CUDA 12's NVRTC, which CUDA 13's
no longer targets), and ptxas's resource report is read correctly.

Without the NVRTC an architecture needs, its tests fail in CI and are skipped elsewhere. The
compile checks run in CI's numpy pass only (what NVRTC makes does not depend on GPUNET_BACKEND;
the cudasim pass would compile every kernel for three architectures a second time)."""
import importlib.metadata
import os
import pathlib
import struct
import types

import pytest

from gpunet.backend import kernel_source, nvrtc

TEST_KERNELS = pathlib.Path(__file__).resolve().parent / "kernels"
DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "kernels.md"
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


def require(*archs):
    """Fail in CI, skip elsewhere, unless an installed NVRTC targets each of ``archs``."""
    try:
        for arch in archs:
            nvrtc.compiler_for(arch)
    except Exception as exc:   # RuntimeError: none targets it; OSError: a library that will not load
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def cubin_arch(cubin):
    """The SM a cubin was built for, from its ELF header's e_flags (ABI 7: bits 0-7, ABI 8: bits 8-15)."""
    assert cubin[:4] == b"\x7fELF" and cubin[4] == 2, "not a 64-bit ELF"
    flags, abi = struct.unpack_from("<I", cubin, 48)[0], cubin[8]
    return f"sm_{flags & 0xFF if abi < 8 else (flags >> 8) & 0xFF}"


@pytest.mark.parametrize("arch", nvrtc.ARCHS)
@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_kernel_compiles_without_spills(path, arch):
    if os.environ.get("GPUNET_BACKEND", "numpy") != "numpy":   # CI's second pass (cudasim)
        pytest.skip("NVRTC's output does not depend on the backend: the compile checks run in the numpy pass")
    if arch not in nvrtc.archs_for(path):
        pytest.skip(f"{path.name} is tensor-core code (mma.sync tf32/bf16, cp.async: sm_80 and newer); "
                    f"not built for {arch}, never launched below sm_80")
    require(arch)
    source = kernel_source.load(path)
    cubin, log = nvrtc.compile_source(source.text, path.name, arch, [path.parent])
    assert cubin_arch(cubin) == arch
    functions = nvrtc.parse_ptxas(log)
    entries = {f.name for f in functions.values() if f.entry}
    assert set(source.kernels) <= entries, f"ptxas reported no entry for {set(source.kernels) - entries}"
    assert all(f"entry function '{k}' for '{arch}'" in log for k in source.kernels), f"not built for {arch}"
    spilling = [f"{f.name}: {f.spill_stores} B stored, {f.spill_loads} B loaded"
                for f in functions.values() if f.spill_stores or f.spill_loads]
    assert not spilling, f"{path.name} spills registers on {arch}: {'; '.join(spilling)}"
    if path.parent.name == "kernels" and path.parent.parent == DOCS.parent.parent:
        _matches_docs(path.name, arch, {f.name: f for f in functions.values() if f.entry})


def _matches_docs(file, arch, entries):
    """docs/kernels.md holds what this NVRTC reports, when it was made with this NVRTC's version
    (another version may allocate differently): a kernel edited without regenerating it fails."""
    version = nvrtc.compiler_for(arch).version_string
    rows = {}
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 10 and cells[0] == file and cells[2] == arch and cells[3] == version:
            rows[cells[1].strip("`")] = (int(cells[4]), int(cells[5]))
    if not rows:
        return   # the table was made with another NVRTC version
    stale = {name: (rows.get(name), (f.registers, f.smem)) for name, f in entries.items()
             if rows.get(name) != (f.registers, f.smem)}
    assert not stale, (f"docs/kernels.md is out of date for {file} on {arch} ((registers, smem) in the docs, "
                       f"then compiled): {stale}; run python -m gpunet.backend.nvrtc --write docs/kernels.md")


def test_only_tensor_core_sources_skip_sm_70():
    skipped = sorted(p.name for p in SOURCES if "sm_70" not in nvrtc.archs_for(p))
    assert "tc_gemm.cu" in skipped
    assert skipped == sorted([p.name for p in SOURCES if p.name.startswith("tc_")] + ["tensorcore.cu"])
    assert all(nvrtc.archs_for(p)[-2:] == ("sm_80", "sm_90") for p in SOURCES)


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
    require("sm_90")
    with pytest.raises(nvrtc.CompileError, match=r"(?s)NVRTC \d+\.\d+ could not compile broken.cu for sm_90"
                                                 r".*broken.cu\(2\).*undeclared"):
        nvrtc.compile_source('extern "C" __global__ void k(float* y) {\n  y[0] = undeclared;\n}\n',
                             "broken.cu", "sm_90")


def test_sm_70_is_compiled_for_sm_70_by_cuda_12_nvrtc():
    require("sm_70")
    compiler = nvrtc.compiler_for("sm_70")
    assert compiler.version[0] == 12 and 70 in compiler.archs
    assert compiler.distribution == "nvidia-cuda-nvrtc-cu12"
    cubin, log = nvrtc.compile_source('extern "C" __global__ void k(float* y) { y[0] = 1.0f; }', "k.cu", "sm_70")
    assert "Compiling entry function 'k' for 'sm_70'" in log
    assert cubin_arch(cubin) == "sm_70"


def test_libraries_come_from_the_installed_packages():
    require(*nvrtc.ARCHS)
    for compiler in nvrtc.compilers():
        files = importlib.metadata.distribution(compiler.distribution).files
        assert any(compiler.path.samefile(f.locate()) for f in files if f.name == compiler.path.name), compiler
        assert compiler.archs and compiler.version >= (12, 0)


def fake(version, archs, name):
    return types.SimpleNamespace(version=version, version_string="%d.%d" % version, archs=archs, distribution=name)


CUDA_12 = fake((12, 9), (50, 60, 70, 75, 80, 90, 120), "nvidia-cuda-nvrtc-cu12")
CUDA_13 = fake((13, 5), (75, 80, 90, 100, 120), "nvidia-cuda-nvrtc")


def test_each_arch_takes_the_newest_nvrtc_that_targets_it(monkeypatch):
    monkeypatch.setattr(nvrtc, "compilers", lambda: (CUDA_13, CUDA_12))
    assert [nvrtc.compiler_for(a) for a in ("sm_70", "sm_80", "sm_90")] == [CUDA_12, CUDA_13, CUDA_13]


def test_no_silent_fallback_when_cuda_12_nvrtc_is_missing(monkeypatch):
    monkeypatch.setattr(nvrtc, "compilers", lambda: (CUDA_13,))
    assert not nvrtc.available("sm_70") and nvrtc.available("sm_80")
    with pytest.raises(RuntimeError, match=r"No installed NVRTC targets sm_70 \(NVRTC 13.5 .*"
                                           r"pip install nvidia-cuda-nvrtc-cu12"):
        nvrtc.compiler_for("sm_70")
    monkeypatch.setattr(nvrtc, "compilers", lambda: ())
    with pytest.raises(RuntimeError, match="no NVRTC is installed.*pip install nvidia-cuda-nvrtc;"):
        nvrtc.compiler_for("sm_90")


def test_missing_nvrtc_fails_in_ci(monkeypatch):
    monkeypatch.setattr(nvrtc, "compilers", lambda: (CUDA_13,))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="pip install nvidia-cuda-nvrtc-cu12"):
        require("sm_70")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require("sm_70")


def test_write_entry_point(tmp_path):
    require(*nvrtc.ARCHS)
    out = tmp_path / "kernels.md"
    nvrtc.main(["--write", str(out), str(kernel_source.locate("elementwise.cu"))])
    text = out.read_text()
    for arch in nvrtc.ARCHS:
        version = nvrtc.compiler_for(arch).version_string
        assert f"| elementwise.cu | `add_forward<float>` | {arch} | {version} |" in text
        assert f"NVRTC {version} for " in text
    assert "| NVRTC | registers | smem (B) |" in text
