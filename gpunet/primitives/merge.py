"""The merge ops beside Add (``shape.add_forward``): subtract, multiply, average, maximum, minimum.

Each forward takes a list of arrays of one shape and returns one array; each backward returns
one gradient per input, as separate arrays. Multiple inputs combine left to right
(``((x0 * x1) * x2)``), in the kernels as in the reference, so both round alike. Maximum and
minimum also return ``winner`` (int32, the index of the input each element came from; ties
go to the first input), which is all their backward needs.

On a kernel backend every op runs the kernels of ``kernels/elementwise.cu``.

Dtypes: float32, bfloat16 and float16 on every backend (float64 on numpy); the inputs of one
call share one dtype, which the outputs have (``winner`` is int32). Each kernel loads 16-bit
values as float32, computes and rounds once where it stores, so a combination of k inputs
rounds after each of its k - 1 pairwise steps (as Keras's bf16 / fp16 merges do, op by op);
the NumPy reference widens, computes and narrows at the same steps. Maximum, minimum and the
gradients that select or copy are exact; average's ``1 / n`` is a float32 factor.
"""
import numpy as np

from .. import backend
from . import launch, precision
from .shape import add_forward

_FILE = "elementwise.cu"
_MAX_BLOCKS = 2048


def _run(kernel, count, *args):
    launch.i32(count, f"{kernel}: elements written")
    launch.run(_FILE, kernel, launch.blocks_for(count, cap=_MAX_BLOCKS), launch.THREADS, *args)


def _same_shapes(op, xs):
    xs = launch.inputs(op, *xs, dtype=precision.FLOATS)
    if any(x.shape != xs[0].shape for x in xs):
        raise ValueError(f"{op} needs inputs of one shape; received shapes {[tuple(x.shape) for x in xs]}.")
    return xs


def _scaled(x, factor):
    if backend.current().runs_kernels:
        x, = launch.inputs("scale_copy", x, dtype=precision.FLOATS)
        out = launch.empty(x.shape, x.dtype)
        _run("scale_copy", out.size, x, out, out.size, launch.f32(factor))
        return out
    x32 = precision.widen(x)
    return precision.narrow((x32 * x32.dtype.type(factor)).astype(x32.dtype, copy=False), x.dtype)


def subtract_forward(a, b):
    """``a - b``."""
    if backend.current().runs_kernels:
        a, b = _same_shapes("subtract_forward", [a, b])
        out = launch.empty(a.shape, a.dtype)
        _run("subtract_forward", out.size, a, b, out, out.size)
        return out
    return precision.narrow(precision.widen(a) - precision.widen(b), a.dtype)


def subtract_backward(dy):
    """``[dy, -dy]``."""
    return [dy, _scaled(dy, -1.0)]


def average_forward(xs):
    """``(x0 + x1 + ...) / n``: the sum in input order, then one multiply by ``1 / n``."""
    return _scaled(add_forward(list(xs)), 1.0 / len(xs))


def average_backward(dy, n):
    """``dy / n`` for each of the ``n`` inputs."""
    return [_scaled(dy, 1.0 / n) for _ in range(n)]


def _product(arrays):
    """``((a0 * a1) * a2) ...`` of two or more arrays of one shape."""
    if backend.current().runs_kernels:
        arrays = _same_shapes("multiply_forward", arrays)
        out = launch.empty(arrays[0].shape, arrays[0].dtype)
        _run("multiply_forward", out.size, arrays[0], arrays[1], out, out.size)
        for a in arrays[2:]:
            _run("multiply_forward_accumulate", out.size, out, a, out.size)
        return out
    dtype, widen = arrays[0].dtype, precision.widen
    out = precision.narrow(widen(arrays[0]) * widen(arrays[1]), dtype)
    for a in arrays[2:]:   # rounded after each factor, as the accumulate kernel stores
        out = precision.narrow(widen(out) * widen(a), dtype)
    return out


def multiply_forward(xs):
    """Elementwise product of two or more arrays, left to right."""
    return _product(list(xs))


def multiply_backward(dy, xs):
    """``dx_k = dy * (product of the other inputs)``, the factors multiplied in input order."""
    return [_product([dy] + [x for j, x in enumerate(xs) if j != k]) for k in range(len(xs))]


def extreme_forward(xs, kind):
    """``kind`` "maximum" or "minimum" of two or more arrays: ``(out, winner)``."""
    if backend.current().runs_kernels:
        xs = _same_shapes(f"{kind}_forward", xs)
        out, winner = launch.empty(xs[0].shape, xs[0].dtype), launch.empty(xs[0].shape, np.int32)
        _run(f"{kind}_forward", out.size, xs[0], xs[1], out, winner, out.size)
        for k, x in enumerate(xs[2:], start=2):
            _run(f"{kind}_forward_accumulate", out.size, out, winner, x, k, out.size)
        return out, winner
    sign = 1 if kind == "maximum" else -1
    out, winner = xs[0].copy(), np.zeros(xs[0].shape, np.int32)
    for k, x in enumerate(xs[1:], start=1):   # compared as float32 (exact for 16-bit), copied as they are
        x32, out32 = precision.widen(x), precision.widen(out)
        wins = (sign * x32 > sign * out32) | (np.isnan(x32) & ~np.isnan(out32))
        out = np.where(wins, x, out)
        winner[wins] = k
    return out, winner


def extreme_backward(dy, winner, n):
    """Gradient of :func:`extreme_forward`: each element's ``dy`` goes to the input that won it."""
    if backend.current().runs_kernels:
        dy, = launch.inputs("select_backward", dy, dtype=precision.FLOATS)
        winner, = launch.inputs("select_backward", winner, dtype=np.int32)
        grads = []
        for k in range(n):
            dx = launch.empty(dy.shape, dy.dtype)
            _run("select_backward", dx.size, dy, winner, dx, dx.size, k)
            grads.append(dx)
        return grads
    zero = dy.dtype.type(0)
    return [np.where(winner == k, dy, zero) for k in range(n)]
