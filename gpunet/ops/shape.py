"""Ops that move values without weights: zero padding, upsampling, concatenation, addition.

All NHWC where spatial. Upsampling by integer factors ``(sh, sw)``: "nearest" repeats each
pixel (Keras's UpSampling2D); "bilinear" uses half-pixel centres with the edge pixel repeated
beyond the border, as TensorFlow's and JAX's image resize do when enlarging. Output pixel
``o`` along an axis samples input coordinate ``(o + 0.5) / s - 0.5``.
"""
import numpy as np

__all__ = [
    "zero_pad2d_forward", "zero_pad2d_backward",
    "upsample2d_forward", "upsample2d_backward",
    "concat_forward", "concat_backward",
    "add_forward", "add_backward",
]

INTERPOLATIONS = ("nearest", "bilinear")


def zero_pad2d_forward(x, padding):
    """Zeros around the image: ``x`` (N, H, W, C), ``padding`` ((top, bottom), (left, right))
    -> (N, top + H + bottom, left + W + right, C)."""
    (top, bottom), (left, right) = padding
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))


def zero_pad2d_backward(dy, padding):
    """Gradient of zero padding: the interior of ``dy``, (N, H, W, C)."""
    (top, bottom), (left, right) = padding
    height, width = dy.shape[1] - top - bottom, dy.shape[2] - left - right
    return np.ascontiguousarray(dy[:, top:top + height, left:left + width, :])


def _bilinear_taps(scale):
    """Per phase ``r`` of an upsampled axis: output ``s*i + r`` = (1 - f) * x[i] + f * x[i + step]."""
    taps = []
    for r in range(scale):
        offset = (r + 0.5) / scale - 0.5
        taps.append((1, offset) if offset >= 0 else (-1, -offset))
    return taps


def _shifted(x, step):
    """``x[i + step]`` along axis 1, the edge row repeated where ``i + step`` leaves the array."""
    if step > 0:
        return np.concatenate([x[:, 1:], x[:, -1:]], axis=1)
    return np.concatenate([x[:, :1], x[:, :-1]], axis=1)


def _bilinear_axis1(x, scale):
    phases = [(1 - f) * x + f * _shifted(x, step) if f else x
              for step, f in _bilinear_taps(scale)]
    y = np.stack(phases, axis=2)
    return y.reshape(x.shape[0], x.shape[1] * scale, *x.shape[2:])


def _bilinear_axis1_backward(dy, scale):
    n, length = dy.shape[0], dy.shape[1] // scale
    dy = dy.reshape(n, length, scale, *dy.shape[2:])
    dx = np.zeros((n, length, *dy.shape[3:]), dtype=dy.dtype)
    for r, (step, f) in enumerate(_bilinear_taps(scale)):
        d = dy[:, :, r]
        dx += (1 - f) * d
        if step > 0:
            dx[:, 1:] += f * d[:, :-1]
            dx[:, -1] += f * d[:, -1]
        else:
            dx[:, :-1] += f * d[:, 1:]
            dx[:, 0] += f * d[:, 0]
    return dx


def upsample2d_forward(x, size, interpolation="nearest"):
    """Enlarge images by integer factors: ``x`` (N, H, W, C) -> (N, sh*H, sw*W, C)."""
    sh, sw = size
    n, h, w, c = x.shape
    if interpolation == "nearest":
        y = np.broadcast_to(x[:, :, None, :, None, :], (n, h, sh, w, sw, c))
        return y.reshape(n, h * sh, w * sw, c)
    if interpolation == "bilinear":
        y = _bilinear_axis1(x, sh)
        return np.ascontiguousarray(_bilinear_axis1(y.swapaxes(1, 2), sw).swapaxes(1, 2))
    raise ValueError(f"interpolation must be one of {INTERPOLATIONS}; received {interpolation!r}.")


def upsample2d_backward(dy, size, interpolation="nearest"):
    """Gradient of upsampling: ``dy`` (N, sh*H, sw*W, C) -> ``dx`` (N, H, W, C)."""
    sh, sw = size
    n, oh, ow, c = dy.shape
    if interpolation == "nearest":
        blocks = dy.reshape(n, oh // sh, sh, ow // sw, sw, c)
        dx = blocks[:, :, 0, :, 0].copy()
        for i in range(sh):
            for j in range(sw):
                if i or j:
                    dx += blocks[:, :, i, :, j]   # strided adds beat sum(axis=(2, 4)) here
        return dx
    if interpolation == "bilinear":
        d = _bilinear_axis1_backward(dy.swapaxes(1, 2), sw).swapaxes(1, 2)
        return _bilinear_axis1_backward(d, sh)
    raise ValueError(f"interpolation must be one of {INTERPOLATIONS}; received {interpolation!r}.")


def concat_forward(xs, axis):
    """Join arrays along ``axis``; all other axes must match."""
    return np.concatenate(xs, axis=axis)


def concat_backward(dy, sizes, axis):
    """Split ``dy`` back into pieces of ``sizes`` along ``axis``: a list of contiguous arrays."""
    cuts = np.cumsum(sizes)[:-1]
    return [np.ascontiguousarray(piece) for piece in np.split(dy, cuts, axis=axis)]


def add_forward(xs):
    """Elementwise sum of arrays of one shape."""
    total = xs[0].copy()
    for x in xs[1:]:
        total += x
    return total


def add_backward(dy, n):
    """Gradient of a sum of ``n`` inputs: ``dy`` for each, as separate arrays (callers may add
    into one in place without touching the others)."""
    return [dy] + [dy.copy() for _ in range(n - 1)]
