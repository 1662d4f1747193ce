"""Activations fused into the kernels next to them (``kernels/epilogue.cuh``), both directions.

Forward: a conv or dense op given ``activation=Epilogue(...)`` returns ``act(x (*) w + b)`` from
the one kernel that computes the product (on the numpy backend: the product, then the
activation op). Backward: an op that writes the gradient with respect to a layer's output
given ``fold=(y, Epilogue(...))`` returns that gradient multiplied by the activation's
derivative, read from the activation's output ``y`` (what a fused forward keeps), so the
layer that owns the activation launches nothing for it. :func:`activation_gradient` is the
same multiply on its own, for a fused layer whose gradient comes from a kernel that cannot
fold it.

Which activations (``Epilogue.name``): "relu" (plain max(x, 0)), "leaky_relu" (slope alpha >= 0),
"elu" (alpha > 0), "sigmoid", "tanh". Results equal the unfused ops bit for bit, except the ELU
gradient, within 2 ulp (it uses ``y + alpha`` for ``alpha * exp(x)``).

A float32 product finished in a 16-bit layer's dtype (``kernels/epilogue.cu``), for products
that return float32 (the tensor-core kernels) under bf16 / fp16::

    y  = epilogue.store(acc, dtype, bias=None, activation=None)   # forward
    dx = epilogue.store(acc, dtype, fold=(y_prev, Epilogue(...)))  # a folded input gradient

    acc (..., C) float32 (the product), bias (C,) float32 or None, activation an Epilogue or
    None, fold = (y_prev, Epilogue) with y_prev of acc's shape in ``dtype`` (the folded
    activation's output); dtype float32, "bfloat16" or "float16" -> an array of acc's shape in
    ``dtype``: T(act(acc + bias)), or T(acc * act'(.)) read from y_prev. One kernel, one rounding.

Dtypes: ``activation_gradient`` takes dy and y of one dtype (float32, bfloat16 or float16) and
returns that dtype; every function computes in float32 and rounds once where it stores (the
NumPy reference widens 16-bit inputs, computes in float32 and narrows once, as the kernels do).
"""
import collections

import numpy as np

from .. import backend
from . import activation, launch, precision

__all__ = ["Epilogue", "CODES", "activate", "activation_gradient", "store", "kernel_settings", "fold_settings"]

CODES = {None: 0, "relu": 1, "leaky_relu": 2, "elu": 3, "sigmoid": 4, "tanh": 5}   # epilogue.cuh's ACT_*


class Epilogue(collections.namedtuple("Epilogue", ["name", "alpha"])):
    """An activation a kernel applies to its own output: ``name`` a key of ``CODES``, ``alpha``
    the leaky slope or the ELU alpha (0 otherwise)."""

    def __new__(cls, name, alpha=0.0):
        if name not in CODES or name is None:
            raise ValueError(f"Epilogue name must be one of {', '.join(n for n in CODES if n)}; received {name!r}.")
        if (name == "leaky_relu" and not alpha >= 0) or (name == "elu" and not alpha > 0):
            raise ValueError(f"Epilogue {name} needs alpha {'>= 0' if name == 'leaky_relu' else '> 0'} "
                             f"(its gradient is read from the output); received alpha={alpha!r}.")
        return super().__new__(cls, name, float(alpha))


def activate(z, epilogue):
    """``act(z)`` by the activation ops (the numpy backend's forward epilogue)."""
    if epilogue is None:
        return z
    name, alpha = epilogue
    if name == "relu":
        return activation.relu_forward(z)
    if name == "leaky_relu":
        return activation.leaky_relu_forward(z, alpha)
    if name == "elu":
        return activation.elu_forward(z, alpha)
    return activation.sigmoid_forward(z) if name == "sigmoid" else activation.tanh_forward(z)


def activation_gradient(dy, y, epilogue):
    """``dy * act'(x)`` from the activation's output ``y`` (same shapes); see the module doc."""
    if backend.current().runs_kernels:
        dy, y = activation.kernel_arrays("fused_activation_backward", [dy, y], precision.FLOATS)
        out = launch.empty(dy.shape, dy.dtype)
        n = launch.i32(out.size, "fused_activation_backward: elements")
        launch.run("activation.cu", "fused_activation_backward", launch.blocks_for(n, cap=2048), launch.THREADS,
                   dy, y, out, n, *kernel_settings(epilogue))
        return out
    if precision.is_half(dy.dtype):   # computed in float32, rounded once, as the kernel
        return precision.narrow(activation_gradient(precision.widen(dy), precision.widen(y), epilogue), dy.dtype)
    name, alpha = epilogue
    one = y.dtype.type(1)
    if name == "relu":
        return dy * (y > 0)
    if name == "leaky_relu":
        return dy * np.where(y > 0, one, y.dtype.type(alpha))
    if name == "elu":
        return dy * np.where(y > 0, one, y + y.dtype.type(alpha))
    return dy * y * (one - y) if name == "sigmoid" else dy * (one - y * y)


def kernel_settings(epilogue):
    """The kernels' ``act, alpha`` arguments (``0, 0.0`` for None)."""
    if epilogue is None:
        return launch.i32(0), launch.f32(0.0)
    return launch.i32(CODES[epilogue.name]), launch.f32(epilogue.alpha)


def fold_settings(fold, shape, op):
    """The kernels' ``gate, has_gate, act, alpha`` for ``fold = (y, Epilogue)`` or None; ``y``
    must have the gradient's ``shape``. Without a fold the gate is a placeholder never read."""
    if fold is None:
        return (launch.placeholder(), launch.i32(0), *kernel_settings(None))
    y, epilogue = fold
    if tuple(y.shape) != tuple(shape):
        raise ValueError(f"{op}: the folded activation's output has shape {tuple(y.shape)}; the gradient "
                         f"it gates has shape {tuple(shape)}.")
    y, = launch.inputs(op, y)
    return (y, launch.i32(1), *kernel_settings(epilogue))


def apply_fold(dx, fold):
    """The numpy backend's backward fold: ``dx`` gated by ``fold`` (or unchanged for None)."""
    return dx if fold is None or dx is None else activation_gradient(dx, fold[0], fold[1])



def store(acc, dtype, bias=None, activation=None, fold=None):
    """A float32 product ``acc`` (..., C) finished as ``dtype``: ``T(act(acc + bias))``, or with
    ``fold = (y, Epilogue)`` the gradient ``T(acc * act'(.))`` read from ``y`` (acc's shape, in
    ``dtype``). ``bias`` (C,) float32 or None. Returns an array of acc's shape in ``dtype``."""
    dtype = precision.dtype_of(dtype)
    _check_store(acc, dtype, bias, activation, fold)
    if not backend.current().runs_kernels:   # the reference: float32 (or float64) math, one rounding
        v = acc + bias if bias is not None else acc
        v = activation_gradient(v, precision.widen(fold[0]), fold[1]) if fold else activate(v, activation)
        return precision.narrow(v, dtype)
    acc, = launch.inputs("epilogue.store", acc)
    has_bias = bias is not None and fold is None    # decided before bias becomes a placeholder
    bias = launch.placeholder() if bias is None else launch.inputs("epilogue.store", bias)[0]
    y = launch.empty(acc.shape, dtype)
    gate = _placeholder(dtype) if fold is None else launch.inputs("epilogue.store", fold[0], dtype=dtype)[0]
    n = launch.i32(acc.size, "epilogue.store: elements")
    channels = acc.shape[-1] if acc.ndim else 1
    launch.run("epilogue.cu", "bias_activation_store", launch.blocks_for(n, cap=2048), launch.THREADS,
               acc, bias, y, gate, n, launch.i32(max(channels, 1)), launch.i32(has_bias),
               launch.i32(fold is not None), *kernel_settings(fold[1] if fold else activation))
    return y


def _check_store(acc, dtype, bias, activation, fold):
    """store's arguments agree: a ValueError / TypeError naming the argument otherwise."""
    if backend.current().runs_kernels and (acc.dtype != np.float32 or dtype not in precision.FLOATS):
        raise TypeError(f"epilogue.store on the {backend.current().name} backend finishes a float32 product "
                        f"as {', '.join(d.name for d in precision.FLOATS)}; received acc of dtype "
                        f"{acc.dtype} and dtype={dtype.name}.")
    channels = acc.shape[-1] if acc.ndim else 1
    if bias is not None and tuple(bias.shape) != (channels,):
        raise ValueError(f"epilogue.store: bias has shape {tuple(bias.shape)}; expected ({channels},) for "
                         f"acc of shape {tuple(acc.shape)}.")
    if fold is not None:
        if activation is not None or bias is not None:
            raise ValueError("epilogue.store: fold (a gradient) takes neither bias nor activation.")
        if tuple(fold[0].shape) != tuple(acc.shape) or fold[0].dtype != dtype:
            raise ValueError(f"epilogue.store: the folded activation's output must have acc's shape "
                             f"{tuple(acc.shape)} and dtype {dtype.name}; received {tuple(fold[0].shape)} "
                             f"{fold[0].dtype}.")


_gates = {}   # (backend, dtype) -> a one-element array of dtype: the gate store() never reads


def _placeholder(dtype):
    be = backend.current()
    held = _gates.get((id(be), dtype))
    if held is None or held[0] is not be:
        held = _gates[(id(be), dtype)] = (be, be.zeros((1,), dtype))
    return held[1]
