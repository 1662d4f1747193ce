"""The machine code of gpunet's hot kernels: each main loop's instruction mix, from the SASS.

    python benchmarks/sass.py                    # tc_gemm.cu tc_conv.cu gemm.cu conv.cu, sm_80 and sm_90
    python benchmarks/sass.py tc_conv.cu --arch sm_90
    python benchmarks/sass.py --write docs/kernels.md   # (re)writes the section of that file
    python benchmarks/sass.py --write-loops benchmarks/tc_loops.json   # the cp.async loops, for tc_model
    python benchmarks/sass.py --write docs/kernels.md --write-loops benchmarks/tc_loops.json   # both, one disassembly

Compiles with NVRTC (gpunet.backend.nvrtc, the project's own options), disassembles the cubin
with ``cuobjdump -sass`` (PyPI: nvidia-cuda-cuobjdump, which runs nvdisasm from
nvidia-cuda-nvdisasm; both in the test extra) and, per kernel, finds its main loops: the
spans closed by a backward branch whose body holds HMMA or FFMA (the innermost such span;
the tensor-core kernels have two, the cp.async path and the element-wise slow path). For each
loop it counts HMMA, FFMA, LDSM, LDGSTS, LDS and LDG by width, STS, integer ops, and whether
an integer-division sequence (I2F.U32.RP / MUFU.RCP / F2I: what `/` and `%` by a variable
compile to) is inside, and the tensor-core FLOPs per shared-memory byte a warp moves:

    HMMA.1688.F32.TF32 = 16*8*8*2 = 2048 FLOPs, HMMA.16816.F32(.BF16) = 4096 FLOPs;
    LDSM.x1/.x2/.x4 = 128/256/512 bytes; LDS.32/.64/.128 = 128/256/512 bytes (32 lanes).

Compare with what the SM needs to keep its tensor cores busy from shared memory (128 bytes a
clock an SM on A100 and H100): A100 TF32 1024 FLOP/clk/SM -> 8 FLOP/B, BF16 2048 -> 16 FLOP/B;
H100 SXM TF32 2048 -> 16 FLOP/B, BF16 4096 -> 32 FLOP/B (dense peaks / SMs / boost clock).

``--write-loops`` writes benchmarks/tc_loops.json, which benchmarks/tc_model.py reads: per
(arch, kernel) of every kernels/tc_*.cu (tc_conv.cu, tc_gemm.cu...), the cp.async loop's (the main loop with LDGSTS)
HMMA, all-instruction and LDGSTS counts and tensor-core FLOP per shared-memory byte, with the
NVRTC version that compiled them. Regenerate it whenever a tensor-core kernel changes.
"""
import argparse
import collections
import dataclasses
import functools
import importlib.metadata
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from gpunet.backend import kernel_source, nvrtc   # noqa: E402

HOT_FILES = ("tc_gemm.cu", "tc_conv.cu", "tc_conv_tall.cu", "gemm.cu", "conv.cu")
TC_FILES = tuple(sorted(p.name for p in kernel_source.kernels_dir().glob("tc_*.cu")))   # every tensor-core file
ARCHS = ("sm_80", "sm_90")
LOOPS_JSON = pathlib.Path(__file__).with_name("tc_loops.json")
LOOPS_COMMAND = "python benchmarks/sass.py --write-loops benchmarks/tc_loops.json"
_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);")
_HMMA_FLOPS = {"1688": 16 * 8 * 8 * 2, "16816": 16 * 8 * 16 * 2, "1684": 16 * 8 * 4 * 2}
_WIDTH_BYTES = {"": 4, "64": 8, "128": 16, "U8": 1, "S8": 1, "U16": 2, "S16": 2}
_INTEGER = ("IMAD", "IADD3", "IADD", "LOP3", "SHF", "LEA", "ISETP", "IMNMX", "SEL", "IABS", "PRMT", "SGXT",
            "IMUL", "BMSK", "POPC", "FLO", "BREV")
_DIVISION = ("I2F.U32.RP", "I2F.RP", "MUFU.RCP", "F2I.FTZ.U32.TRUNC")


def tools():
    """The cuobjdump executable and a PATH holding nvdisasm, from the installed wheels."""
    found = {}
    for dist in ("nvidia-cuda-cuobjdump", "nvidia-cuda-nvdisasm"):
        try:
            files = importlib.metadata.distribution(dist).files or ()
        except importlib.metadata.PackageNotFoundError:
            raise RuntimeError(f"{dist} is not installed: pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm "
                               "(gpunet's test extra installs both)") from None
        for f in files:
            if f.name in ("cuobjdump", "nvdisasm"):
                path = pathlib.Path(f.locate())
                path.chmod(path.stat().st_mode | 0o111)
                found[f.name] = path
    return found["cuobjdump"], str(found["nvdisasm"].parent)


_TEMPLATE_TYPES = {"f": "float", "6bf16_t": "bf16_t", "6fp16_t": "fp16_t"}


def _demangled(symbol):
    """``name<T>`` for a templated kernel's mangled symbol (``_Z14conv2d_forwardIfEv...``), else ``symbol``."""
    m = re.match(r"_Z(\d+)", symbol)
    if not m:
        return symbol
    end = m.end() + int(m[1])
    t = re.match(r"I(f|6bf16_t|6fp16_t)E", symbol[end:])
    return f"{symbol[m.end():end]}<{_TEMPLATE_TYPES[t[1]]}>" if t else symbol


@functools.lru_cache(maxsize=None)   # --write and --write-loops in one run disassemble each (file, arch) once
def disassemble(path, arch):
    """``{kernel: [(address, predicate, opcode, operands)]}`` of one .cu file for ``arch`` (shared:
    do not modify)."""
    source = kernel_source.load(path)
    cubin, _ = nvrtc.compile_source(source.text, source.path.name, arch, [source.path.parent])
    cuobjdump, tool_dir = tools()
    with tempfile.TemporaryDirectory() as scratch:
        file = pathlib.Path(scratch) / "k.cubin"
        file.write_bytes(cubin)
        env = {**os.environ, "PATH": tool_dir + os.pathsep + os.environ.get("PATH", "")}
        text = subprocess.run([str(cuobjdump), "-sass", str(file)], capture_output=True, text=True, env=env,
                              check=True).stdout
    kernels, current = {}, None
    for line in text.splitlines():
        if m := re.search(r"Function : (\S+)", line):
            current = kernels.setdefault(_demangled(m[1]), [])
        elif current is not None and (m := _LINE.search(line)):
            if (m[2] or "").strip() == "@!PT":   # never executed (ptxas pads with `@!PT LDS RZ, [RZ]`)
                continue
            current.append((int(m[1], 16), (m[2] or "").strip(), m[3], m[4].strip()))
    return kernels


@dataclasses.dataclass
class Loop:
    start: int
    end: int
    mix: collections.Counter
    flops: int
    smem_bytes: int
    division: bool

    @property
    def flops_per_byte(self):
        return self.flops / self.smem_bytes if self.smem_bytes else 0.0


def _classify(opcode, operands):
    """The mix bucket of one instruction."""
    parts = opcode.split(".")
    base = parts[0]
    if base in ("HMMA", "FFMA", "LDSM", "LDGSTS", "STS", "BAR"):
        return base
    if base in ("LDS", "LDG"):
        width = next((p for p in parts[1:] if p in _WIDTH_BYTES), "")
        return f"{base}.{_WIDTH_BYTES[width] * 8}"
    if base in _INTEGER:
        return "int"
    return "other"


def _smem_bytes(opcode):
    parts = opcode.split(".")
    if parts[0] == "LDSM":
        return {"1": 128, "2": 256, "4": 512}[parts[-1]] if parts[-1] in ("1", "2", "4") else 128
    if parts[0] == "LDS":
        width = next((p for p in parts[1:] if p in _WIDTH_BYTES), "")
        return 32 * _WIDTH_BYTES[width]
    return 0


def loops(instructions):
    """The main loops of one kernel: innermost backward-branch spans holding HMMA or FFMA."""
    spans = []
    for address, _, opcode, operands in instructions:
        if opcode.startswith("BRA") and (m := re.match(r"`?\(?\.?L?_?x?_?(?:0x)?([0-9a-f]+)", operands)):
            target = int(m[1], 16)
            if target <= address:
                body = [i for i in instructions if target <= i[0] <= address]
                if any(op.startswith(("HMMA", "FFMA")) for _, _, op, _ in body):
                    spans.append((target, address, body))
    innermost = [s for s in spans if not any(o is not s and s[0] <= o[0] and o[1] <= s[1] for o in spans)]
    result = []
    for start, end, body in innermost:
        mix = collections.Counter(_classify(op, args) for _, _, op, args in body)
        flops = sum(_HMMA_FLOPS.get(op.split(".")[1], 0) for _, _, op, _ in body if op.startswith("HMMA"))
        smem = sum(_smem_bytes(op) for _, _, op, _ in body)
        division = any(op.startswith(_DIVISION) for _, _, op, _ in body)
        result.append(Loop(start, end, mix, flops, smem, division))
    return result


COLUMNS = ("HMMA", "FFMA", "LDSM", "LDGSTS", "LDS.32", "LDS.64", "LDS.128", "LDG.16", "LDG.32", "LDG.128", "STS",
           "int")


def table(files=HOT_FILES, archs=("sm_80", "sm_90"), kernels=None):
    """Markdown rows: one per (file, kernel, arch, main loop)."""
    rows = ["| file | kernel | arch | loop | " + " | ".join(COLUMNS) + " | all | int div | TC FLOP/smem B |",
            "|---|---|---|---|" + "---:|" * (len(COLUMNS) + 1) + "---|---:|"]
    for file in files:
        for arch in archs:
            for name, code in disassemble(file, arch).items():
                if (kernels and name not in kernels) or name.startswith("tc_finish"):   # an elementwise pass
                    continue
                for loop in loops(code):
                    counts = " | ".join(str(loop.mix.get(c, 0)) for c in COLUMNS)
                    ratio = f"{loop.flops_per_byte:.1f}" if loop.flops else "-"
                    rows.append(f"| {pathlib.Path(file).name} | `{name}` | {arch} | {loop.start:#x}-{loop.end:#x} | "
                                f"{counts} | {sum(loop.mix.values())} | {'yes' if loop.division else 'no'} | {ratio} |")
    return "\n".join(rows) + "\n"


SECTION_TEXT = """
Generated by `python benchmarks/sass.py --write docs/kernels.md` (cuobjdump -sass of the NVRTC
cubins); `python -m gpunet.backend.nvrtc --write` keeps this section. One row per main loop of a
hot kernel: a backward-branch span holding HMMA or FFMA. Counts are instructions in one
iteration of the loop body (one k-tile: 64 bytes of each operand row for the tensor-core
kernels, 16 k for the FFMA ones). `int` counts integer ALU instructions (IMAD, IADD3, LOP3,
SHF, LEA, ISETP, ...), `all` every instruction of the body; `int div` says whether an integer-division sequence (I2F.U32.RP,
MUFU.RCP, F2I) is inside; `TC FLOP/smem B` is the tensor-core FLOPs per byte a warp reads from
shared memory (LDSM and LDS). Keeping the tensor cores fed from shared memory (128 B/clk/SM)
takes 8 FLOP/B for TF32 and 16 for BF16/FP16 on an A100, 16 and 32 on an H100.

Tensor-core tiles (tc_gemm.cuh's TcTile; primitives/tensorcore.tile_for picks one per product,
docs/performance.md): kernels without a suffix run 64 x 64 blocks (32 x 32 warp tiles: 16 HMMA
and 4 cp.async a k-tile); `..._128x128` 128 x 128 blocks (64 x 64 warp tiles: 64 HMMA, 8 LDGSTS,
twice the FLOPs per shared-memory byte, about half the instructions per HMMA); `..._128x64`
128 x 64 (64 x 32 warp tiles: 32 HMMA, 6 LDGSTS); `..._128x32` 128 x 32 (32 x 32 warp tiles in
a column: 16 HMMA, 5 LDGSTS); `..._256x32` (tc_conv_tall.cu) 256 x 32 (64 x 32 warp tiles in a
column: 32 HMMA, 9 LDGSTS).

Which path a shape takes: every tensor-core kernel has two loops. The cp.async loop (the row
with LDGSTS) runs when both operand base addresses are 16-byte aligned and every operand row
is a whole number of 16-byte chunks: for tc_gemm, K and N (nn), K and K (nt), M and N (tn)
times the element size; for tc_conv, Cin and Cout times the element size (float32: multiples
of 4 channels; bf16 / fp16: multiples of 8), and for the forward and the input gradient a kernel
of at most 32 taps (kh * kw, or a stride phase's taps: the patch loader keeps one validity bit a
tap). Any other shape or alignment runs the other loop,
which gathers element by element with plain loads and shared stores (STS) and is correct for
every shape. The FFMA kernels (gemm.cu, conv.cu) have one loop.

"""


def write_section(path, text):
    """Replace (or add) the main-loop section of a kernels.md with ``text``: after nvrtc's
    NOTES_MARKER, whose part of the file ``python -m gpunet.backend.nvrtc --write`` keeps."""
    path = pathlib.Path(path)
    old = path.read_text() if path.exists() else ""
    section = nvrtc.SASS_SECTION + "\n" + SECTION_TEXT + text
    if nvrtc.SASS_SECTION in old:   # up to the next section, or the end
        start = old.index(nvrtc.SASS_SECTION)
        end = old.find("\n## ", start + 1)
        new = old[:start] + section + (old[end:] if end >= 0 else "")
    else:
        marker = "" if nvrtc.NOTES_MARKER in old else "\n" + nvrtc.NOTES_MARKER + "\n"
        new = old.rstrip() + "\n" + marker + "\n" + section
    path.write_text(new)


def cp_async_loop(name, arch, code):
    """The cp.async loop (the main loop holding LDGSTS) of one kernel's instructions; None when
    the kernel has no HMMA loop (tc_sum_splits, tc_finish: elementwise passes)."""
    found = loops(code)
    if not any(loop.mix["HMMA"] for loop in found):
        return None
    fast = [loop for loop in found if loop.mix["LDGSTS"]]
    if len(fast) != 1:   # the model needs one loop per kernel: say so rather than guess which
        raise RuntimeError(f"{name} on {arch}: expected one cp.async main loop (a loop with HMMA and LDGSTS), "
                           f"found {len(fast)} among {found}; update benchmarks/sass.py's cp_async_loop")
    return fast[0]


def loop_entries(files=TC_FILES, archs=ARCHS):
    """``{"<arch> <kernel>": {file, hmma, all, ldgsts, flop_per_smem_byte}}``: the cp.async loop of
    every tensor-core kernel of ``files``."""
    entries = {}
    for file in files:
        for arch in archs:
            for name, code in disassemble(file, arch).items():
                loop = cp_async_loop(name, arch, code)
                if loop is not None:
                    entries[f"{arch} {name}"] = {"file": pathlib.Path(file).name, "hmma": loop.mix["HMMA"],
                                                 "all": sum(loop.mix.values()), "ldgsts": loop.mix["LDGSTS"],
                                                 "flop_per_smem_byte": loop.flops_per_byte}
    return entries


def loops_document(entries, archs=ARCHS):
    """The JSON object of tc_loops.json: the command that wrote it, the NVRTC version per arch, the loops."""
    return {"command": LOOPS_COMMAND, "nvrtc": {arch: nvrtc.compiler_for(arch).version_string for arch in archs},
            "loops": entries}


def dumps_loops(document):
    """JSON text with sorted keys and one loop a line, so that a kernel change diffs as the lines it moved."""
    head = [f"  {json.dumps(key)}: {json.dumps(value, sort_keys=True)}," for key, value in sorted(document.items())
            if key != "loops"]
    rows = [f"    {json.dumps(key)}: {json.dumps(value, sort_keys=True)}" for key, value in
            sorted(document["loops"].items())]
    return "{\n" + "\n".join(head) + '\n  "loops": {\n' + ",\n".join(rows) + "\n  }\n}\n"


def read_loops(path=LOOPS_JSON):
    """The parsed tc_loops.json (see ``loops_document``)."""
    return json.loads(pathlib.Path(path).read_text())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", help=f"kernel files (default {' '.join(HOT_FILES)}; "
                                                 f"with --write-loops {' '.join(TC_FILES)})")
    parser.add_argument("--arch", action="append", help="sm_80 / sm_90 (default both)")
    parser.add_argument("--write", metavar="KERNELS_MD", help="write the table as a section of this file")
    parser.add_argument("--write-loops", metavar="JSON", help="write the tensor-core kernels' cp.async loops "
                                                              "(benchmarks/tc_loops.json, read by tc_model.py)")
    args = parser.parse_args(argv)
    archs = tuple(args.arch or ARCHS)
    if args.write_loops:
        document = loops_document(loop_entries(tuple(args.files or TC_FILES), archs), archs)
        pathlib.Path(args.write_loops).write_text(dumps_loops(document))
        print(f"wrote {len(document['loops'])} loops to {args.write_loops} (NVRTC {document['nvrtc']})")
        if not args.write:
            return
    text = table(tuple(args.files or HOT_FILES), archs)
    if args.write:
        write_section(args.write, text)
        print(f"wrote the main-loop section of {args.write}")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
