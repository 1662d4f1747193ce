"""Image resampling for the preprocessing layers: resize (bilinear / nearest, optional centre
crop to the target's aspect ratio) as Keras 3 computes it (half-pixel centres, no antialiasing).

NHWC float arrays. On a kernel backend ``resize_forward`` runs ``kernels/image.cu``.
"""
import numpy as np

from .. import backend
from . import launch

_FILE = "image.cu"
INTERPOLATIONS = ("bilinear", "nearest")


def _crop_window(height, width, out_h, out_w, crop_to_aspect_ratio):
    """(top, left, crop height, crop width) read by the resize."""
    if not crop_to_aspect_ratio:
        return 0, 0, height, width
    crop_h = max(min(height, int(float(width * out_h) / out_w)), 1)
    crop_w = max(min(width, int(float(height * out_w) / out_h)), 1)
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def _axis_taps(out_size, in_size, start, interpolation):
    """Source rows (or columns) per output one: (low, high, weight of high), absolute indices."""
    o = np.arange(out_size)
    if interpolation == "nearest":   # floor((o + 0.5) * in / out) in integers: exact on every backend
        low = np.minimum((2 * o + 1) * in_size // (2 * out_size), in_size - 1)
        return low + start, low + start, np.zeros(out_size)
    src = (o + 0.5) * np.float32(in_size / out_size) - 0.5
    floor = np.floor(src)
    low = np.clip(floor, 0, in_size - 1).astype(np.int64)
    high = np.clip(floor + 1, 0, in_size - 1).astype(np.int64)
    return low + start, high + start, src - floor


def resize_reference(x, size, interpolation="bilinear", crop_to_aspect_ratio=False):
    """NumPy resize of x (N, H, W, C) to (N, *size, C)."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}; received {interpolation!r}.")
    out_h, out_w = size
    top, left, crop_h, crop_w = _crop_window(x.shape[1], x.shape[2], out_h, out_w, crop_to_aspect_ratio)
    lo, hi, fy = _axis_taps(out_h, crop_h, top, interpolation)
    rows = x[:, lo] * (1 - fy)[None, :, None, None].astype(x.dtype) + x[:, hi] * fy[None, :, None, None].astype(x.dtype)
    lo, hi, fx = _axis_taps(out_w, crop_w, left, interpolation)
    return rows[:, :, lo] * (1 - fx)[None, None, :, None].astype(x.dtype) + \
        rows[:, :, hi] * fx[None, None, :, None].astype(x.dtype)


def resize_forward(x, size, interpolation="bilinear", crop_to_aspect_ratio=False):
    """x (N, H, W, C) resized to (N, out_h, out_w, C); a kernel on the kernel backends."""
    if not backend.current().runs_kernels:
        return resize_reference(x, size, interpolation, crop_to_aspect_ratio).astype(x.dtype, copy=False)
    x, = launch.inputs("resize", x)
    n, h, w, c = x.shape
    out_h, out_w = (int(s) for s in size)
    top, left, crop_h, crop_w = _crop_window(h, w, out_h, out_w, crop_to_aspect_ratio)
    out = launch.empty((n, out_h, out_w, c))
    count = launch.i32(out.size, "resize: elements")
    launch.run(_FILE, "resize_" + interpolation, launch.blocks_for(count, cap=4096), launch.THREADS,
               x, out, count, h, w, c, out_h, out_w, top, left, launch.f32(crop_h / out_h), launch.f32(crop_w / out_w),
               crop_h, crop_w)
    return out
