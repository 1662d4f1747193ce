"""The floating dtypes the ops compute in, and the NumPy reference's rounding rule for them.

gpunet's kernels load 16-bit values (bfloat16, float16), compute in float32 registers and round
once where they store. The NumPy reference follows the same rule so that the two backends agree
to within the 16-bit type's last bit::

    x32 = precision.widen(x)                  # float32 copy of a 16-bit array; float32/64 as they are
    y = precision.narrow(f(x32), x.dtype)     # one rounding, to the input's dtype

NumPy's own float16 / ml_dtypes' bfloat16 arithmetic would instead round after every operation of
a compound expression (sigmoid, softmax, a normalisation), which no kernel does.
"""
import numpy as np

try:
    import ml_dtypes
    BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:   # pragma: no cover - ml_dtypes ships with the test extra and the mixed policies
    BFLOAT16 = None

FLOAT16 = np.dtype(np.float16)
FLOAT32 = np.dtype(np.float32)
HALF = tuple(d for d in (BFLOAT16, FLOAT16) if d is not None)   # the 16-bit types
FLOATS = (FLOAT32, *HALF)                                        # what kernels are instantiated for

__all__ = ["BFLOAT16", "FLOAT16", "FLOAT32", "HALF", "FLOATS", "is_half", "is_float", "widen", "narrow", "dtype_of"]


def is_half(dtype):
    """True for bfloat16 and float16."""
    return np.dtype(dtype) in HALF


def is_float(dtype):
    """True for every floating dtype, bfloat16 included (NumPy gives ml_dtypes' bfloat16 kind "V")."""
    dtype = np.dtype(dtype)
    return dtype.kind == "f" or dtype in HALF


def dtype_of(name):
    """``np.dtype`` for a name or dtype, including "bfloat16" (which NumPy alone does not know)."""
    if isinstance(name, str) and name == "bfloat16":
        if BFLOAT16 is None:
            raise ImportError("bfloat16 needs the ml_dtypes package: pip install ml_dtypes")
        return BFLOAT16
    return np.dtype(name)


def widen(x):
    """``x`` as float32 when it is 16-bit (exact: every bf16 / fp16 value is a float32); else ``x``."""
    return x.astype(np.float32) if x.dtype in HALF else x


def narrow(y, dtype):
    """``y`` rounded once to ``dtype`` (nearest, ties to even, as the kernels' stores), or ``y`` as it is."""
    dtype = np.dtype(dtype)
    return y if y.dtype == dtype else y.astype(dtype)
