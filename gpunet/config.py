"""Global numerical settings, with PyTorch's names.

    gn.config.set_float32_matmul_precision("high")    # float32 convs / dense layers on TF32
    gn.config.get_float32_matmul_precision()          # "high"

"highest" (the default): float32 matrix products run in float32 (the FFMA kernels of
kernels/gemm.cu and kernels/conv.cu; NumPy's float32 matmul on the numpy backend).
"high": float32 operands are rounded to TF32 (10 mantissa bits, cvt.rna.tf32.f32: nearest,
ties away from zero) and multiplied on tensor cores with float32 accumulation (kernels/tc_*.cu)
on the kernel backends; the numpy backend rounds the operands the same way before its float32
matmul, so both backends compute the same products up to summation order. Only float32
arrays are affected: float64 (gradient checks) stays exact, and bf16 / fp16 operands always
use tensor cores. What each mode costs in accuracy: docs/backends.md.
"""
from .mixed_precision import dtype_policy, set_dtype_policy   # keras.config has these two

__all__ = ["set_float32_matmul_precision", "get_float32_matmul_precision", "set_dtype_policy", "dtype_policy"]

_PRECISIONS = ("highest", "high")
_state = {"float32_matmul_precision": "highest"}


def set_float32_matmul_precision(precision):
    """Set how float32 matrix products (Dense, Conv2D, Conv2DTranspose) run: "highest" or "high"."""
    if precision not in _PRECISIONS:
        extra = (" ('medium', bfloat16 products, is not offered: use bfloat16 operands instead)"
                 if precision == "medium" else "")
        raise ValueError(f"set_float32_matmul_precision: precision must be one of {', '.join(map(repr, _PRECISIONS))}"
                         f"; received {precision!r}{extra}.")
    _state["float32_matmul_precision"] = precision


def get_float32_matmul_precision():
    """"highest" (exact float32 products, the default) or "high" (TF32 tensor cores)."""
    return _state["float32_matmul_precision"]


def tf32_enabled(*arrays):
    """Whether float32 products of ``arrays`` (all float32) run as TF32 under the current setting."""
    return _state["float32_matmul_precision"] == "high" and all(a.dtype == "float32" for a in arrays)
