"""Compile kernels with NVRTC (no GPU needed) and read ptxas's resource report.

NVRTC is the compiler CuPy itself uses; ``pip install nvidia-cuda-nvrtc cuda-bindings`` (the
test extra) brings it without a GPU or a CUDA toolkit. Compiling for a real architecture
(``--gpu-architecture=sm_90``) makes NVRTC run ptxas, and with ``--ptxas-options=-v`` the
program log holds, per function: registers, barriers, static shared memory, stack frame,
spill stores and loads. Every source is compiled with ``compile_options()`` (C++17, its own
folder on the include path, ``nvrtc_prelude.h`` pre-included), as the cuda backend does. The
tests compile every ``kernels/*.cu`` for sm_70, sm_80 and sm_90
and fail on a compile error or a spill.

sm_70 (Volta): CUDA 13's NVRTC no longer targets it. When the installed NVRTC lacks an
architecture, the oldest one it supports above it is used instead (sm_75 for sm_70) and the
report says so.

Occupancy is computed as CUDA's occupancy calculator does (threads, warps and blocks per SM;
registers allocated per warp in units of 256; shared memory at the largest carve-out plus
the 1 KiB per block the system reserves on sm_80 and later) for the kernel's block size:
``__launch_bounds__(N)`` when the kernel declares it, else 256, marked as assumed.

    python -m gpunet.backend.nvrtc                       # print the table
    python -m gpunet.backend.nvrtc --write docs/kernels.md
"""
import argparse
import dataclasses
import math
import pathlib
import re
import sys

from . import kernel_source

ARCHS = ("sm_70", "sm_80", "sm_90")
PRELUDE = pathlib.Path(__file__).resolve().parent / "nvrtc_prelude.h"
DEFAULT_BLOCK = 256

# Per SM: max threads, warps, blocks; 32-bit registers; shared memory (largest carve-out);
# shared memory reserved per block; its allocation unit.
_SM = {
    70: dict(threads=2048, warps=64, blocks=32, regs=65536, smem=96 * 1024, reserved=0, unit=256),
    75: dict(threads=1024, warps=32, blocks=16, regs=65536, smem=64 * 1024, reserved=0, unit=256),
    80: dict(threads=2048, warps=64, blocks=32, regs=65536, smem=164 * 1024, reserved=1024, unit=128),
    86: dict(threads=1536, warps=48, blocks=16, regs=65536, smem=100 * 1024, reserved=1024, unit=128),
    89: dict(threads=1536, warps=48, blocks=24, regs=65536, smem=100 * 1024, reserved=1024, unit=128),
    90: dict(threads=2048, warps=64, blocks=32, regs=65536, smem=228 * 1024, reserved=1024, unit=128),
}


class CompileError(RuntimeError):
    """NVRTC rejected a source; the message holds its log."""


@dataclasses.dataclass
class Resources:
    """ptxas's report for one function (an entry point or a non-inlined device function)."""
    name: str
    entry: bool = False
    registers: int = 0
    barriers: int = 0
    smem: int = 0
    stack: int = 0
    spill_stores: int = 0
    spill_loads: int = 0


@dataclasses.dataclass
class KernelReport:
    file: str
    kernel: str
    arch: str             # as requested
    built_for: str        # as compiled (differs when NVRTC lacks the requested one)
    resources: Resources
    block: int
    block_assumed: bool
    occupancy: float


def _nvrtc():
    try:
        from cuda.bindings import nvrtc
    except ImportError as exc:
        raise RuntimeError("NVRTC is not installed: pip install nvidia-cuda-nvrtc cuda-bindings "
                           f"(gpunet's test extra). ({exc})") from None
    return nvrtc


def available():
    try:
        return bool(supported_archs())
    except Exception:
        return False


def _check(result, what):
    status = result[0]
    if int(status) != 0:
        raise RuntimeError(f"NVRTC {what} failed: {status!r}")
    return result[1:] if len(result) > 2 else (result[1] if len(result) == 2 else None)


def version():
    return tuple(_check(_nvrtc().nvrtcVersion(), "nvrtcVersion"))


def supported_archs():
    return [int(a) for a in _check(_nvrtc().nvrtcGetSupportedArchs(), "nvrtcGetSupportedArchs")]


def resolve_arch(arch):
    """``arch`` itself when NVRTC supports it, else the oldest supported one above it."""
    wanted = int(arch.removeprefix("sm_"))
    supported = supported_archs()
    if wanted in supported:
        return arch
    newer = [a for a in supported if a > wanted]
    if not newer:
        raise RuntimeError(f"NVRTC {version()} supports none of sm_{wanted} or newer; it has {supported}.")
    return f"sm_{min(newer)}"


def compile_options(include_dirs=()):
    """NVRTC options shared with the cuda backend: C++17, the include dirs, nvrtc_prelude.h."""
    dirs = [*include_dirs, PRELUDE.parent]
    return ["-std=c++17", *(f"-I{d}" for d in dirs), f"--pre-include={PRELUDE.name}"]


def compile_source(text, name, arch="sm_90", include_dirs=()):
    """Compile CUDA ``text`` to a cubin for ``arch``; returns (cubin bytes, log). Raises CompileError."""
    nvrtc = _nvrtc()
    prog = _check(nvrtc.nvrtcCreateProgram(text.encode(), name.encode(), 0, [], []), "nvrtcCreateProgram")
    try:
        options = [f"--gpu-architecture={arch}", "--ptxas-options=-v", *compile_options(include_dirs)]
        status = nvrtc.nvrtcCompileProgram(prog, len(options), [o.encode() for o in options])[0]
        size = _check(nvrtc.nvrtcGetProgramLogSize(prog), "nvrtcGetProgramLogSize")
        log = b" " * size
        nvrtc.nvrtcGetProgramLog(prog, log)
        log = log.rstrip(b"\0 ").decode(errors="replace")
        if int(status) != 0:
            raise CompileError(f"NVRTC could not compile {name} for {arch}:\n{log.strip()}")
        size = _check(nvrtc.nvrtcGetCUBINSize(prog), "nvrtcGetCUBINSize")
        cubin = b" " * size
        nvrtc.nvrtcGetCUBIN(prog, cubin)
        return cubin, log
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


def parse_ptxas(log):
    """``{function name: Resources}`` from a ``--ptxas-options=-v`` log."""
    functions, current = {}, None
    for line in log.splitlines():
        if m := re.search(r"Compiling entry function '([^']+)'", line):
            current = functions.setdefault(m[1], Resources(m[1]))
            current.entry = True
        elif m := re.search(r"Function properties for (\S+)", line):
            current = functions.setdefault(m[1], Resources(m[1]))
        elif current is not None and (m := re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, "
                                                     r"(\d+) bytes spill loads", line)):
            current.stack, current.spill_stores, current.spill_loads = map(int, m.groups())
        elif current is not None and (m := re.search(r"Used (\d+) registers", line)):
            current.registers = int(m[1])
            current.barriers = int(b[1]) if (b := re.search(r"used (\d+) barriers", line)) else 0
            current.smem = int(s[1]) if (s := re.search(r"(\d+) bytes smem", line)) else 0
    return functions


def occupancy(arch, registers, smem, block):
    """Fraction of the SM's warp slots that blocks of ``block`` threads can fill."""
    sm = _SM[int(arch.removeprefix("sm_"))]
    warps = math.ceil(block / 32)
    limits = [sm["blocks"], sm["warps"] // warps, sm["threads"] // block]
    if registers:
        per_warp = math.ceil(registers * 32 / 256) * 256
        limits.append((sm["regs"] // per_warp) // warps)
    if smem:
        per_block = math.ceil((smem + sm["reserved"]) / sm["unit"]) * sm["unit"]
        limits.append(sm["smem"] // per_block)
    return min(limits) * warps / sm["warps"]


def report_file(path, archs=ARCHS):
    """KernelReports for every kernel of one .cu file on every arch; raises CompileError."""
    source = kernel_source.load(path)
    compiled = {}
    for arch in archs:
        built_for = resolve_arch(arch)
        _, log = compile_source(source.text, source.path.name, built_for, [source.path.parent])
        compiled[arch] = (built_for, parse_ptxas(log))
    reports = []
    for name, signature in source.kernels.items():
        block = signature.launch_bounds or DEFAULT_BLOCK
        for arch, (built_for, functions) in compiled.items():
            res = functions.get(name, Resources(name, entry=True))
            reports.append(KernelReport(source.path.name, name, arch, built_for, res, block,
                                        signature.launch_bounds is None,
                                        occupancy(built_for, res.registers, res.smem, block)))
    return reports


def markdown(reports):
    lines = [
        "# Kernel resources",
        "",
        "Generated by `python -m gpunet.backend.nvrtc --write docs/kernels.md` from ptxas's report",
        f"(NVRTC {'.'.join(map(str, version()))}, `--ptxas-options=-v`): registers per thread, static",
        "shared memory and stack frame per block, bytes spilled. Occupancy is the share of an SM's",
        "warp slots that blocks of the listed size fill, limited by registers, shared memory, warps",
        "and blocks per SM; a block size marked * is assumed (the kernel declares no",
        "`__launch_bounds__`). Do not edit by hand: regenerate after changing a kernel.",
        "",
        "| file | kernel | arch | registers | smem (B) | stack (B) | spills st/ld (B) | block | occupancy |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in reports:
        arch = r.arch if r.arch == r.built_for else f"{r.arch} (as {r.built_for})"
        res = r.resources
        lines.append(f"| {r.file} | `{r.kernel}` | {arch} | {res.registers} | {res.smem} | {res.stack} | "
                     f"{res.spill_stores}/{res.spill_loads} | {r.block}{'*' if r.block_assumed else ''} | "
                     f"{r.occupancy:.0%} |")
    if any(r.arch != r.built_for for r in reports):
        lines += ["", "An arch shown \"as sm_XX\" is one this NVRTC no longer targets (CUDA 13 dropped",
                  "sm_70); the kernels were compiled for the oldest newer architecture it supports."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gpunet.backend.nvrtc", description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", help="kernel sources (default: every kernels/*.cu)")
    parser.add_argument("--write", metavar="PATH", help="write the Markdown table to PATH")
    args = parser.parse_args(argv)
    files = args.files or kernel_source.all_sources()
    reports = [r for f in files for r in report_file(f)]
    text = markdown(reports)
    if args.write:
        pathlib.Path(args.write).write_text(text)
        print(f"wrote {args.write}: {len(reports)} rows from {len(files)} file(s)")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
