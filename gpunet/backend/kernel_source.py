"""Where the CUDA sources live, what kernels they hold, and whether a launch's arguments fit.

Both kernel backends (``cuda`` and ``cudasim``) go through this module, so a launch that
passes the wrong arguments fails with the same clear error on either.

Finding sources. ``locate("conv.cu")`` looks in the kernels directory: ``gpunet/kernels``
inside an installed wheel, else the repository's top-level ``kernels/``. A path with a
directory part (``tests/kernels/sgemm.cu``, absolute or relative) is taken as it is.

Kernel signatures. ``load(file)`` reads a source once (again only when the file changes) and
parses every ``extern "C" __global__ void name(...)`` in it, with an optional
``__launch_bounds__(N)`` before or after ``void``. Kernels must be ``extern "C"`` so that
NVRTC and the cudasim build both find them by their plain names. Parameter types::

    C type (pointer: an array of)          NumPy dtype
    float                                  float32
    double                                 float64
    int, int32_t                           int32
    unsigned, unsigned int, uint32_t       uint32
    long long, int64_t                     int64
    unsigned long long, uint64_t, size_t   uint64
    char, signed char, int8_t / unsigned char, uint8_t, bool   int8 / uint8, bool
    unsigned short, uint16_t                uint16
    fp16_t / bf16_t (kernels/mma.cuh)       float16 / ml_dtypes.bfloat16

A pointer parameter takes a C-contiguous array of the backend (numpy.ndarray on cudasim,
cupy.ndarray on cuda) with exactly that dtype; a scalar parameter takes a NumPy scalar of
exactly that type (``np.int32(n)``, ``np.float32(alpha)``). Python ints and floats are refused:
their C width would be a guess.
"""
import dataclasses
import hashlib
import pathlib
import re

import numpy as np

_C_TYPES = {
    "float": np.float32, "double": np.float64,
    "int": np.int32, "signed": np.int32, "signed int": np.int32, "int32_t": np.int32,
    "unsigned": np.uint32, "unsigned int": np.uint32, "uint32_t": np.uint32,
    "long long": np.int64, "long long int": np.int64, "int64_t": np.int64,
    "unsigned long long": np.uint64, "unsigned long long int": np.uint64, "uint64_t": np.uint64,
    "size_t": np.uint64,
    "char": np.int8, "signed char": np.int8, "int8_t": np.int8,
    "unsigned char": np.uint8, "uint8_t": np.uint8, "bool": np.bool_,
    "unsigned short": np.uint16, "uint16_t": np.uint16,
    "fp16_t": np.float16,                       # kernels/mma.cuh's 16-bit storage types
}
try:    # bfloat16 arrays are ml_dtypes' (what JAX and Keras use); without it bf16_t cannot be passed
    import ml_dtypes
    _C_TYPES["bf16_t"] = ml_dtypes.bfloat16
except ImportError:   # pragma: no cover
    pass
_TYPE_WORDS = {word for name in _C_TYPES for word in name.split()} | {"long", "short"}
_BOUNDS = r"(?:__launch_bounds__\s*\(([^)]*)\)\s*)?"
_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+' + _BOUNDS + r"void\s+" + _BOUNDS +
                     r"([A-Za-z_]\w*)\s*\(([^)]*)\)\s*\{")
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)[ \t]+([^\n]+)$", re.M)
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)

BLOCK_LIMITS = (1024, 1024, 64)        # blockDim.x, .y, .z
MAX_THREADS_PER_BLOCK = 1024
GRID_LIMITS = (2 ** 31 - 1, 65535, 65535)


@dataclasses.dataclass(frozen=True)
class Param:
    """One kernel parameter: ``const float* __restrict__ x`` -> name "x", ctype "const float*"."""
    name: str
    ctype: str
    pointer: bool
    dtype: object        # np.dtype, or None for a C type gpunet cannot pass

    @property
    def const(self):
        return self.ctype.startswith("const ")


@dataclasses.dataclass(frozen=True)
class Signature:
    name: str
    params: tuple
    launch_bounds: object    # the N of __launch_bounds__(N, ...), or None

    def __str__(self):
        return f"{self.name}({', '.join(f'{p.ctype} {p.name}' for p in self.params)})"


@dataclasses.dataclass(frozen=True)
class Source:
    """A .cu file: its text, its kernels by name, and a digest of it and its local includes."""
    path: pathlib.Path
    text: str
    kernels: dict
    digest: str

    def kernel(self, name):
        if name not in self.kernels:
            known = ", ".join(sorted(self.kernels)) or "none"
            raise LookupError(f"No kernel '{name}' in {self.path}: it defines {known} "
                           f"(kernels must be declared extern \"C\" __global__ void).")
        return self.kernels[name]


def kernels_dir():
    """``gpunet/kernels`` in an installed wheel, else the repository's ``kernels/``."""
    package = pathlib.Path(__file__).resolve().parent.parent
    installed = package / "kernels"
    return installed if installed.is_dir() else package.parent / "kernels"


def locate(file):
    """The path of a kernel source: a bare name is looked up in ``kernels_dir()``."""
    path = pathlib.Path(file)
    if len(path.parts) == 1:
        path = kernels_dir() / path
    if not path.is_file():
        folder = path.parent
        known = ", ".join(sorted(p.name for p in folder.glob("*.cu"))) if folder.is_dir() else "none"
        raise FileNotFoundError(f"Kernel source {str(file)!r} not found at {path}; "
                                f"{folder} holds: {known or 'no .cu files'}.")
    return path.resolve()


def all_sources(folder=None):
    """Every ``*.cu`` in ``folder`` (default: the kernels directory), sorted."""
    folder = pathlib.Path(folder) if folder is not None else kernels_dir()
    return sorted(folder.glob("*.cu"))


_cache = {}
_located = {}


def load(file):
    """The parsed ``Source`` of a kernel file, cached until the file changes."""
    path = _located.get(file)
    if path is None:
        path = locate(file)
        if len(pathlib.Path(file).parts) == 1 or pathlib.Path(file).is_absolute():   # not cwd-relative
            _located[file] = path
    stat = path.stat()
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _cache:
        text = path.read_text()
        _cache[key] = Source(path, text, parse_kernels(text, path), _digest(path, text))
    return _cache[key]


def _digest(path, text, seen=None):
    """sha256 of the text and, recursively, of every ``#include "..."`` found beside it."""
    seen = set() if seen is None else seen
    seen.add(path)
    hasher = hashlib.sha256(text.encode())
    for name in _INCLUDE.findall(text):
        included = (path.parent / name).resolve()
        if included.is_file() and included not in seen:
            hasher.update(_digest(included, included.read_text(), seen).encode())
    return hasher.hexdigest()


def parse_kernels(text, where="<source>"):
    """``{name: Signature}`` for every ``extern "C" __global__ void`` kernel in ``text``."""
    kernels = {}
    code = _COMMENT.sub(" ", text)
    macros = dict(_DEFINE.findall(code))
    for match in _KERNEL.finditer(code):
        bounds_before, bounds_after, name, params = match.groups()
        bounds = bounds_before or bounds_after
        parsed = tuple(_parse_param(p, i, name, where) for i, p in enumerate(params.split(","))
                       if p.strip() and p.strip() != "void")
        kernels[name] = Signature(name, parsed, _evaluate(bounds.split(",")[0], macros) if bounds else None)
    return kernels


def _evaluate(expression, macros):
    """The value of an integer expression such as ``TILE * TILE`` using the file's #defines; None if not plain."""
    for _ in range(8):
        expression = re.sub(r"[A-Za-z_]\w*", lambda m: f"({macros[m[0]]})" if m[0] in macros else m[0], expression)
    expression = re.sub(r"(?<=\d)[uUlL]+", "", expression)
    if not re.fullmatch(r"[\d\s+\-*/%()]+", expression):
        return None
    return int(eval(expression.replace("/", "//"), {"__builtins__": {}}))


def _parse_param(text, index, kernel, where):
    text = text.split("=")[0]
    stars = text.count("*")
    if stars > 1 or "[" in text or "&" in text:
        raise ValueError(f"{where}: kernel '{kernel}' parameter {index} ({text.strip()}): gpunet passes "
                         "scalars and plain pointers only.")
    words = [w for w in text.replace("*", " ").split()
             if w not in ("__restrict__", "__restrict", "restrict", "volatile")]
    const = "const" in words
    words = [w for w in words if w != "const"]
    name = f"arg{index}"
    if len(words) > 1 and words[-1] not in _TYPE_WORDS:
        name = words.pop()
    base = " ".join(words)
    dtype = np.dtype(_C_TYPES[base]) if base in _C_TYPES else None
    ctype = ("const " if const and stars else "") + base + ("*" if stars else "")   # a scalar's const is moot
    return Param(name, ctype, bool(stars), dtype)


def launch_dims(value, what):
    """An int or a 1-3 tuple of ints -> (x, y, z), checked against CUDA's limits."""
    items = (value,) if isinstance(value, (int, np.integer)) else value
    try:
        dims = tuple(int(v) for v in items)
        exact = all(isinstance(v, (int, np.integer)) for v in items)
    except TypeError:
        dims, exact = (), False
    if not exact or not 1 <= len(dims) <= 3 or min(dims) < 1:
        raise ValueError(f"{what} must be a positive int or a tuple of 1 to 3 positive ints; received {value!r}.")
    dims = dims + (1,) * (3 - len(dims))
    limits = BLOCK_LIMITS if what == "block" else GRID_LIMITS
    if any(d > limit for d, limit in zip(dims, limits)):
        raise ValueError(f"{what} {dims} exceeds CUDA's limits {limits}.")
    if what == "block" and dims[0] * dims[1] * dims[2] > MAX_THREADS_PER_BLOCK:
        raise ValueError(f"block {dims} has {dims[0] * dims[1] * dims[2]} threads; "
                         f"CUDA allows at most {MAX_THREADS_PER_BLOCK} per block.")
    return dims


def check_launch_bounds(signature, block):
    """Refuse a block larger than the kernel's ``__launch_bounds__(N)``: the GPU refuses such a
    launch (the compiler sized registers for N threads), so cudasim must refuse it too."""
    bound = signature.launch_bounds
    threads = block[0] * block[1] * block[2]
    if bound is not None and threads > bound:
        raise ValueError(f"Kernel '{signature.name}' declares __launch_bounds__({bound}); a block of "
                         f"{block} has {threads} threads. Launch it with at most {bound} threads per block.")


def check_args(source, signature, args, is_array, array_kind):
    """Raise a clear TypeError/ValueError unless ``args`` fit ``signature``'s C parameters.

    ``is_array(a)`` says whether ``a`` is an array of the launching backend; ``array_kind``
    names it in messages ("numpy.ndarray").
    """
    params = signature.params
    if len(args) != len(params):
        raise TypeError(f"Kernel {signature} in {source.path.name} takes {len(params)} arguments; "
                        f"received {len(args)}.")
    for index, (param, value) in enumerate(zip(params, args)):
        where = f"Argument {index} '{param.name}' ({param.ctype}) of kernel '{signature.name}'"
        if param.dtype is None:
            raise TypeError(f"{where}: gpunet cannot pass the C type {param.ctype!r}; "
                            f"use one of: {', '.join(sorted(_C_TYPES))}.")
        if param.pointer:
            _check_array(where, param, value, is_array, array_kind)
        elif not isinstance(value, np.generic):
            raise TypeError(f"{where} must be np.{param.dtype.name}; received {type(value).__name__} "
                            f"{value!r}. Scalars must be NumPy-typed, e.g. np.{param.dtype.name}({value!r}).")
        elif value.dtype != param.dtype:
            raise TypeError(f"{where} must be np.{param.dtype.name}; received np.{value.dtype.name}.")


def _check_array(where, param, value, is_array, array_kind):
    if not is_array(value):
        raise TypeError(f"{where} must be a {array_kind} of {param.dtype.name}; "
                        f"received {type(value).__module__}.{type(value).__name__}.")
    if value.dtype != param.dtype:
        raise TypeError(f"{where} must be a {param.dtype.name} array; received {value.dtype.name} "
                        f"with shape {tuple(value.shape)}.")
    if not value.flags.c_contiguous:
        raise ValueError(f"{where} must be C-contiguous; received shape {tuple(value.shape)} with strides "
                         f"{tuple(value.strides)}. Pass xp.ascontiguousarray(...) first.")
