"""The tensor-core kernels' machine code (benchmarks/sass.py): their main loops run HMMA, read
shared memory with LDSM, fill it with LDGSTS (cp.async), and hold no integer-division sequence;
the 128 x 128 tile kernels (`_128x128`: 64 x 64 warp tiles) run 4x the HMMA a k-tile at twice the
tensor-core FLOPs per shared-memory byte, with fewer integer instructions per HMMA; the 128 x 64
(64 x 32 warp tiles), 128 x 32 (32 x 32) and 256 x 32 (64 x 32, tc_conv_tall.cu) ones 2x, 1x and
2x, their operands on cp.async too.

Needs cuobjdump and nvdisasm (PyPI: nvidia-cuda-cuobjdump, nvidia-cuda-nvdisasm; the test extra
installs both) and NVRTC for sm_80 / sm_90: in CI a missing one fails, elsewhere it skips.

benchmarks/tc_loops.json (the cp.async loops tc_model.py reads) must match a fresh disassembly
within a tolerance that absorbs another NVRTC version, and tensorcore.py's Tile speeds the
speeds tc_model derives from it. Each (file, arch) is compiled and disassembled once (~7-12 s)
for all the tests here (sass.disassemble is cached)."""
import importlib.util
import os
import pathlib

import pytest

from gpunet.backend import nvrtc

from gpunet.primitives import tensorcore


def _benchmark(name):
    spec = importlib.util.spec_from_file_location(
        name, pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sass = _benchmark("sass")
tc_model = _benchmark("tc_model")
ALL_TOLERANCE, SPEED_TOLERANCE = 0.10, 0.15   # another NVRTC schedules differently; HMMA and LDGSTS stay exact

# Kernels whose both operands are float32 with m / n contiguous: ldmatrix cannot transpose 32-bit
# values, so their fragments come from 32-bit LDS (tc_gemm.cuh), not LDSM.
NO_LDSM = {"tc_gemm_tf32_tn", "tc_conv2d_backward_filter_tf32"}
BIG = "_128x128"
# per tile suffix: HMMA a k-tile (mma tiles x 2 k-steps), LDGSTS (cp.async chunks a thread, both
# operands), and the FLOP per shared-memory byte over the 64 x 64 tile's (8 TF32, 16 BF16)
TALL = "_256x32"
TILES = {"": (16, 4, 1), BIG: (64, 8, 2), "_128x64": (32, 6, 4 / 3), "_128x32": (16, 5, 1), TALL: (32, 9, 4 / 3)}


def suffix_of(name):
    return next((s for s in TILES if s and name.endswith(s)), "")


def numpy_pass_only():
    if os.environ.get("GPUNET_BACKEND", "numpy") != "numpy":   # CI's second pass (cudasim)
        pytest.skip("the machine-code checks do not depend on the backend: they run in the numpy pass")


def require(arch):
    numpy_pass_only()
    try:
        sass.tools()
        nvrtc.compiler_for(arch)
    except RuntimeError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("file", ["tc_gemm.cu", "tc_conv.cu", "tc_conv_tall.cu"])
def test_tensor_core_main_loops(file, arch):
    require(arch)
    kernels = {name: code for name, code in sass.disassemble(file, arch).items() if "sum_splits" not in name and "tc_finish" not in name}
    if file == "tc_conv_tall.cu":   # the 256 x 32 tile only: 3 products x 3 operand types
        assert len(kernels) == 9 and all(suffix_of(name) == TALL for name in kernels), sorted(kernels)
    else:
        assert len(kernels) >= 24 and sum(suffix_of(name) == "" for name in kernels) == len(kernels) // 4
    int_per_hmma = {}
    for name, code in kernels.items():
        hmma, chunks, smem_gain = TILES[suffix_of(name)]
        loops = sass.loops(code)
        assert len(loops) == 2, f"{name} on {arch}: expected the cp.async loop and the slow loop, found {loops}"
        assert all(loop.mix["HMMA"] == hmma and loop.mix["FFMA"] == 0 for loop in loops), (name, loops)
        assert not any(loop.division for loop in loops), f"{name} on {arch}: integer division in a main loop"
        fast = [loop for loop in loops if loop.mix["LDGSTS"]]
        assert len(fast) == 1 and fast[0].mix["LDGSTS"] == chunks, (name, loops)
        if name.removesuffix(suffix_of(name)) not in NO_LDSM:
            assert all(loop.mix["LDSM"] >= 4 for loop in loops), (name, loops)
        tf32 = "tf32" in name
        assert fast[0].flops_per_byte >= (7 if tf32 else 14) * smem_gain, (name, fast[0].flops_per_byte)
        int_per_hmma[name] = fast[0].mix["int"] / hmma
    for name, ratio in int_per_hmma.items():   # the address work spread over 4x the HMMAs
        if name.endswith(BIG):
            assert ratio < 0.7 * int_per_hmma[name.removesuffix(BIG)], (name, int_per_hmma)


def test_the_ffma_conv_loop_is_what_the_issue_measured():
    require("sm_80")
    loops = sass.loops(sass.disassemble("conv.cu", "sm_80")["conv2d_forward<float>"])
    assert loops and loops[0].mix["FFMA"] == 256 and loops[0].mix["HMMA"] == 0 and loops[0].division


def _mismatches(committed, fresh):
    """What differs between two loop entries beyond the tolerances, as text (empty: they agree)."""
    problems = [f"{field} {committed[field]} -> {fresh[field]}" for field in ("hmma", "ldgsts")
                if committed[field] != fresh[field]]
    problems += [f"{field} {committed[field]:.4g} -> {fresh[field]:.4g}" for field in ("all", "flop_per_smem_byte")
                 if abs(fresh[field] - committed[field]) > ALL_TOLERANCE * committed[field]]
    return ", ".join(problems)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("file", sass.TC_FILES)
def test_the_loop_table_matches_the_machine_code(file, arch):
    require(arch)
    document = sass.read_loops()
    committed = {key: entry for key, entry in document["loops"].items()
                 if entry["file"] == file and key.startswith(arch + " ")}
    fresh = sass.loop_entries((file,), (arch,))
    regenerate = (f"benchmarks/tc_loops.json (NVRTC {document['nvrtc'].get(arch)}) is stale against "
                  f"NVRTC {nvrtc.compiler_for(arch).version_string}'s {file} for {arch}: regenerate it with "
                  f"`{sass.LOOPS_COMMAND}` and commit it")
    assert sorted(committed) == sorted(fresh), (
        f"{regenerate}; kernels only in the file: {sorted(set(committed) - set(fresh))}, "
        f"only in the machine code: {sorted(set(fresh) - set(committed))}")
    # 3 operand kinds x 3 products (conv) or layouts (gemm) x 4 tiles (tc_conv_tall.cu: 1)
    assert len(fresh) == (9 if file == "tc_conv_tall.cu" else 36), sorted(fresh)
    stale = {key: text for key in fresh if (text := _mismatches(committed[key], fresh[key]))}
    assert not stale, f"{regenerate}: {stale}"


def test_tile_speeds_follow_the_loop_table():
    numpy_pass_only()
    derived, _ = tc_model.tile_speeds()
    assert derived[tensorcore.SMALL.suffix] == 1.0 and derived[tensorcore.BIG.suffix] > 1.0, derived
    off = {tile.suffix: (tile.speed, derived[tile.suffix]) for tile in tc_model.CONV_TILES
           if abs(tile.speed - derived[tile.suffix]) > SPEED_TOLERANCE * derived[tile.suffix]}
    assert not off, (f"gpunet/primitives/tensorcore.py's Tile speeds (held, derived) {off} are more than "
                     f"{SPEED_TOLERANCE:.0%} off the loop table's: `python benchmarks/tc_model.py --speeds` "
                     f"prints the values to hold and the ratios they come from")
