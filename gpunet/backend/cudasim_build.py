"""Builds the cudasim shared libraries with the system C++ compiler, cached on disk.

Two kinds of library:

* the runtime (``cudasim_runtime.h`` with ``cudasim_contexts.h``): the scheduler that runs
  blocks and threads, built once;
* one library per ``.cu`` file: the file compiled with ``-include cudasim.h`` plus a
  generated wrapper that adds an entry point ``gpunet_cudasim_entry_<kernel>(void** args)``
  per kernel, unpacking the arguments as ``cuLaunchKernel`` does (a templated kernel's instances
  ``name<T>`` get ``gpunet_cudasim_entry_name__T``, which also instantiates them).

The compiler is ``$CXX`` or ``g++`` (C++20: g++ 10 or newer), with ``-std=c++20 -O2 -fPIC -ffp-contract=off
-shared``. Libraries are cached in ``$GPUNET_CACHE_DIR`` or ``~/.cache/gpunet/cudasim``,
named by a hash of the sources (the .cu and its local includes), the headers, the compiler's
version and the flags, so an edit rebuilds and nothing else does. Each build compiles into a
private temporary directory and renames the result into place, so two processes building
the same library at once both end up with a complete file.
"""
import functools
import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile

from . import kernel_source

HERE = pathlib.Path(__file__).resolve().parent
HEADER = HERE / "cudasim.h"
HEADERS = (HEADER, HERE / "cudasim_tensor.h")   # what a kernel library force-includes
RUNTIME = (HERE / "cudasim_runtime.h", HERE / "cudasim_contexts.h")
# -ffp-contract=off: a*b+c stays two roundings on every CPU (aarch64 g++ would fuse it otherwise),
# so a cudasim result does not depend on the host; NVRTC does contract (see nvrtc.FP_OPTIONS).
FLAGS = ("-std=c++20", "-O2", "-fPIC", "-shared", "-ffp-contract=off")

builds = []   # paths compiled by this process, newest last (tests check cache hits with it)


def compiler():
    """The C++ compiler command: ``$CXX`` or ``g++``."""
    return os.environ.get("CXX", "g++")


def compiler_available():
    return shutil.which(compiler()) is not None


def require_compiler():
    if not compiler_available():
        raise RuntimeError(
            f"The cudasim backend compiles kernels/*.cu for the CPU with a C++20 compiler, and "
            f"{compiler()!r} was not found on PATH. Install g++ 10 or newer (Debian/Ubuntu: "
            f"apt-get install g++; Fedora: dnf install gcc-c++) or set CXX to one; "
            f"or use gpunet.set_backend('numpy').")
    return shutil.which(compiler())


@functools.lru_cache(maxsize=None)
def _compiler_version(path):
    run = subprocess.run([path, "--version"], capture_output=True, text=True)
    return run.stdout.split("\n")[0]


def cache_dir():
    """Where built libraries are kept: ``$GPUNET_CACHE_DIR`` or ``~/.cache/gpunet/cudasim``."""
    root = os.environ.get("GPUNET_CACHE_DIR")
    folder = pathlib.Path(root) if root else pathlib.Path.home() / ".cache" / "gpunet" / "cudasim"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def build_runtime():
    """Path of the runtime library, built on first need."""
    wrapper = '#include "cudasim_runtime.h"\n'
    flags = ("-pthread", "-I", str(HERE))
    return _build("cudasim-runtime", wrapper, flags,
                  (*(p.read_text() for p in RUNTIME), *(h.read_text() for h in HEADERS), wrapper, *flags),
                  RUNTIME[0])


def build_kernels(source):
    """Path of the library for a ``kernel_source.Source``, built on first need."""
    lines = [f'#include "{source.path}"'] + [
        f"CUDASIM_ENTRY_AS({kernel_source.entry_symbol(name)}, {name})" if signature.template else
        f"CUDASIM_ENTRY({name})" for name, signature in source.kernels.items()]
    wrapper = "\n".join(lines) + "\n"
    flags = ("-include", str(HEADER), "-I", str(source.path.parent))
    # Keyed by content, not by where the file lies: the digest covers the .cu and the local
    # includes it pulls in, so the same kernels copied to another folder reuse the library.
    return _build(source.path.stem, wrapper, flags,
                  (source.digest, *(h.read_text() for h in HEADERS), *source.kernels), source.path)


def _build(stem, wrapper, flags, contents, label):
    """The library compiled from ``wrapper``, cached under a hash of ``contents`` (all that
    decides what it holds), the compiler's version and the common flags."""
    cxx = require_compiler()
    key = hashlib.sha256()
    for part in (*contents, _compiler_version(cxx), *FLAGS):
        key.update(part.encode() + b"\0")
    folder = cache_dir()
    target = folder / f"{stem}-{key.hexdigest()[:20]}.so"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(dir=folder, prefix=f".{stem}-") as scratch:
        cpp, out = pathlib.Path(scratch) / f"{stem}.cpp", pathlib.Path(scratch) / f"{stem}.so"
        cpp.write_text(wrapper)
        run = subprocess.run([cxx, *FLAGS, *flags, str(cpp), "-o", str(out)], capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"cudasim: {os.path.basename(cxx)} could not compile {label}:\n"
                               f"{run.stderr.strip()[:8000]}")
        os.replace(out, target)
    builds.append(target)
    return target
