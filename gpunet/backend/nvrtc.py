"""Compile kernels with NVRTC (no GPU needed) and read ptxas's resource report.

NVRTC is the compiler CuPy itself uses, and NVIDIA ships it on PyPI without a GPU or a CUDA
toolkit. One NVRTC cannot cover every architecture gpunet checks: CUDA 13 dropped Volta, so
sm_70 needs CUDA 12's. The test extra therefore installs two:

    nvidia-cuda-nvrtc        NVRTC 13 (nvidia/cu13/lib/libnvrtc.so.13)   sm_75 and newer
    nvidia-cuda-nvrtc-cu12   NVRTC 12 (nvidia/cuda_nvrtc/lib/libnvrtc.so.12)  sm_50 to sm_121

Both are found through the installed distributions' file lists (``importlib.metadata``), every
distribution named ``nvidia-cuda-nvrtc*``, and called through NVRTC's C API with ctypes, the
same way for both (cuda-bindings binds only the NVRTC of its own CUDA major, so it cannot
reach the second one). Each architecture is compiled by the newest installed NVRTC that
targets it, never silently by another architecture: sm_70 by NVRTC 12, sm_80 and sm_90 by
NVRTC 13. A missing compiler is an error that names the package to install.

Compiling for a real architecture (``--gpu-architecture=sm_90``) makes NVRTC run ptxas, and
with ``--ptxas-options=-v`` the program log holds, per function: registers, barriers, static
shared memory, stack frame, spill stores and loads. Every source is compiled with
``compile_options()`` (C++17, its own folder on the include path, ``nvrtc_prelude.h``
pre-included), as the cuda backend does. The tests compile every ``kernels/*.cu`` for sm_70,
sm_80 and sm_90 and fail on a compile error or a spill.

Occupancy is computed as CUDA's occupancy calculator does (threads, warps and blocks per SM;
registers allocated per warp in units of 256; shared memory at the largest carve-out plus
the 1 KiB per block the system reserves on sm_80 and later) for the kernel's block size:
``__launch_bounds__(N)`` when the kernel declares it, else 256, marked as assumed.

    python -m gpunet.backend.nvrtc                       # print the table
    python -m gpunet.backend.nvrtc --write docs/kernels.md
"""
import argparse
import ctypes
import dataclasses
import functools
import importlib.metadata
import math
import os
import pathlib
import re
import sys

from . import kernel_source

ARCHS = ("sm_70", "sm_80", "sm_90")
SASS_SECTION = "## Main loops in the machine code"   # written by benchmarks/sass.py --write
PRELUDE = pathlib.Path(__file__).resolve().parent / "nvrtc_prelude.h"
DEFAULT_BLOCK = 256
# libnvrtc.so.12 / libnvrtc.so.13 on Linux, nvrtc64_120_0.dll on Windows; not the .alt. or
# -builtins libraries next to them.
_LIBRARY = re.compile(r"(?:libnvrtc\.so\.\d+|nvrtc64_\d+_0\.dll)")

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
    arch: str
    nvrtc: str            # the NVRTC version that compiled it, "12.9"
    resources: Resources
    block: int
    block_assumed: bool
    occupancy: float


class Nvrtc:
    """One NVRTC shared library, called through its C API."""

    def __init__(self, path, distribution=""):
        self.path, self.distribution = pathlib.Path(path), distribution
        if os.name == "nt":  # nvrtc64_*.dll loads nvrtc-builtins64_*.dll from its own folder
            self._dll_directory = os.add_dll_directory(str(self.path.parent))
        lib = self._lib = ctypes.CDLL(str(self.path))
        P, S, I = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        ref, size = ctypes.POINTER, ctypes.POINTER(ctypes.c_size_t)
        for name, args in [("nvrtcVersion", [ref(I), ref(I)]), ("nvrtcGetErrorString", [I]),
                           ("nvrtcGetNumSupportedArchs", [ref(I)]), ("nvrtcGetSupportedArchs", [ref(I)]),
                           ("nvrtcCreateProgram", [ref(P), S, S, I, ref(S), ref(S)]),
                           ("nvrtcCompileProgram", [P, I, ref(S)]), ("nvrtcDestroyProgram", [ref(P)]),
                           ("nvrtcGetProgramLogSize", [P, size]), ("nvrtcGetProgramLog", [P, S]),
                           ("nvrtcGetCUBINSize", [P, size]), ("nvrtcGetCUBIN", [P, S]),
                           ("nvrtcGetPTXSize", [P, size]), ("nvrtcGetPTX", [P, S]),
                           ("nvrtcAddNameExpression", [P, S]), ("nvrtcGetLoweredName", [P, S, ref(S)])]:
            function = getattr(lib, name)
            function.argtypes, function.restype = args, I
        lib.nvrtcGetErrorString.restype = S
        major, minor, count = I(), I(), I()
        self._check(lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        self.version = (major.value, minor.value)
        self._check(lib.nvrtcGetNumSupportedArchs(ctypes.byref(count)), "nvrtcGetNumSupportedArchs")
        archs = (I * count.value)()
        self._check(lib.nvrtcGetSupportedArchs(archs), "nvrtcGetSupportedArchs")
        self.archs = tuple(archs)

    def __repr__(self):
        return f"<NVRTC {self.version_string} from {self.distribution or self.path}>"

    @property
    def version_string(self):
        return ".".join(map(str, self.version))

    def _check(self, status, what):
        if status != 0:
            raise RuntimeError(f"NVRTC {what} failed: {self._lib.nvrtcGetErrorString(status).decode()}")

    def compile(self, text, name, options, output="CUBIN", names=()):
        """``(status, log, cubin)``; cubin is None when the compile failed (status != 0).
        ``output="PTX"`` returns the PTX instead (compile for a virtual ``compute_XX`` arch).
        ``names``: name expressions to instantiate (a templated kernel's ``name<T>``); their mangled
        names in the log (and in PTX output) are replaced by the expressions, so reports read
        ``relu<bf16_t>`` where ptxas wrote ``_Z4reluI6bf16_tEvPKT_PS1_i``."""
        lib, prog = self._lib, ctypes.c_void_p()
        self._check(lib.nvrtcCreateProgram(ctypes.byref(prog), text.encode(), name.encode(), 0, None, None),
                    "nvrtcCreateProgram")
        try:
            for expression in names:
                self._check(lib.nvrtcAddNameExpression(prog, expression.encode()), "nvrtcAddNameExpression")
            encoded = (ctypes.c_char_p * len(options))(*(o.encode() for o in options))
            status = lib.nvrtcCompileProgram(prog, len(options), encoded)
            log = self._read(prog, lib.nvrtcGetProgramLogSize, lib.nvrtcGetProgramLog, "program log")
            log = log.rstrip(b"\0").decode(errors="replace")
            if status != 0:
                return status, log, None
            getters = {"CUBIN": (lib.nvrtcGetCUBINSize, lib.nvrtcGetCUBIN), "PTX": (lib.nvrtcGetPTXSize, lib.nvrtcGetPTX)}
            out = self._read(prog, *getters[output], output)
            for expression in names:
                lowered = ctypes.c_char_p()
                self._check(lib.nvrtcGetLoweredName(prog, expression.encode(), ctypes.byref(lowered)),
                            "nvrtcGetLoweredName")
                log = log.replace(lowered.value.decode(), expression)
                if output == "PTX":
                    out = out.replace(lowered.value, expression.encode())
            return status, log, out
        finally:
            lib.nvrtcDestroyProgram(ctypes.byref(prog))

    def _read(self, prog, get_size, get, what):
        size = ctypes.c_size_t()
        self._check(get_size(prog, ctypes.byref(size)), f"get {what} size")
        buffer = ctypes.create_string_buffer(size.value)
        self._check(get(prog, buffer), f"get {what}")
        return buffer.raw


def _libraries():
    """``(distribution name, library path)`` for every installed ``nvidia-cuda-nvrtc*``."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name.startswith("nvidia-cuda-nvrtc"):
            for file in dist.files or ():
                path = pathlib.Path(dist.locate_file(file)).resolve()
                if _LIBRARY.fullmatch(file.name) and path.is_file():
                    found.setdefault(path, name)
    return [(name, path) for path, name in found.items()]


@functools.lru_cache(maxsize=None)
def compilers():
    """Every installed NVRTC, newest first."""
    found = (Nvrtc(path, name) for name, path in _libraries())
    return tuple(sorted(found, key=lambda c: c.version, reverse=True))


def _arch_number(arch):
    return int(str(arch).removeprefix("sm_"))


def compiler_for(arch):
    """The newest installed NVRTC that targets ``arch`` itself; raises RuntimeError if none does."""
    wanted = _arch_number(arch)
    for compiler in compilers():
        if wanted in compiler.archs:
            return compiler
    have = "; ".join(f"NVRTC {c.version_string} ({c.distribution}) targets sm_{min(c.archs)} to sm_{max(c.archs)}"
                     for c in compilers()) or "no NVRTC is installed"
    package = "nvidia-cuda-nvrtc-cu12 (CUDA 13 dropped sm_70 and older)" if wanted < 75 else "nvidia-cuda-nvrtc"
    raise RuntimeError(f"No installed NVRTC targets sm_{wanted} ({have}). pip install {package}; "
                       "gpunet's test extra installs both.")


def available(arch=None):
    """Whether some installed NVRTC targets ``arch`` (any architecture when None)."""
    try:
        return compiler_for(arch) is not None if arch else bool(compilers())
    except Exception:
        return False


def version(arch="sm_90"):
    """(major, minor) of the NVRTC that compiles ``arch``."""
    return compiler_for(arch).version


def supported_archs():
    """Every architecture some installed NVRTC targets, as numbers (70, 75, ...)."""
    return sorted({a for c in compilers() for a in c.archs})


# Floating-point choices, explicit (docs/kernels.md states them; cudasim matches what it can):
# -ftz=true because CuPy appends it to every RawModule compile anyway (cudasim flushes denormals
# too, cudasim_runtime.h); IEEE division and square root; NVRTC's default FMA contraction
# (--fmad=true), which cudasim's g++ build (-ffp-contract=off) does not do: the kernels listed
# in docs/kernels.md's FMA table may differ between cuda and cudasim in the last bit.
FP_OPTIONS = ("-ftz=true", "-prec-div=true", "-prec-sqrt=true", "--fmad=true")


def compile_options(include_dirs=()):
    """NVRTC options shared with the cuda backend: C++17, the include dirs, nvrtc_prelude.h, FP_OPTIONS."""
    dirs = [*include_dirs, PRELUDE.parent]
    return ["-std=c++17", *(f"-I{d}" for d in dirs), f"--pre-include={PRELUDE.name}", *FP_OPTIONS]


def compile_source(text, name, arch="sm_90", include_dirs=(), names=None):
    """Compile CUDA ``text`` to a cubin for ``arch`` with ``compiler_for(arch)``; returns
    (cubin bytes, log). ``names``: the templated kernels' instances to build (default: every
    ``name<T>`` kernel_source finds in ``text``). Raises CompileError."""
    options = [f"--gpu-architecture={arch}", "--ptxas-options=-v", *compile_options(include_dirs)]
    compiler = compiler_for(arch)
    names = instance_names(text) if names is None else names
    status, log, cubin = compiler.compile(text, name, options, names=names)
    if status != 0:
        raise CompileError(f"NVRTC {compiler.version_string} could not compile {name} for {arch}:\n{log.strip()}")
    return cubin, log


def instance_names(text):
    """The ``name<T>`` instances of the templated kernels in CUDA ``text`` (kernel_source's parse)."""
    return [name for name, signature in kernel_source.parse_kernels(text).items() if signature.template]


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


# Tensor-core sources (kernels/tc_*.cu and whatever includes kernels/mma.cuh) use mma.sync with
# tf32 / bf16 operands and cp.async, which PTX has from sm_80 on: they are not built for sm_70,
# and gpunet never launches them on a GPU older than sm_80 (primitives/tensorcore.usable).
TENSOR_CORE_ARCH = 80


def min_arch(source):
    """The oldest architecture a kernel source compiles for: 80 for tensor-core sources, else 0."""
    tensor = source.path.name.startswith("tc_") or re.search(r'#\s*include\s+"[^"]*mma\.cuh"', source.text)
    return TENSOR_CORE_ARCH if tensor else 0


def archs_for(path, archs=ARCHS):
    """The architectures of ``archs`` that the source at ``path`` is built for (see min_arch)."""
    floor = min_arch(kernel_source.load(path))
    return tuple(a for a in archs if _arch_number(a) >= floor)


def report_file(path, archs=ARCHS):
    """KernelReports for every kernel of one .cu file on every arch it is built for; raises CompileError."""
    source = kernel_source.load(path)
    compiled = {}
    for arch in archs_for(path, archs):
        _, log = compile_source(source.text, source.path.name, arch, [source.path.parent])
        compiled[arch] = (compiler_for(arch).version_string, parse_ptxas(log))
    reports = []
    for name, signature in source.kernels.items():
        block = signature.launch_bounds or DEFAULT_BLOCK
        for arch, (nvrtc_version, functions) in compiled.items():
            res = functions.get(name, Resources(name, entry=True))
            reports.append(KernelReport(source.path.name, name, arch, nvrtc_version, res, block,
                                        signature.launch_bounds is None,
                                        occupancy(arch, res.registers, res.smem, block)))
    return reports


def markdown(reports):
    by_version = {}
    for r in reports:
        by_version.setdefault(r.nvrtc, dict())[r.arch] = None
    compilers_used = " and ".join(f"NVRTC {v} for {', '.join(archs)}" for v, archs in by_version.items())
    lines = [
        "# Kernel resources",
        "",
        "Generated by `python -m gpunet.backend.nvrtc --write docs/kernels.md` from ptxas's report",
        "(`--ptxas-options=-v`): registers per thread, static shared memory and stack frame per",
        "block, bytes spilled. Occupancy is the share of an SM's warp slots that blocks of the",
        "listed size fill, limited by registers, shared memory, warps and blocks per SM; a block",
        "size marked * is assumed (the kernel declares no `__launch_bounds__`). Do not edit by",
        "hand: regenerate after changing a kernel.",
        "",
        f"Options, as the cuda backend passes them: `{' '.join(FP_OPTIONS)}` (CuPy adds `-ftz=true`",
        "to every RawModule compile, so gpunet chooses it explicitly and cudasim flushes denormals",
        "too), `-std=c++17`, `nvrtc_prelude.h` pre-included. The last section lists per kernel where",
        "cuda and cudasim may differ in the last bit.",
        "",
        f"Compiled by {compilers_used} (column NVRTC):",
        "each architecture by the newest installed NVRTC that targets it. CUDA 13 dropped sm_70,",
        "so sm_70 takes CUDA 12's NVRTC (`nvidia-cuda-nvrtc-cu12`), the others CUDA 13's",
        "(`nvidia-cuda-nvrtc`).",
        "",
        "| file | kernel | arch | NVRTC | registers | smem (B) | stack (B) | spills st/ld (B) | block | occupancy |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in reports:
        res = r.resources
        lines.append(f"| {r.file} | `{r.kernel}` | {r.arch} | {r.nvrtc} | {res.registers} | {res.smem} | "
                     f"{res.stack} | {res.spill_stores}/{res.spill_loads} | "
                     f"{r.block}{'*' if r.block_assumed else ''} | {r.occupancy:.0%} |")
    return "\n".join(lines) + "\n"


NOTES_MARKER = "<!-- Hand-written notes: --write keeps everything from this line on. -->"


def _kept_notes(path):
    """The hand-written part of an existing ``path`` (from NOTES_MARKER on), after the table."""
    old = path.read_text() if path.exists() else ""
    return "\n" + old[old.index(NOTES_MARKER):] if NOTES_MARKER in old else ""


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gpunet.backend.nvrtc", description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", help="kernel sources (default: every kernels/*.cu)")
    parser.add_argument("--write", metavar="PATH", help="write the Markdown table to PATH")
    args = parser.parse_args(argv)
    files = args.files or kernel_source.all_sources()
    from . import fma_report
    try:
        reports = [r for f in files for r in report_file(f)]
        fma_rows = [r for f in files for r in fma_report.report_file(f)]
    except (RuntimeError, OSError) as exc:   # CompileError, a missing NVRTC, an unreadable file
        sys.exit(f"error: {exc}")
    text = markdown(reports) + "\n" + fma_report.markdown(fma_rows)
    if args.write:
        text += _kept_notes(pathlib.Path(args.write))
        pathlib.Path(args.write).write_text(text)
        print(f"wrote {args.write}: {len(reports)} rows from {len(files)} file(s)")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
