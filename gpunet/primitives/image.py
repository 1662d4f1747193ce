"""Image resampling for the preprocessing layers: resize (bilinear / nearest, optional centre
crop to the target's aspect ratio) as Keras 3 computes it (half-pixel centres, no antialiasing).

NHWC float arrays. On a kernel backend ``resize_forward`` runs ``kernels/image.cu``.

dtypes: images float32, bfloat16 or float16 (float64 on numpy only); outputs have the input's
dtype, computed in float32 and rounded once where stored, by the kernels and the NumPy reference
alike (``precision.widen`` / ``narrow``); nearest resampling copies values. Transforms, factors,
deltas and ``channel_means``'s means are float32 for 16-bit images (statistics, as in batch norm).
"""
import numpy as np

from .. import backend
from . import launch, precision

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


def resize_reference(x, size, interpolation="bilinear", crop_to_aspect_ratio=False, window=None):
    """NumPy resize of x (N, H, W, C) to (N, *size, C); ``window`` (top, left, height, width) is the part
    read (default: all, or the centre crop of the target's aspect ratio)."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}; received {interpolation!r}.")
    out_h, out_w = size
    top, left, crop_h, crop_w = window or _crop_window(x.shape[1], x.shape[2], out_h, out_w, crop_to_aspect_ratio)
    lo, hi, fy = _axis_taps(out_h, crop_h, top, interpolation)
    rows = x[:, lo] * (1 - fy)[None, :, None, None].astype(x.dtype) + x[:, hi] * fy[None, :, None, None].astype(x.dtype)
    lo, hi, fx = _axis_taps(out_w, crop_w, left, interpolation)
    return rows[:, :, lo] * (1 - fx)[None, None, :, None].astype(x.dtype) + \
        rows[:, :, hi] * fx[None, None, :, None].astype(x.dtype)


def resize_forward(x, size, interpolation="bilinear", crop_to_aspect_ratio=False, window=None):
    """x (N, H, W, C) resized to (N, out_h, out_w, C) (see resize_reference); a kernel on the kernel
    backends. A window of the output's size is a plain crop."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}; received {interpolation!r}.")
    if not backend.current().runs_kernels:
        wide = precision.widen(x)
        y = resize_reference(wide, size, interpolation, crop_to_aspect_ratio, window)
        return precision.narrow(y.astype(wide.dtype, copy=False), x.dtype)
    x, = launch.inputs("resize", x, dtype=precision.FLOATS)
    n, h, w, c = x.shape
    out_h, out_w = (int(s) for s in size)
    top, left, crop_h, crop_w = window or _crop_window(h, w, out_h, out_w, crop_to_aspect_ratio)
    out = launch.empty((n, out_h, out_w, c), x.dtype)
    count = launch.i32(out.size, "resize: elements")
    launch.run(_FILE, "resize_" + interpolation, launch.blocks_for(count, cap=4096), launch.THREADS,
               x, out, count, h, w, c, out_h, out_w, top, left, launch.f32(crop_h / out_h), launch.f32(crop_w / out_w),
               crop_h, crop_w)
    return out


# -- one affine transform per image (flip, translation, rotation, zoom) ----------------------------

FILL_MODES = ("constant", "reflect", "wrap", "nearest", "mirror")


def _fill_index(i, n, mode):
    """Tap indices outside [0, n) mapped as Keras's fill modes do; (index, inside) - constant: inside False."""
    if mode == "reflect":     # d c b a | a b c d | d c b a
        i = np.mod(i, 2 * n)
        return np.where(i >= n, 2 * n - 1 - i, i), np.ones(i.shape, bool)
    if mode == "mirror":      # d c b | a b c d | c b a
        if n == 1:
            return np.zeros_like(i), np.ones(i.shape, bool)
        i = np.mod(i, 2 * n - 2)
        return np.where(i >= n, 2 * n - 2 - i, i), np.ones(i.shape, bool)
    if mode == "wrap":
        return np.mod(i, n), np.ones(i.shape, bool)
    inside = (i >= 0) & (i < n)
    return np.clip(i, 0, n - 1), inside if mode == "constant" else np.ones(i.shape, bool)


def _round_half_away(v):
    """Nearest integer, halves away from zero (jax.scipy.ndimage.map_coordinates's, CUDA's roundf)."""
    return (np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))).astype(np.int64)


def affine_reference(x, transforms, interpolation="bilinear", fill_mode="reflect", fill_value=0.0):
    """x (N, H, W, C) sampled per image n at (sx, sy) = (a0 x + a1 y + a2, b0 x + b1 y + b2), the first
    six of Keras's eight transform numbers ``transforms[n]`` (output pixel (x, y) -> input point)."""
    n, h, w, c = x.shape
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    out = np.empty_like(x)
    for k in range(n):
        a0, a1, a2, b0, b1, b2 = (np.float32(v) for v in transforms[k][:6])
        sx, sy = a0 * xs + a1 * ys + a2, b0 * xs + b1 * ys + b2
        if interpolation == "nearest":
            taps = [(_round_half_away(sy), _round_half_away(sx), np.float32(1))]
        else:
            fy, fx = np.floor(sy), np.floor(sx)
            ty, tx = (sy - fy)[..., None], (sx - fx)[..., None]
            fy, fx = fy.astype(np.int64), fx.astype(np.int64)
            taps = [(fy, fx, (1 - ty) * (1 - tx)), (fy, fx + 1, (1 - ty) * tx),
                    (fy + 1, fx, ty * (1 - tx)), (fy + 1, fx + 1, ty * tx)]
        total = np.zeros((h, w, c), np.float32)
        for ty_, tx_, weight in taps:
            iy, in_y = _fill_index(ty_, h, fill_mode)
            ix, in_x = _fill_index(tx_, w, fill_mode)
            value = np.where((in_y & in_x)[..., None], x[k, iy, ix], np.float32(fill_value))
            total += weight * value
        out[k] = total
    return out


def affine_forward(x, transforms, interpolation="bilinear", fill_mode="reflect", fill_value=0.0):
    """x (N, H, W, C) transformed image by image; transforms (N, 8) as Keras lays them out."""
    if interpolation not in INTERPOLATIONS or fill_mode not in FILL_MODES:
        raise ValueError(f"affine transform: interpolation must be one of {INTERPOLATIONS} and fill_mode one of "
                         f"{FILL_MODES}; received {interpolation!r}, {fill_mode!r}.")
    transforms = np.asarray(transforms, dtype=np.float32).reshape(len(x), -1)
    if not backend.current().runs_kernels:
        y = affine_reference(precision.widen(x), transforms, interpolation, fill_mode, fill_value)
        return precision.narrow(y, x.dtype)
    x, = launch.inputs("affine_transform", x, dtype=precision.FLOATS)
    t, = launch.inputs("affine_transform", transforms)
    n, h, w, c = x.shape
    out = launch.empty(x.shape, x.dtype)
    count = launch.i32(out.size, "affine_transform: elements")
    launch.run(_FILE, "affine_transform", launch.blocks_for(count, cap=4096), launch.THREADS, x, out, count,
               h, w, c, t, int(t.shape[1]), int(interpolation == "nearest"), FILL_MODES.index(fill_mode),
               launch.f32(fill_value))
    return out


# -- intensity: (x - mean) * factor + mean + delta, optionally clipped ----------------------------------

def intensity_reference(x, factor, delta, means=None, clip=None):
    """x (N, H, W, C); factor, delta (N,); means (N, C) or None (0); clip (lo, hi) or None."""
    m = np.zeros((len(x), 1, 1, x.shape[-1]), x.dtype) if means is None else means[:, None, None, :].astype(x.dtype)
    f, d = (np.asarray(v, x.dtype)[:, None, None, None] for v in (factor, delta))
    out = (x - m) * f + m + d
    return out if clip is None else np.clip(out, clip[0], clip[1]).astype(x.dtype, copy=False)


def channel_means(x):
    """Mean over height and width per image and channel: (N, C)."""
    if not backend.current().runs_kernels:   # float32 means of 16-bit images
        return x.mean(axis=(1, 2), dtype=np.float64).astype(np.float32 if precision.is_half(x.dtype) else x.dtype)
    x, = launch.inputs("channel_means", x, dtype=precision.FLOATS)
    n, h, w, c = x.shape
    means = launch.empty((n, c))
    launch.run(_FILE, "channel_means", launch.blocks_for(n * c), launch.THREADS, x, means, n * c, h * w, c)
    return means


def intensity_forward(x, factor, delta, means=None, clip=None):
    """``(x - mean) * factor[n] + mean + delta[n]`` per image (then clipped to ``clip``)."""
    factor, delta = (np.asarray(v, np.float32).reshape(len(x)) for v in (factor, delta))
    if not backend.current().runs_kernels:
        means = None if means is None else np.asarray(means)
        return precision.narrow(intensity_reference(precision.widen(x), factor, delta, means, clip), x.dtype)
    x, = launch.inputs("intensity", x, dtype=precision.FLOATS)
    f, d = launch.inputs("intensity", factor, delta)
    n, h, w, c = x.shape
    means = launch.zeros((n, c)) if means is None else launch.inputs("intensity", means)[0]
    out = launch.empty(x.shape, x.dtype)
    count = launch.i32(out.size, "intensity: elements")
    lo, hi = clip if clip is not None else (0.0, 0.0)
    launch.run(_FILE, "intensity", launch.blocks_for(count, cap=4096), launch.THREADS, x, out, count, h * w, c,
               f, d, means, int(clip is not None), launch.f32(lo), launch.f32(hi))
    return out
