"""Elementwise arithmetic, comparisons and reductions with Keras's names and NumPy's broadcasting.

Each op: arguments to Tensors (``operands``), a forward from ``primitives.elementwise_nd``, and a
backward over arrays recorded on the tape. Shapes broadcast as in NumPy; the gradient of a
broadcast input is summed back to its shape (``sum_to_shape``).
"""
from ..autodiff import as_tensor, operands, record
from ..primitives import elementwise_nd as E, precision

__all__ = ["add", "subtract", "multiply", "divide", "true_divide", "power", "negative", "square", "sqrt",
           "abs", "absolute", "sign", "exp", "log", "log1p", "erf", "maximum", "minimum", "clip", "where",
           "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
           "sum", "mean", "max", "min", "var", "std", "argmax", "argmin", "logsumexp"]

_mul = lambda a, b: E.binary("multiply", a, b)     # noqa: E731 - array helpers for the backwards
_div = lambda a, b: E.binary("divide", a, b)       # noqa: E731


def _binary(op, x1, x2, backward, saved=None, save_output=False):
    a, b = operands(op, x1, x2)
    out = E.binary(op, a.data, b.data)
    sa, sb = a.shape, b.shape
    return record(op, out, (a, b), lambda dy, needs, *s: backward(dy, needs, sa, sb, *s),
                  saved=saved(a, b) if saved else (), save_output=save_output)


def _to(shape, g):
    return E.sum_to_shape(g, shape)


def add(x1, x2):
    """``x1 + x2``, broadcast."""
    return _binary("add", x1, x2, lambda dy, n, sa, sb: (_to(sa, dy) if n[0] else None, _to(sb, dy) if n[1] else None))


def subtract(x1, x2):
    """``x1 - x2``, broadcast."""
    return _binary("subtract", x1, x2, lambda dy, n, sa, sb: (
        _to(sa, dy) if n[0] else None, _to(sb, E.unary("negative", dy)) if n[1] else None))


def multiply(x1, x2):
    """``x1 * x2``, broadcast."""
    return _binary("multiply", x1, x2, lambda dy, n, sa, sb, a, b: (
        _to(sa, _mul(dy, b)) if n[0] else None, _to(sb, _mul(dy, a)) if n[1] else None), saved=lambda a, b: (a, b))


def _divide_backward(dy, needs, sa, sb, b, y):
    da = _div(dy, b)
    return (_to(sa, da) if needs[0] else None,
            _to(sb, E.unary("negative", _mul(da, y))) if needs[1] else None)


def divide(x1, x2):
    """``x1 / x2`` (true division; integers give float32), broadcast."""
    a, b = operands("divide", x1, x2)
    if not precision.is_float(a.dtype):
        a, b = as_tensor(a, "divide", "float32"), as_tensor(b, "divide", "float32")
    return _binary("divide", a, b, _divide_backward, saved=lambda a, b: (b,), save_output=True)


true_divide = divide


def _power_backward(dy, needs, sa, sb, a, b, y):
    da = db = None
    if needs[0]:
        da = _to(sa, _mul(dy, _mul(b, E.binary("power", a, E.binary("subtract", b, b.dtype.type(1))))))
    if needs[1]:   # log of a, with a = 0 counted as 1 (0 ** b has no slope in b), as JAX does
        safe = E.where(E.binary("equal", a, a.dtype.type(0)), a.dtype.type(1), a)
        db = _to(sb, _mul(dy, _mul(y, E.unary("log", safe))))
    return da, db


def power(x1, x2):
    """``x1 ** x2``, broadcast."""
    return _binary("power", x1, x2, _power_backward, saved=lambda a, b: (a, b), save_output=True)


def _chooser(op, mine):
    """maximum / minimum: the gradient goes to the input that was chosen (ties: the first)."""
    def backward(dy, needs, sa, sb, a, b):
        pick = E.binary(mine, a, b)
        zero = dy.dtype.type(0)
        return (_to(sa, E.where(pick, dy, zero)) if needs[0] else None,
                _to(sb, E.where(pick, zero, dy)) if needs[1] else None)
    return backward


def maximum(x1, x2):
    """Elementwise larger of ``x1`` and ``x2`` (NaN wins), broadcast."""
    return _binary("maximum", x1, x2, _chooser("maximum", "greater_equal"), saved=lambda a, b: (a, b))


def minimum(x1, x2):
    """Elementwise smaller of ``x1`` and ``x2`` (NaN wins), broadcast."""
    return _binary("minimum", x1, x2, _chooser("minimum", "less_equal"), saved=lambda a, b: (a, b))


def clip(x, x_min, x_max):
    """``x`` limited to ``[x_min, x_max]``."""
    return minimum(maximum(x, x_min), x_max)


def _no_gradient(dy, needs, *rest):
    return (None,) * len(needs)


def _comparison(op):
    def compare(x1, x2):
        a, b = operands(op, x1, x2)
        return record(op, E.binary(op, a.data, b.data), (a, b), _no_gradient)
    compare.__name__ = op
    compare.__doc__ = f"Elementwise ``{op}(x1, x2)`` as a bool tensor, broadcast (no gradient flows through)."
    return compare


equal, not_equal, less, less_equal, greater, greater_equal = map(
    _comparison, ("equal", "not_equal", "less", "less_equal", "greater", "greater_equal"))


def where(condition, x1, x2):
    """``x1`` where ``condition`` is true, else ``x2``; the three broadcast together."""
    cond = as_tensor(condition, "where")
    a, b = operands("where", x1, x2)
    sa, sb = a.shape, b.shape

    def backward(dy, needs, c):
        zero = dy.dtype.type(0)
        return (None, _to(sa, E.where(c, dy, zero)) if needs[1] else None,
                _to(sb, E.where(c, zero, dy)) if needs[2] else None)
    return record("where", E.where(cond.data, a.data, b.data), (cond, a, b), backward, saved=(cond,))


# -- unary ----------------------------------------------------------------------------------------------

def _unary(op, x, backward, save_input=False, save_output=False):
    t, = operands(op, x)
    if not precision.is_float(t.dtype) and op in ("sqrt", "exp", "log", "log1p", "erf"):
        t = as_tensor(t, op, "float32")
    return record(op, E.unary(op, t.data), (t,), backward, saved=(t,) if save_input else (), save_output=save_output)


def negative(x):
    """``-x``."""
    return _unary("negative", x, lambda dy, n: (E.unary("negative", dy),))


def square(x):
    """``x * x``."""
    return _unary("square", x, lambda dy, n, a: (_mul(dy, _mul(a, a.dtype.type(2))),), save_input=True)


def sqrt(x):
    """Square root (integers give float32)."""
    return _unary("sqrt", x, lambda dy, n, y: (_div(_mul(dy, y.dtype.type(0.5)), y),), save_output=True)


def exp(x):
    return _unary("exp", x, lambda dy, n, y: (_mul(dy, y),), save_output=True)


def log(x):
    """Natural logarithm."""
    return _unary("log", x, lambda dy, n, a: (_div(dy, a),), save_input=True)


def log1p(x):
    """``log(1 + x)``, accurate for small x."""
    return _unary("log1p", x, lambda dy, n, a: (_div(dy, E.binary("add", a, a.dtype.type(1))),), save_input=True)


def _erf_backward(dy, needs, a):
    """d erf(x) / dx = 2 / sqrt(pi) * exp(-x**2)."""
    slope = E.unary("exp", E.unary("negative", E.unary("square", a)))
    return (_mul(dy, _mul(slope, a.dtype.type(1.1283791670955126))),)


def erf(x):
    """The error function, ``2 / sqrt(pi) * integral of exp(-t**2) from 0 to x`` (integers give
    float32). Kernel: CUDA's ``erff``; NumPy: a float64 series, within a few float32 ulp of it."""
    return _unary("erf", x, _erf_backward, save_input=True)


def abs(x):
    """``|x|``; the gradient at 0 is 0."""
    return _unary("abs", x, lambda dy, n, a: (_mul(dy, E.unary("sign", a)),), save_input=True)


absolute = abs


def sign(x):
    """-1, 0 or 1 by the sign of ``x`` (zero gradient)."""
    return _unary("sign", x, _no_gradient)


# -- reductions ------------------------------------------------------------------------------------------

def _kept_shape(shape, axes):
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _reduce(op, x, axis, keepdims):
    t, = operands(op, x)
    if op == "mean" and not precision.is_float(t.dtype):
        t = as_tensor(t, op, "float32")
    axes = E.normalize_axis(op, axis, t.ndim)
    shape, kept = t.shape, _kept_shape(t.shape, axes)
    count = 1
    for a in axes:
        count *= shape[a]

    def backward(dy, needs, *saved):
        dy = dy.reshape(kept)
        if op == "sum":
            return (E.broadcast_to(dy, shape),)
        if op == "mean":
            return (E.broadcast_to(_mul(dy, dy.dtype.type(1.0 / count if count else 0.0)), shape),)
        a, y = saved   # max / min: the gradient is shared between the elements that reached the extreme
        hits = E.binary("equal", a, y.reshape(kept))
        ties = E.reduce("sum", hits.astype(dy.dtype), axes, keepdims=True)
        return (_div(E.where(hits, dy, dy.dtype.type(0)), ties),)
    return record(op, E.reduce(op, t.data, axes, keepdims), (t,), backward,
                  saved=(t,) if op in ("max", "min") else (), save_output=op in ("max", "min"))


def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (None: all axes; an int or a tuple); ``keepdims`` keeps them as size 1."""
    return _reduce("sum", x, axis, keepdims)


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (None: all axes); integers give float32."""
    return _reduce("mean", x, axis, keepdims)


def max(x, axis=None, keepdims=False, initial=None):
    """Largest value over ``axis``; ties share the gradient equally."""
    out = _reduce("max", x, axis, keepdims)
    return out if initial is None else maximum(out, initial)


def min(x, axis=None, keepdims=False, initial=None):
    """Smallest value over ``axis``; ties share the gradient equally."""
    out = _reduce("min", x, axis, keepdims)
    return out if initial is None else minimum(out, initial)


def var(x, axis=None, keepdims=False):
    """Variance over ``axis`` (divided by the count, as Keras)."""
    centred = subtract(x, mean(x, axis=axis, keepdims=True))
    return mean(square(centred), axis=axis, keepdims=keepdims)


def std(x, axis=None, keepdims=False):
    """Standard deviation over ``axis``."""
    return sqrt(var(x, axis=axis, keepdims=keepdims))


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` over ``axis``, with the maximum taken out first so large x stay finite."""
    from .core import stop_gradient
    peak = stop_gradient(max(x, axis=axis, keepdims=True))
    total = log(sum(exp(subtract(x, peak)), axis=axis, keepdims=True))
    out = add(total, peak)
    if keepdims:
        return out
    from .array import squeeze
    return squeeze(out, axis=axis) if axis is not None else squeeze(out)


def _arg(op, x, axis, keepdims):
    t = as_tensor(x, op)
    return record(op, E.arg_reduce(op, t.data, axis, keepdims), (t,), None)


def argmax(x, axis=None, keepdims=False):
    """Index (int32) of the largest value along ``axis`` (None: of the flattened tensor); not differentiable."""
    return _arg("argmax", x, axis, keepdims)


def argmin(x, axis=None, keepdims=False):
    """Index (int32) of the smallest value along ``axis``; not differentiable."""
    return _arg("argmin", x, axis, keepdims)
