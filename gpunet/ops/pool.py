"""Pooling ops on NHWC tensors: max, average and global average, forward and backward.

Geometry per spatial axis (Keras's rules), window ``k``, stride ``s``, input ``n``:

* ``"valid"``: ``out = (n - k) // s + 1``, no padding (trailing rows no window reaches are unused).
* ``"same"``: ``out = ceil(n / s)``; ``total = max((out - 1) * s + k - n, 0)`` padded cells,
  ``total // 2`` before and the odd one after (bottom / right).

Max pooling pads with ``-inf`` (a padded cell never wins); average pooling divides each window by
the number of real, unpadded cells in it, as Keras's "same" average pooling does.

Max pooling's forward returns ``argmax``, int32, shaped like the output: for each output element
the flat spatial index ``h * W + w`` of the winning cell in the unpadded input plane of that
sample and channel. The winner is the first real cell in row-major window order holding the
maximum (ties go to the earliest); a NaN wins over any number, and the first NaN stays. A kernel
that scans its window with ``if (v > best || (isnan(v) && !isnan(best)))``, starting from the
window's first real cell, produces the same array.
"""
import numpy as np

__all__ = [
    "pool_geometry", "pool_output_shape",
    "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "global_avg_pool2d_forward", "global_avg_pool2d_backward",
]


def pool_geometry(in_size, pool, stride, padding):
    """``(out, pad_before, pad_after)`` on one axis for ``padding`` "valid" or "same".

    ``out`` may come out below 1 (a window larger than a "valid" input); callers check it.
    """
    if padding == "valid":
        return (in_size - pool) // stride + 1, 0, 0
    if padding == "same":
        out = -(-in_size // stride)
        total = max((out - 1) * stride + pool - in_size, 0)
        return out, total // 2, total - total // 2
    raise ValueError(f"padding must be 'valid' or 'same'; received padding={padding!r}.")


def pool_output_shape(x_shape, pool_size, strides, padding):
    """Output shape ``(N, OH, OW, C)`` of pooling an input of shape ``(N, H, W, C)``."""
    n, h, w, c = x_shape
    oh = pool_geometry(h, pool_size[0], strides[0], padding)[0]
    ow = pool_geometry(w, pool_size[1], strides[1], padding)[0]
    return (n, oh, ow, c)


def _layout(x_shape, pool_size, strides, padding):
    """Output size and padding per axis; raises when a window finds no room in the input."""
    (oh, pt, pb), (ow, pl, pr) = (pool_geometry(n, k, s, padding) for n, k, s in
                                  zip(x_shape[1:3], pool_size, strides))
    if oh < 1 or ow < 1:
        raise ValueError(f"Pooling window {tuple(pool_size)} with padding {padding!r} does not fit "
                         f"an input of shape {tuple(x_shape)}: output size {oh}x{ow}.")
    return (oh, ow), ((pt, pb), (pl, pr))


def _windows(xp, i, j, out_hw, strides):
    """The cells at offset (i, j) of every window: a strided view, (N, OH, OW, C)."""
    (oh, ow), (sh, sw) = out_hw, strides
    return xp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw, :]


def _padded(x, pads, value):
    if not any(pads[0]) and not any(pads[1]):
        return x
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def max_pool2d_forward(x, pool_size, strides, padding):
    """Max pooling. ``x`` (N, H, W, C) -> ``(y, argmax)``, both (N, OH, OW, C).

    ``pool_size``, ``strides``: pairs of ints; ``padding``: "valid" or "same".
    ``argmax`` (int32) is the flat index ``h * W + w`` of each winner (see the module docstring).
    """
    out_hw, pads = _layout(x.shape, pool_size, strides, padding)
    width = x.shape[2]
    xp = _padded(x, pads, -np.inf)
    offsets = [(i, j) for i in range(pool_size[0]) for j in range(pool_size[1])]
    best = _windows(xp, 0, 0, out_hw, strides).copy()
    for i, j in offsets[1:]:
        np.maximum(best, _windows(xp, i, j, out_hw, strides), out=best)   # NaN propagates
    # Flat input index of each window's top-left cell (it may lie in the padding).
    rows = np.arange(out_hw[0]) * strides[0] - pads[0][0]
    cols = np.arange(out_hw[1]) * strides[1] - pads[1][0]
    corner = (rows[:, None] * width + cols[None, :])[None, :, :, None]
    argmax = np.zeros(best.shape, dtype=np.int32)
    # Visiting offsets last-to-first leaves the first matching cell's index in place.
    for i, j in reversed(offsets):
        cells = _windows(xp, i, j, out_hw, strides)
        np.copyto(argmax, corner + (i * width + j), where=cells == best, casting="unsafe")
    nan = np.isnan(best)
    if nan.any():
        for i, j in reversed(offsets):
            cells = _windows(xp, i, j, out_hw, strides)
            np.copyto(argmax, corner + (i * width + j), where=np.isnan(cells), casting="unsafe")
    # A maximum of -inf means every real cell is -inf: the first real one wins, never the padding.
    first_real = np.maximum(rows, 0)[:, None] * width + np.maximum(cols, 0)[None, :]
    np.copyto(argmax, first_real[None, :, :, None], where=best == -np.inf, casting="unsafe")
    return best, argmax


def max_pool2d_backward(dy, argmax, x_shape):
    """Gradient of max pooling: each ``dy`` goes to the cell its ``argmax`` names.

    ``dy``, ``argmax``: (N, OH, OW, C); returns ``dx`` of ``x_shape`` (N, H, W, C). Overlapping
    windows (stride < pool) that share a winner add their gradients.
    """
    n, h, w, c = x_shape
    sample = (np.arange(n, dtype=np.int64) * (h * w))[:, None, None, None]
    flat = (argmax.astype(np.int64) + sample) * c + np.arange(c, dtype=np.int64)
    dx = np.bincount(flat.ravel(), weights=dy.ravel(), minlength=n * h * w * c)
    return dx.reshape(x_shape).astype(dy.dtype, copy=False)


def _window_counts(in_hw, out_hw, strides, pads, pool_size):
    """Real (unpadded) cells per window, (OH, OW), as the divisor of average pooling."""
    counts = []
    for n, out, s, (before, _), k in zip(in_hw, out_hw, strides, pads, pool_size):
        start = np.arange(out) * s - before
        counts.append(np.minimum(start + k, n) - np.maximum(start, 0))
    return np.outer(counts[0], counts[1])


def avg_pool2d_forward(x, pool_size, strides, padding):
    """Average pooling. ``x`` (N, H, W, C) -> ``y`` (N, OH, OW, C).

    With "same" padding each window is divided by its count of real cells, not the window size.
    """
    out_hw, pads = _layout(x.shape, pool_size, strides, padding)
    xp = _padded(x, pads, 0)
    total = np.zeros((x.shape[0], *out_hw, x.shape[3]), dtype=x.dtype)
    for i in range(pool_size[0]):
        for j in range(pool_size[1]):
            total += _windows(xp, i, j, out_hw, strides)
    counts = _window_counts(x.shape[1:3], out_hw, strides, pads, pool_size)
    return total / counts[None, :, :, None].astype(x.dtype)


def avg_pool2d_backward(dy, x_shape, pool_size, strides, padding):
    """Gradient of average pooling: ``dy`` (N, OH, OW, C) -> ``dx`` of ``x_shape`` (N, H, W, C)."""
    out_hw, pads = _layout(x_shape, pool_size, strides, padding)
    counts = _window_counts(x_shape[1:3], out_hw, strides, pads, pool_size)
    share = dy / counts[None, :, :, None].astype(dy.dtype)
    (pt, pb), (pl, pr) = pads
    dxp = np.zeros((x_shape[0], x_shape[1] + pt + pb, x_shape[2] + pl + pr, x_shape[3]), dtype=dy.dtype)
    for i in range(pool_size[0]):
        for j in range(pool_size[1]):
            _windows(dxp, i, j, out_hw, strides)[...] += share
    return np.ascontiguousarray(dxp[:, pt:pt + x_shape[1], pl:pl + x_shape[2], :])


def global_avg_pool2d_forward(x, keepdims=False):
    """Mean over height and width: ``x`` (N, H, W, C) -> (N, C), or (N, 1, 1, C) with ``keepdims``."""
    return x.mean(axis=(1, 2), keepdims=keepdims)


def global_avg_pool2d_backward(dy, x_shape):
    """Gradient of the global mean: ``dy`` (N, C) or (N, 1, 1, C) -> ``dx`` of ``x_shape``."""
    n, h, w, c = x_shape
    share = dy.reshape(n, 1, 1, c) / dy.dtype.type(h * w)
    return np.ascontiguousarray(np.broadcast_to(share, x_shape))
