"""Where the cuda and cudasim backends may differ in the last bit, per kernel.

cudasim runs the same .cu through g++ with ``-ffp-contract=off``: each ``a * b + c`` is two
roundings. NVRTC contracts such pairs into one fused multiply-add (``--fmad=true``, its
default and gpunet's choice: faster, and more accurate), so a kernel with contracted FMAs can
give results one or a few units in the last place apart on the two backends. The math library
differs too: CUDA's ``expf``, ``logf``, ``tanhf`` ... (approximate ``ex2`` / ``lg2`` hardware
steps plus corrections, within 2 ulp) are not glibc's. Division and square root are IEEE
(``-prec-div=true``, ``-prec-sqrt=true``) and denormals flush to zero on both.

Counted from the PTX NVRTC emits for ``compute_90`` with gpunet's options: FMAs with
``--fmad=true`` minus those with ``--fmad=false`` (the contracted ones; explicit ``fmaf`` calls
fuse on both backends); and the math library functions the kernel calls, directly or through
the device functions of its file and headers (read from the source).
"""
import re

from . import kernel_source, nvrtc

ARCH = "compute_90"
_FMA = re.compile(r"\bfma\.rn(?:\.ftz)?(?:\.sat)?\.f32\b")
_ENTRY = re.compile(r"\.entry\s+([\w<>]+)\s*\(")
# Math functions whose CUDA and glibc implementations may round differently (not the exact
# ones: fabsf, fminf, fmaxf, sqrtf and division are IEEE on both).
_MATH = re.compile(r"\b(?:__)?(?:exp|exp2|expm1|log|log2|log10|log1p|pow|tanh|sinh|cosh|sin|cos|tan|erf|erfc|"
                   r"rsqrt|cbrt|atan|atan2|asin|acos)f?\s*\(")
_DEFINITION = re.compile(r"\b([A-Za-z_]\w*)\s*\([^;{)]*\)\s*(?:const\s*)?\{")


def _entries(ptx):
    """``{kernel name: its PTX body}``."""
    marks = [(m.start(), m[1]) for m in _ENTRY.finditer(ptx)]
    return {name: ptx[start:(marks[i + 1][0] if i + 1 < len(marks) else len(ptx))]
            for i, (start, name) in enumerate(marks)}


def _ptx(source, fmad):
    options = [f"--gpu-architecture={ARCH}", *nvrtc.compile_options([source.path.parent])]
    options = [o if o != "--fmad=true" else f"--fmad={'true' if fmad else 'false'}" for o in options]
    compiler = nvrtc.compiler_for("sm_90")
    status, log, ptx = compiler.compile(source.text, source.path.name, options, output="PTX",
                                        names=nvrtc.instance_names(source.text))
    if status != 0:
        raise nvrtc.CompileError(f"NVRTC could not compile {source.path.name} to PTX:\n{log.strip()}")
    return ptx.rstrip(b"\0").decode()


def _bodies(text):
    """``{function name: body text}`` for every function defined in ``text`` (braces matched)."""
    bodies = {}
    for match in _DEFINITION.finditer(text):
        if match[1] in ("for", "if", "while", "switch", "catch", "return", "sizeof") or match[1].isupper():
            continue   # a statement or a macro's use (MACRO(args) { ...), not a function
        depth, end = 0, match.end() - 1
        for end in range(match.end() - 1, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                break
        bodies.setdefault(match[1], text[match.end():end])
    return bodies


def _math_calls(source):
    """``{kernel: sorted math functions it reaches}`` through the functions of its file and headers."""
    text = source.text + "".join((source.path.parent / name).read_text()
                                 for name in kernel_source._INCLUDE.findall(source.text)
                                 if (source.path.parent / name).is_file())
    bodies = _bodies(kernel_source._COMMENT.sub(" ", text))
    found = {}
    for kernel, signature in source.kernels.items():
        seen, todo, math = set(), [signature.template or kernel], set()   # an instance's body is its template's
        while todo:
            body = bodies.get(todo.pop(), "")
            math.update(m.group(0).rstrip("( ").strip() for m in _MATH.finditer(body))
            for called in re.findall(r"\b([A-Za-z_]\w*)\s*[(<]", body):
                if called in bodies and called not in seen:
                    seen.add(called)
                    todo.append(called)
        found[kernel] = sorted(math)
    return found


def report_file(path):
    """``[(file, kernel, contracted FMAs, math functions called)]`` for one .cu file."""
    source = kernel_source.load(path)
    fused, unfused = _entries(_ptx(source, True)), _entries(_ptx(source, False))
    math = _math_calls(source)
    rows = []
    for name in source.kernels:
        contracted = len(_FMA.findall(fused.get(name, ""))) - len(_FMA.findall(unfused.get(name, "")))
        rows.append((source.path.name, name, max(contracted, 0), ", ".join(math[name]) or "-"))
    return rows


def markdown(rows):
    lines = ["## Where cuda and cudasim may differ in the last bit", "",
             "NVRTC compiles with `-ftz=true -prec-div=true -prec-sqrt=true --fmad=true`; cudasim flushes",
             "denormals too and builds with `-ffp-contract=off`. A kernel with contracted FMAs (a*b+c fused",
             "by NVRTC, two roundings on cudasim) or approximate hardware math (CUDA's expf/logf/tanhf",
             "against glibc's) may differ between the two backends in the last bits; one with neither",
             "computes the same IEEE operations on both. Counted in the PTX for compute_90",
             "(`gpunet/backend/fma_report.py`); math functions read from the source.", "",
             "| file | kernel | contracted FMAs | math library | cuda vs cudasim |", "|---|---|---:|---|---|"]
    for file, kernel, contracted, math in rows:
        verdict = "may differ in the last bit" if contracted or math != "-" else "same operations"
        lines.append(f"| {file} | `{kernel}` | {contracted} | {math} | {verdict} |")
    return "\n".join(lines) + "\n"
