"""dtype casts between float32, bfloat16 and float16 (kernels/cast.cu), NumPy reference beside.

    y = cast.cast(x, dtype)     x float32 / bfloat16 / float16 (any shape) -> y of ``dtype``, same shape

Rounding: to nearest, ties to even (``__float2bfloat16_rn`` / ``__float2half_rn`` on the GPU,
ml_dtypes' and NumPy's astype on the host: bit-identical). Widening to float32 is exact. A cast to
the dtype ``x`` already has returns ``x`` itself (no copy, no launch). Other dtypes (float64,
integers) are cast by the array module on the numpy backend; on a kernel backend they are refused
with a TypeError naming the dtypes the kernels take.
"""
import numpy as np

from .. import backend
from . import launch, precision

__all__ = ["cast"]

_FILE = "cast.cu"


def cast(x, dtype):
    """``x`` as ``dtype`` (a name, including "bfloat16", or a dtype); ``x`` itself if it already is."""
    dtype = precision.dtype_of(dtype)
    if x.dtype == dtype:
        return x
    be = backend.current()
    if not be.runs_kernels:
        return x.astype(dtype)
    if dtype not in precision.FLOATS:
        raise TypeError(f"cast on the {be.name} backend converts between "
                        f"{', '.join(d.name for d in precision.FLOATS)}; received a cast to {dtype.name}.")
    (x,) = launch.inputs("cast", x, dtype=precision.FLOATS)
    y = launch.empty(x.shape, dtype)
    grid = launch.blocks_for(x.size)
    if x.dtype == precision.FLOAT32:
        launch.run(_FILE, "cast_from_float", grid, launch.THREADS, x, y, x.size)
    elif dtype == precision.FLOAT32:
        launch.run(_FILE, "cast_to_float", grid, launch.THREADS, x, y, x.size)
    else:   # bf16 <-> fp16: the output written as its raw bits
        launch.run(_FILE, "cast_between", grid, launch.THREADS, x, y.view(np.uint16), x.size,
                   int(dtype == precision.BFLOAT16))
    return y
