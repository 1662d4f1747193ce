"""Where the CUDA sources live, what kernels they hold, and whether a launch's arguments fit.

Both kernel backends (``cuda`` and ``cudasim``) go through this module, so a launch that
passes the wrong arguments fails with the same clear error on either.

Finding sources. ``locate("conv.cu")`` looks in the kernels directory: ``gpunet/kernels``
inside an installed wheel, else the repository's top-level ``kernels/``. A path with a
directory part (``tests/kernels/sgemm.cu``, absolute or relative) is taken as it is.

Kernel signatures. ``load(file)`` reads a shipped source once per process (a path again when
the file changes) and parses every ``extern "C" __global__ void name(...)`` in it, with an
optional ``__launch_bounds__(N)`` before or after ``void``. Plain kernels must be ``extern "C"``
so that NVRTC and the cudasim build both find them by their plain names.

Templated kernels. ``template <class T> __global__ void name(const T* x, T* y, int n)`` (one
type parameter named T, no ``extern "C"``) is instantiated for each of ``ELEMENT_TYPES``: the
source's kernels then hold ``name<float>``, ``name<bf16_t>`` and ``name<fp16_t>``, each with T
replaced in its signature. A launch names the template (``"name"``) and ``Source.instance``
picks the instance from the dtype of the first array passed for a ``T*`` parameter; NVRTC
reaches the instances through name expressions (their mangled names), the cudasim build
through an entry per instance (``entry_symbol``). Parameter types::

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

Checked once. A backend keeps a ``LaunchChecks``: the checks of a launch run once per
(file, kernel, grid, block, argument kinds) and later launches of the same kinds cost one dict
lookup, which is what keeps gpunet's Python per launch to a few microseconds.
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
_TEMPLATE = re.compile(r"template\s*<\s*(?:class|typename)\s+T\s*>\s*__global__\s+" + _BOUNDS +
                       r"void\s+" + _BOUNDS + r"([A-Za-z_]\w*)\s*\(([^)]*)\)\s*\{")
ELEMENT_TYPES = ("float", "bf16_t", "fp16_t")   # what T of a templated kernel is instantiated as
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
    templated: bool = False   # declared with the template's T (its dtype is the instance's)

    @property
    def const(self):
        return self.ctype.startswith("const ")


@dataclasses.dataclass(frozen=True)
class Signature:
    name: str
    params: tuple
    launch_bounds: object    # the N of __launch_bounds__(N, ...), or None
    template: str = None     # for an instance name<T> of a templated kernel: the template's name
    element: object = None   # ... and the dtype T stands for

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
                           f"(kernels must be declared extern \"C\" __global__ void, or "
                           f"template <class T> __global__ void).")
        return self.kernels[name]

    @property
    def templates(self):
        """``{template name: {dtype: instance name}}`` for the templated kernels of this file."""
        found = {}
        for name, signature in self.kernels.items():
            if signature.template:
                found.setdefault(signature.template, {})[signature.element] = name
        return found

    def instance(self, name, args):
        """The Signature to launch for ``name`` with ``args``: the kernel itself, or for a template
        the instance whose T is the dtype of the first array passed for a ``T*`` parameter."""
        instances = self.templates.get(name)
        if instances is None:
            return self.kernel(name)
        first = self.kernel(next(iter(instances.values())))
        for param, arg in zip(first.params, args):
            if param.pointer and param.templated:
                dtype = getattr(arg, "dtype", None)
                if dtype in instances:
                    return self.kernels[instances[dtype]]
                accepted = ", ".join(np.dtype(d).name for d in instances)
                raise TypeError(f"Argument '{param.name}' of kernel template '{name}' ({self.path.name}) "
                                f"sets its element type T: an array of {accepted} was expected; "
                                f"received {type(arg).__name__} of dtype {dtype}.")
        raise TypeError(f"Kernel template '{name}' ({self.path.name}) takes its element type T from a "
                        f"T* argument; none was passed ({len(args)} arguments).")


def entry_symbol(name):
    """A C identifier for a kernel name: ``relu<bf16_t>`` -> ``relu__bf16_t`` (plain names unchanged)."""
    return name.replace("<", "__").replace(">", "")


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
_shipped = {}


def load(file):
    """The parsed ``Source`` of a kernel file.

    A bare name (``"conv.cu"``, a shipped kernel) is read once per process; a path is read
    again when the file changes (tests edit copies of kernels)."""
    source = _shipped.get(file)
    if source is not None:
        return source
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
    if isinstance(file, str) and len(pathlib.Path(file).parts) == 1:
        _shipped[file] = _cache[key]
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


def _included_macros(path, text, seen=None):
    """The ``#define``s of the local headers ``text`` (the file at ``path``) includes, recursively:
    a kernel's ``__launch_bounds__(TC_THREADS)`` may name a macro of a header (tc_gemm.cuh)."""
    seen = set() if seen is None else seen
    macros = {}
    for name in _INCLUDE.findall(text):
        included = (pathlib.Path(path).parent / name).resolve()
        if included.is_file() and included not in seen:
            seen.add(included)
            header = included.read_text()
            macros.update(_included_macros(included, header, seen))
            macros.update(_DEFINE.findall(_COMMENT.sub(" ", header)))
    return macros


def parse_kernels(text, where="<source>"):
    """``{name: Signature}`` for every ``extern "C" __global__ void`` kernel in ``text``; ``where``
    (the file's path, when it has one) also finds the macros of its local includes."""
    kernels = {}
    code = _COMMENT.sub(" ", text)
    macros = _included_macros(where, text) if isinstance(where, pathlib.Path) else {}
    macros.update(_DEFINE.findall(code))
    for match in _KERNEL.finditer(code):
        bounds_before, bounds_after, name, params = match.groups()
        bounds = bounds_before or bounds_after
        parsed = tuple(_parse_param(p, i, name, where) for i, p in enumerate(params.split(","))
                       if p.strip() and p.strip() != "void")
        kernels[name] = Signature(name, parsed, _evaluate(bounds.split(",")[0], macros) if bounds else None)
    for match in _TEMPLATE.finditer(code):
        bounds_before, bounds_after, name, params = match.groups()
        bounds = bounds_before or bounds_after
        limit = _evaluate(bounds.split(",")[0], macros) if bounds else None
        items = [p for p in params.split(",") if p.strip() and p.strip() != "void"]
        for element in ELEMENT_TYPES:
            if element not in _C_TYPES:   # pragma: no cover - bf16_t without ml_dtypes
                continue
            instance = f"{name}<{element}>"
            parsed = tuple(dataclasses.replace(_parse_param(re.sub(r"\bT\b", element, p), i, instance, where),
                                               templated=re.search(r"\bT\b", p) is not None)
                           for i, p in enumerate(items))
            kernels[instance] = Signature(instance, parsed, limit, name, np.dtype(_C_TYPES[element]))
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


@dataclasses.dataclass
class CheckedLaunch:
    """A launch whose grid, block and argument kinds passed the checks: what the backend needs.

    ``handle`` is the backend's own (a compiled function, a library entry), filled on first use."""
    source: Source
    signature: Signature
    grid: tuple
    block: tuple
    handle: object = None


_UNCACHED = []   # the kind of an argument that must be checked every time: unhashable, no cache key


class LaunchChecks:
    """One backend's launches, checked once per (file, kernel, grid, block, argument kinds).

    An argument's kind is its dtype for a C-contiguous array of the backend's array types and its
    Python type otherwise (a NumPy scalar's type holds its dtype), so a later launch with new
    arrays of the same kinds costs a dict lookup; anything else (a Python int, a strided view, a
    list as grid) runs the full checks of ``launch_dims`` and ``check_args``, which raise.
    """

    def __init__(self, array_types, array_kind):
        self.array_types, self.array_kind = tuple(array_types), array_kind
        self._checked = {}

    def get(self, file, kernel, grid, block, args):
        """The ``CheckedLaunch`` for these arguments; a TypeError/ValueError if they do not fit."""
        types = self.array_types
        key = (file, kernel, grid, block,
               *[a.dtype if type(a) in types and a.flags.c_contiguous else
                 type(a) if isinstance(a, np.generic) else _UNCACHED for a in args])
        try:
            return self._checked[key]
        except KeyError:
            pass
        except TypeError:   # an unhashable grid or block (a list): checked every time
            return self._check(file, kernel, grid, block, args)
        checked = self._checked[key] = self._check(file, kernel, grid, block, args)
        return checked

    def _check(self, file, kernel, grid, block, args):
        source = load(file)
        signature = source.instance(kernel, args)
        grid, block = launch_dims(grid, "grid"), launch_dims(block, "block")
        check_launch_bounds(signature, block)
        check_args(source, signature, args, lambda a: isinstance(a, self.array_types), self.array_kind)
        return CheckedLaunch(source, signature, grid, block)
