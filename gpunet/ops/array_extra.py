"""Rearranging ops with Keras's names: flip, roll, tile, repeat, pad, cumsum, cumprod, meshgrid.

Most are compositions of ops that already run kernels and record their own gradients: ``flip`` is
a slice with step -1 (the strided-copy kernel), ``roll`` two slices joined by ``concatenate``,
``tile`` and an int ``repeat`` a ``broadcast_to`` between reshapes (the gradient sums the copies
back with the reduce kernel), a per-element ``repeat`` a ``take``, ``pad`` per axis the edge
pieces (``full``, or slices of ``x``, flipped for "reflect" / "symmetric") joined by
``concatenate``, ``meshgrid`` a ``broadcast_to`` per input. ``cumsum`` / ``cumprod`` run the scan kernels of ``primitives.scan``.
"""
import builtins

import numpy as np

from ..autodiff import Tensor, as_tensor, record
from ..primitives import elementwise_nd as E
from ..primitives import precision, scan
from .array import broadcast_to, concatenate, getitem, reshape, take
from .core import cast, convert_to_numpy, full

__all__ = ["flip", "roll", "tile", "repeat", "pad", "cumsum", "cumprod", "meshgrid"]

PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def _cut(t, axis, start, stop, step=None):
    key = [slice(None)] * t.ndim
    key[axis] = slice(start, stop, step)
    return getitem(t, tuple(key))


def flip(x, axis=None):
    """``x`` with the order of its elements reversed along ``axis`` (None: every axis; an int or a
    tuple). Same shape; the gradient is ``dy`` flipped back."""
    t = as_tensor(x, "flip")
    axes = E.normalize_axis("flip", axis, t.ndim)
    if not axes:
        return t
    return getitem(t, tuple(slice(None, None, -1) if a in axes else slice(None) for a in range(t.ndim)))


def _int_list(op, name, value):
    values = np.asarray(convert_to_numpy(value) if isinstance(value, Tensor) else value)
    if values.size and values.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must be integers; received {value!r}.")
    return [int(v) for v in values.reshape(-1)], values.ndim == 0


def roll(x, shift, axis=None):
    """Elements of ``x`` shifted by ``shift`` along ``axis`` (an int or a tuple matching ``shift``),
    those pushed past the end coming back at the start; ``axis=None`` rolls the flattened tensor
    and restores the shape. (...) -> (...)."""
    t = as_tensor(x, "roll")
    shifts, _ = _int_list("roll", "shift", shift)
    if axis is None:
        if len(shifts) != 1:
            raise ValueError(f"roll: with axis=None, shift must be one int; received {shift!r}.")
        return reshape(roll(reshape(t, (-1,)), shifts[0], 0), t.shape)
    axes = [int(axis)] if isinstance(axis, (int, np.integer)) else [int(a) for a in axis]
    if len(shifts) == 1:
        shifts = shifts * len(axes)
    if len(shifts) != len(axes):
        raise ValueError(f"roll: shift {shift!r} and axis {axis!r} must have the same length.")
    out = t
    for s, a in zip(shifts, axes):
        if not -t.ndim <= a < builtins.max(t.ndim, 1):
            raise ValueError(f"roll: axis {a} is out of range for an input of rank {t.ndim}.")
        a %= t.ndim
        n = t.shape[a]
        s = s % n if n else 0
        if s:
            out = concatenate([_cut(out, a, n - s, None), _cut(out, a, None, n - s)], axis=a)
    return out


def tile(x, repeats):
    """``x`` repeated ``repeats[i]`` times along axis i, as ``np.tile``: a shorter ``repeats`` is
    padded with 1 in front, a longer one gives ``x`` new leading axes. (s0, s1, ...) ->
    (r0 * s0, r1 * s1, ...)."""
    t = as_tensor(x, "tile")
    reps, _ = _int_list("tile", "repeats", repeats)
    if any(r < 0 for r in reps):
        raise ValueError(f"tile: repeats must be non-negative; received {repeats!r}.")
    ndim = builtins.max(len(reps), t.ndim)
    reps = [1] * (ndim - len(reps)) + reps
    shape = [1] * (ndim - t.ndim) + list(t.shape)
    if all(r == 1 for r in reps):
        return reshape(t, tuple(shape))
    spread = [v for r, s in zip(reps, shape) for v in (1, s)]     # (1, s0, 1, s1, ...)
    copies = [v for r, s in zip(reps, shape) for v in (r, s)]     # (r0, s0, r1, s1, ...)
    return reshape(broadcast_to(reshape(t, tuple(spread)), tuple(copies)), tuple(r * s for r, s in zip(reps, shape)))


def repeat(x, repeats, axis=None):
    """Each element of ``x`` repeated along ``axis`` (None: of the flattened tensor): ``repeats``
    times when an int, ``repeats[i]`` times for element i when a sequence as long as the axis."""
    t = as_tensor(x, "repeat")
    counts, scalar = _int_list("repeat", "repeats", repeats)
    if any(c < 0 for c in counts):
        raise ValueError(f"repeat: repeats must be non-negative; received {repeats!r}.")
    if axis is None:
        t, axis = reshape(t, (-1,)), 0
    if not -t.ndim <= int(axis) < builtins.max(t.ndim, 1):
        raise ValueError(f"repeat: axis {axis} is out of range for an input of rank {t.ndim}.")
    axis = int(axis) % t.ndim
    n = t.shape[axis]
    if scalar or len(counts) == 1:
        r = counts[0]
        spread = (*t.shape[:axis + 1], 1, *t.shape[axis + 1:])
        copies = (*t.shape[:axis + 1], r, *t.shape[axis + 1:])
        merged = (*t.shape[:axis], n * r, *t.shape[axis + 1:])
        return reshape(broadcast_to(reshape(t, spread), copies), merged)
    if len(counts) != n:
        raise ValueError(f"repeat: repeats has {len(counts)} entries but axis {axis} of shape {t.shape} has {n}.")
    return take(t, np.repeat(np.arange(n, dtype=np.int32), counts), axis=axis)


# -- pad --------------------------------------------------------------------------------------------

def _pad_widths(pad_width, ndim):
    """``pad_width`` as Keras reads it (an int, one (before, after) pair, or one pair or single per
    axis) as a list of ndim (before, after) pairs of non-negative ints."""
    def pair(item):
        item = (item,) if isinstance(item, (int, np.integer)) else tuple(item)
        if len(item) not in (1, 2) or not all(isinstance(v, (int, np.integer)) for v in item):
            raise ValueError(f"pad: pad_width should hold (before, after) pairs of ints; received {pad_width!r}.")
        return (int(item[0]), int(item[-1]))
    width = np.asarray(convert_to_numpy(pad_width)).tolist() if isinstance(pad_width, Tensor) else pad_width
    if isinstance(width, (int, np.integer)) or (len(width) and isinstance(width[0], (int, np.integer))):
        pairs = [pair(width)] * ndim
    else:
        pairs = [pair(w) for w in width]
        if len(pairs) == 1:
            pairs = pairs * ndim
    if len(pairs) != ndim:
        raise ValueError(f"pad: pad_width must have the same length as x.shape; received pad_width={pad_width!r} "
                         f"(of length {len(pairs)}) and x.shape={ndim} axes.")
    if any(v < 0 for p in pairs for v in p):
        raise ValueError(f"pad: pad_width must be non-negative; received {pad_width!r}.")
    return pairs


def _edge_pieces(t, axis, before, after, mode, value):
    """The (before, after) pieces that ``mode`` adds along ``axis`` (None where 0 wide)."""
    n = t.shape[axis]
    limit = {"reflect": n - 1, "symmetric": n, "wrap": n}.get(mode, None if n else 0)
    if limit is not None and builtins.max(before, after) > limit:
        raise ValueError(f"pad: mode={mode!r} pads axis {axis} of size {n} by at most {limit}; "
                         f"received ({before}, {after}).")
    pieces = []
    for k, at_start in ((before, True), (after, False)):
        sized = tuple(k if a == axis else s for a, s in enumerate(t.shape))
        if k == 0:
            pieces.append(None)
        elif mode == "constant":
            pieces.append(full(sized, value, t.dtype))
        elif mode == "edge":
            pieces.append(broadcast_to(_cut(t, axis, 0, 1) if at_start else _cut(t, axis, n - 1, n), sized))
        elif mode == "wrap":
            pieces.append(_cut(t, axis, n - k, n) if at_start else _cut(t, axis, 0, k))
        else:   # reflect skips the edge element, symmetric repeats it
            skip = 1 if mode == "reflect" else 0
            piece = _cut(t, axis, skip, skip + k) if at_start else _cut(t, axis, n - k - skip, n - skip)
            pieces.append(flip(piece, axis))
    return pieces


def pad(x, pad_width, mode="constant", constant_values=None):
    """``x`` padded by ``pad_width`` ((before, after) per axis; an int or one pair for every axis).
    ``mode``: "constant" (``constant_values``, default 0), "edge", "reflect", "symmetric" or "wrap",
    as NumPy. (s0, s1, ...) -> (s0 + b0 + a0, ...); the gradient is ``dy``'s middle (plus, for the
    copying modes, the shares of the padded copies)."""
    t = as_tensor(x, "pad")
    if mode not in PAD_MODES:
        raise ValueError(f"pad: mode must be one of {', '.join(PAD_MODES)}; received mode={mode!r}.")
    if constant_values is not None and mode != "constant":
        raise ValueError(f"pad: constant_values can only be given with mode='constant'; received mode={mode!r}.")
    value = 0 if constant_values is None else constant_values
    out = t
    for axis, (before, after) in enumerate(_pad_widths(pad_width, t.ndim)):
        if before or after:
            head, tail = _edge_pieces(out, axis, before, after, mode, value)
            out = concatenate([p for p in (head, out, tail) if p is not None], axis=axis)
    return out


# -- cumulative -------------------------------------------------------------------------------------

def _cumulative(op, x, axis, dtype):
    t = as_tensor(x, "cum" + op)
    if dtype is not None:
        t = cast(t, dtype)
    elif t.dtype == np.bool_:
        t = cast(t, "int32")     # Keras: a running count of true values
    if axis is None:
        t, axis = reshape(t, (-1,)), 0
    axis = E.normalize_axis("cum" + op, axis, t.ndim)[0] if t.ndim else 0
    if t.ndim == 0:
        t = reshape(t, (1,))
    data = scan.cumulative(op, t.data, axis)
    if not precision.is_float(t.dtype):
        return record("cum" + op, data, (t,), None)
    if op == "sum":
        return record("cumsum", data, (t,), lambda dy, n: (scan.cumsum_backward(dy, axis),))
    return record("cumprod", data, (t,), lambda dy, n, a, y: (scan.cumprod_backward(dy, a, y, axis),),
                  saved=(t,), save_output=True)


def cumsum(x, axis=None, dtype=None):
    """Running sums along ``axis`` (None: of the flattened tensor), in ``dtype`` if given. Same
    shape (flattened for None); a sequential float32 scan per line on every backend."""
    return _cumulative("sum", x, axis, dtype)


def cumprod(x, axis=None, dtype=None):
    """Running products along ``axis`` (None: of the flattened tensor). The gradient divides by
    ``x``: exact for non-zero inputs (a zero input gives a non-finite gradient)."""
    return _cumulative("prod", x, axis, dtype)


def meshgrid(*x, indexing="xy"):
    """Coordinate grids from 1-D tensors of sizes (n0, n1, ...), as ``np.meshgrid``: a list, one
    per input, each of shape (n0, n1, ...) with "ij" indexing, or with the first two sizes
    swapped, (n1, n0, ...), with "xy" (the default)."""
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij'; received indexing={indexing!r}.")
    ts = [reshape(as_tensor(v, "meshgrid"), (-1,)) for v in x]
    sizes = [t.shape[0] for t in ts]
    swap = indexing == "xy" and len(ts) >= 2
    places = [1 - i if swap and i < 2 else i for i in range(len(ts))]
    shape = [0] * len(ts)
    for size, place in zip(sizes, places):
        shape[place] = size
    out = []
    for t, place in zip(ts, places):
        spread = [1] * len(ts)
        spread[place] = t.shape[0]
        out.append(broadcast_to(reshape(t, tuple(spread)), tuple(shape)))
    return out
