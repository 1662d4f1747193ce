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

On a kernel backend (``backend.current().runs_kernels``) every op runs the kernels of
``kernels/pool.cu``; the functions named ``_<op>_kernel`` at the end of this file launch them.

dtypes: float32, bfloat16 and float16 on every backend (float64 on numpy only). Outputs, dx and
a folded gate have the input's dtype; argmax is int32. Sums (average pooling, overlapping max
pooling gradients, the global mean) run in float32 and round once where the output is stored,
in the kernels and in the NumPy reference alike (``precision.widen`` / ``narrow``); max
pooling's forward only selects, so its output is exact in every dtype.
"""
import numpy as np

from .. import backend
from . import conv_geometry as geometry
from . import epilogue, launch, parallel, precision

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
    if padding == "same":   # the split of a conv's "same" (dilation 1): the odd cell after
        return -(-in_size // stride), *geometry.same_padding(in_size, pool, stride, 1)
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


def _corners(out_hw, strides, pads, width):
    """Flat input index ``h * W + w`` of each window's top-left cell, (1, OH, OW, 1) int32 (may
    lie in the padding), and the rows / columns it comes from."""
    rows = np.arange(out_hw[0]) * strides[0] - pads[0][0]
    cols = np.arange(out_hw[1]) * strides[1] - pads[1][0]
    return (rows[:, None] * width + cols[None, :]).astype(np.int32)[None, :, :, None], rows, cols


def _max_pool2d_forward_numpy(x, out_hw, pads, pool_size, strides):
    """Running maximum over the window offsets plus the offset of the first winner, samples split
    over threads; NaN and all -inf windows fixed afterwards (rare: one test pass each)."""
    width = x.shape[2]
    xp = _padded(x, pads, -np.inf)
    offsets = [(i, j) for i in range(pool_size[0]) for j in range(pool_size[1])]
    best = np.empty((x.shape[0], *out_hw, x.shape[3]), dtype=x.dtype)
    argmax = np.empty(best.shape, dtype=np.int32)
    corner, rows, cols = _corners(out_hw, strides, pads, width)
    flat_offsets = np.array([i * width + j for i, j in offsets], dtype=np.int32)
    small = len(offsets) <= 255

    def samples(part):
        cells = [_windows(xp[part], i, j, out_hw, strides) for i, j in offsets]
        top, which = best[part], np.zeros(best[part].shape, np.uint8 if small else np.int32)
        np.copyto(top, cells[0])
        greater = np.empty(top.shape, dtype=bool)
        for k, cell in enumerate(cells[1:], 1):
            np.greater(cell, top, out=greater)      # strict: a tie keeps the earlier cell
            np.maximum(top, cell, out=top)
            # k exceeds every earlier offset, so max(which, k * greater) is k exactly where greater.
            step = greater.view(np.uint8) if small else greater.astype(np.int32)
            np.multiply(step, k, out=step, casting="unsafe")
            np.maximum(which, step, out=which)
        np.take(flat_offsets, which, out=argmax[part], mode="clip")
        argmax[part] += corner
    parallel.run(samples, x.shape[0], work=x.size)
    if np.isnan(best).any():        # the first NaN of a window wins; greater() never saw it
        for i, j in reversed(offsets):
            cells = _windows(xp, i, j, out_hw, strides)
            np.copyto(argmax, corner + (i * width + j), where=np.isnan(cells), casting="unsafe")
    if any(pads[0]) or any(pads[1]):
        # A maximum of -inf means every real cell is -inf: the first real one wins, never the padding.
        minus_inf = best == -np.inf
        if minus_inf.any():
            first_real = np.maximum(rows, 0)[:, None] * width + np.maximum(cols, 0)[None, :]
            np.copyto(argmax, first_real[None, :, :, None], where=minus_inf, casting="unsafe")
    return best, argmax


def _max_pool2d_backward_numpy(dy, argmax, x_shape, pool_size, strides, padding):
    """Per window offset, ``dy`` where ``argmax`` names that offset's cell: written into the
    (padded) input gradient, or added where windows overlap. Samples split over threads."""
    out_hw, pads = _layout(x_shape, pool_size, strides, padding)
    n, h, w, c = x_shape
    (pt, pb), (pl, pr) = pads
    padded = (n, h + pt + pb, w + pl + pr, c)
    overlapping = any(s < k for s, k in zip(strides, pool_size))
    # Windows that tile the (padded) input exactly write every cell: no zeros needed first.
    tiled = all(s == k and o * s == size for o, s, k, size in zip(out_hw, strides, pool_size, padded[1:3]))
    dxp = np.empty(padded, dy.dtype) if tiled else np.zeros(padded, dy.dtype)
    corner = _corners(out_hw, strides, pads, w)[0]
    offsets = [(i, j) for i in range(pool_size[0]) for j in range(pool_size[1])]

    def samples(part):
        grad, names = dy[part], argmax[part]
        match = np.empty(grad.shape, dtype=bool)
        share = np.empty(grad.shape, dtype=dy.dtype) if overlapping else None
        for i, j in offsets:
            # A padded cell may share a real cell's flat index; it is cropped away below.
            np.equal(names, corner + (i * w + j), out=match)
            target = _windows(dxp[part], i, j, out_hw, strides)
            if overlapping:
                np.multiply(grad, match, out=share)
                target += share
            else:
                np.multiply(grad, match, out=target)
    parallel.run(samples, n, work=dxp.size)
    if padded == tuple(x_shape):
        return dxp
    return np.ascontiguousarray(dxp[:, pt:pt + h, pl:pl + w, :])


def max_pool2d_forward(x, pool_size, strides, padding):
    """Max pooling. ``x`` (N, H, W, C) -> ``(y, argmax)``, both (N, OH, OW, C).

    ``pool_size``, ``strides``: pairs of ints; ``padding``: "valid" or "same".
    ``argmax`` (int32) is the flat index ``h * W + w`` of each winner (see the module docstring).
    """
    out_hw, pads = _layout(x.shape, pool_size, strides, padding)
    if backend.current().runs_kernels:
        return _max_pool2d_forward_kernel(x, out_hw, pads, pool_size, strides)
    y, argmax = _max_pool2d_forward_numpy(precision.widen(x), out_hw, pads, pool_size, strides)
    return precision.narrow(y, x.dtype), argmax   # a selection: exact in every dtype


def max_pool2d_backward(dy, argmax, x_shape, pool_size=None, strides=None, padding=None, fold=None):
    """Gradient of max pooling: each ``dy`` goes to the cell its ``argmax`` names.

    ``dy``, ``argmax``: (N, OH, OW, C); returns ``dx`` of ``x_shape`` (N, H, W, C). Overlapping
    windows (stride < pool) that share a winner add their gradients.
    ``pool_size``, ``strides``, ``padding``: optional, the forward's settings. The result does not
    depend on them; the kernel path uses them to visit only the windows covering each cell
    (without them each cell scans every output of its plane, correct but slow on large images).
    ``fold = (y, Epilogue)``: dx gated by the derivative of the activation whose output y (x's
    shape) was pooled, by the same kernel (see ``epilogue``).
    """
    if backend.current().runs_kernels:
        return _max_pool2d_backward_kernel(dy, argmax, x_shape, pool_size, strides, padding, fold)
    if precision.is_half(dy.dtype):   # float32 sums and gate, one rounding (as the kernel)
        fold32 = None if fold is None else (precision.widen(fold[0]), fold[1])
        dx = max_pool2d_backward(precision.widen(dy), argmax, x_shape, pool_size, strides, padding, fold32)
        return precision.narrow(dx, dy.dtype)
    if fold is not None:
        return epilogue.apply_fold(max_pool2d_backward(dy, argmax, x_shape, pool_size, strides, padding), fold)
    if None not in (pool_size, strides, padding) and np.isfinite(dy).all():
        return _max_pool2d_backward_numpy(dy, argmax, x_shape, pool_size, strides, padding)
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
    if backend.current().runs_kernels:
        return _pool2d_kernel("avg_pool2d_forward", x, x.shape, out_hw, pads, pool_size, strides)
    dtype, x = x.dtype, precision.widen(x)
    xp = _padded(x, pads, 0)
    total = np.zeros((x.shape[0], *out_hw, x.shape[3]), dtype=x.dtype)
    for i in range(pool_size[0]):
        for j in range(pool_size[1]):
            total += _windows(xp, i, j, out_hw, strides)
    counts = _window_counts(x.shape[1:3], out_hw, strides, pads, pool_size)
    return precision.narrow(total / counts[None, :, :, None].astype(x.dtype), dtype)


def avg_pool2d_backward(dy, x_shape, pool_size, strides, padding):
    """Gradient of average pooling: ``dy`` (N, OH, OW, C) -> ``dx`` of ``x_shape`` (N, H, W, C)."""
    out_hw, pads = _layout(x_shape, pool_size, strides, padding)
    if backend.current().runs_kernels:
        return _pool2d_kernel("avg_pool2d_backward", dy, x_shape, out_hw, pads, pool_size, strides)
    dtype, dy = dy.dtype, precision.widen(dy)
    counts = _window_counts(x_shape[1:3], out_hw, strides, pads, pool_size)
    share = dy / counts[None, :, :, None].astype(dy.dtype)
    (pt, pb), (pl, pr) = pads
    dxp = np.zeros((x_shape[0], x_shape[1] + pt + pb, x_shape[2] + pl + pr, x_shape[3]), dtype=dy.dtype)
    for i in range(pool_size[0]):
        for j in range(pool_size[1]):
            _windows(dxp, i, j, out_hw, strides)[...] += share
    return precision.narrow(np.ascontiguousarray(dxp[:, pt:pt + x_shape[1], pl:pl + x_shape[2], :]), dtype)


def global_avg_pool2d_forward(x, keepdims=False):
    """Mean over height and width: ``x`` (N, H, W, C) -> (N, C), or (N, 1, 1, C) with ``keepdims``."""
    if backend.current().runs_kernels:
        return _global_avg_pool2d_forward_kernel(x, keepdims)
    return precision.narrow(precision.widen(x).mean(axis=(1, 2), keepdims=keepdims), x.dtype)


def global_avg_pool2d_backward(dy, x_shape):
    """Gradient of the global mean: ``dy`` (N, C) or (N, 1, 1, C) -> ``dx`` of ``x_shape``."""
    if backend.current().runs_kernels:
        return _global_avg_pool2d_backward_kernel(dy, x_shape)
    n, h, w, c = x_shape
    share = precision.widen(dy).reshape(n, 1, 1, c) / np.float32(h * w)
    share = precision.narrow(share, dy.dtype)
    return np.ascontiguousarray(np.broadcast_to(share, x_shape))


# Kernel paths (kernels/pool.cu). Each takes float32, bfloat16 or float16 arrays (outputs of the
# same dtype) and launches one kernel per call.

_MAX_BLOCKS = 2048   # grid-stride kernels: enough blocks to fill a GPU; more only add launch cost


def _launch_elementwise(kernel, count, *args):
    """Launch a grid-stride kernel that writes ``count`` elements, one thread each."""
    launch.i32(count, f"{kernel}: elements")
    launch.run("pool.cu", kernel, launch.blocks_for(count, cap=_MAX_BLOCKS), launch.THREADS, *args)


def _geometry_args(x_shape, out_hw, pads, pool_size, strides):
    """The kernels' geometry arguments: n, h, w, c, out_h, out_w, kh, kw, sh, sw, pt, pl."""
    values = (*x_shape, *out_hw, *pool_size, *strides, pads[0][0], pads[1][0])
    return tuple(int(v) for v in values)


def _max_pool2d_forward_kernel(x, out_hw, pads, pool_size, strides):
    x, = launch.inputs("max_pool2d_forward", x, dtype=precision.FLOATS)
    out_shape = (x.shape[0], *out_hw, x.shape[3])
    y, argmax = launch.empty(out_shape, x.dtype), launch.empty(out_shape, np.int32)
    _launch_elementwise("max_pool2d_forward", y.size, x, y, argmax,
                        *_geometry_args(x.shape, out_hw, pads, pool_size, strides))
    return y, argmax


def _max_pool2d_backward_kernel(dy, argmax, x_shape, pool_size, strides, padding, fold):
    dy, = launch.inputs("max_pool2d_backward", dy, dtype=precision.FLOATS)
    argmax, = launch.inputs("max_pool2d_backward", argmax, dtype=np.int32)
    h, out_h, out_w = x_shape[1], dy.shape[1], dy.shape[2]
    if pool_size is None or strides is None or padding is None:
        # A window of H + OH rows at stride 1, padded OH - 1 before, covers every output from every
        # cell: each dx element then checks the whole plane's argmax, which is right for any geometry.
        pool_size, strides = (h + out_h, x_shape[2] + out_w), (1, 1)
        pads = ((out_h - 1, 0), (out_w - 1, 0))
    else:
        pads = _layout(x_shape, pool_size, strides, padding)[1]
    dx = launch.empty(x_shape, dy.dtype)
    _launch_elementwise("max_pool2d_backward", dx.size, dy, argmax, dx, *_fold_settings(fold, dy, dx.shape),
                        *_geometry_args(x_shape, (out_h, out_w), pads, pool_size, strides))
    return dx


def _fold_settings(fold, dy, shape):
    """``gate, has_gate, act, alpha`` of max_pool2d_backward: the gate (the pooled activation's
    output) in dy's dtype, as the kernel's T; without a fold dy stands in for it, never read."""
    op = "max_pool2d_backward"
    if dy.dtype == np.float32:
        return epilogue.fold_settings(fold, shape, op)
    if fold is None:
        return (dy, launch.i32(0), *epilogue.kernel_settings(None))
    gate, settings = fold
    if tuple(gate.shape) != tuple(shape):
        raise ValueError(f"{op}: the folded activation's output has shape {tuple(gate.shape)}; the gradient "
                         f"it gates has shape {tuple(shape)}.")
    gate, = launch.inputs(op, gate, dtype=(dy.dtype,))
    return (gate, launch.i32(1), *epilogue.kernel_settings(settings))


def _pool2d_kernel(kernel, a, x_shape, out_hw, pads, pool_size, strides):
    """Average pooling either way: ``a`` is x (forward) or dy (backward)."""
    a, = launch.inputs(kernel, a, dtype=precision.FLOATS)
    out = launch.empty((x_shape[0], *out_hw, x_shape[3]) if kernel.endswith("forward") else x_shape, a.dtype)
    _launch_elementwise(kernel, out.size, a, out, *_geometry_args(x_shape, out_hw, pads, pool_size, strides))
    return out


def _global_avg_pool2d_forward_kernel(x, keepdims):
    x, = launch.inputs("global_avg_pool2d_forward", x, dtype=precision.FLOATS)
    n, h, w, c = x.shape
    launch.i32(x.size, "global_avg_pool2d_forward: elements")
    lanes = launch.channel_lanes(c)
    y = launch.empty((n, c), x.dtype)
    launch.run("pool.cu", "global_avg_pool2d_forward", (n, -(-c // lanes)), launch.THREADS,
               x, y, n, h * w, c, lanes)
    return y.reshape(n, 1, 1, c) if keepdims else y


def _global_avg_pool2d_backward_kernel(dy, x_shape):
    dy, = launch.inputs("global_avg_pool2d_backward", dy, dtype=precision.FLOATS)
    n, h, w, c = (int(s) for s in x_shape)
    dx = launch.empty((n, h, w, c), dy.dtype)
    _launch_elementwise("global_avg_pool2d_backward", dx.size, dy, dx, n, h * w, c)
    return dx
