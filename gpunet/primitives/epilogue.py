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
"""
import collections

import numpy as np

from .. import backend
from . import activation, launch

__all__ = ["Epilogue", "CODES", "activate", "activation_gradient", "kernel_settings", "fold_settings"]

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
        dy, y = activation.kernel_arrays("fused_activation_backward", [dy, y])
        out = launch.empty(dy.shape)
        n = launch.i32(out.size, "fused_activation_backward: elements")
        launch.run("activation.cu", "fused_activation_backward", launch.blocks_for(n, cap=2048), launch.THREADS,
                   dy, y, out, n, *kernel_settings(epilogue))
        return out
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

