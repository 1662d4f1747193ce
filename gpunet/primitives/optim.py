"""Optimizer updates: one fused in-place step per optimizer over one parameter, plus clipping.

Every update follows Keras 3's formula (``keras/src/optimizers``), including the order of
its products, so that a float32 step here matches Keras's to rounding. ``lr`` is the learning
rate of this step (the schedule already evaluated); ``weight_decay`` is Keras's decoupled
decay ``p -= p * weight_decay * lr``, applied before the update, fused into the same
call so that one kernel launch does both.

Arrays are updated in place (``=`` into the slots and the parameter); each slot has the
parameter's shape and dtype. Slots an option does not use are passed as ``None``: SGD's
``velocity`` when ``momentum == 0``, Adam's ``v_hat`` without AMSGrad, RMSprop's
``momentum_buf`` when ``momentum == 0`` and ``average_grad`` when not centered.

The clipping helpers return new arrays and never touch the caller's gradients.

On a kernel backend (``backend.current().runs_kernels``) every update is one launch of its
fused float32 kernel in ``kernels/optim.cu`` (AdamW is the Adam kernel with its decay), and
the clipping helpers run the norm reductions and rescaling kernels there, the norm staying on
the device. There the parameter and its slots must already be C-contiguous float32 arrays of
the backend, since they are updated in place.
"""
import math

import numpy as np

from .. import backend
from . import launch, optim_state

__all__ = [
    "sgd_update", "adam_update", "adamw_update", "rmsprop_update",
    "sgd_update_many", "adam_update_many", "rmsprop_update_many",
    "apply_weight_decay", "clip_by_value", "clip_by_norm", "clip_by_global_norm",
]


def apply_weight_decay(param, lr, weight_decay):
    """Decoupled weight decay in place: ``param -= param * weight_decay * lr`` (Keras's order)."""
    if weight_decay:
        param -= param * weight_decay * lr


def sgd_update(param, grad, velocity, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    """One SGD step in place.

    Plain: ``p -= lr * g``. With momentum (``velocity`` an array of p's shape):
    ``velocity = momentum * velocity - lr * g`` then ``p += velocity``, or with Nesterov
    ``p += momentum * velocity - lr * g`` (the updated velocity).
    """
    if backend.current().runs_kernels:
        _sgd_kernel(param, grad, velocity, lr, momentum, nesterov, weight_decay)
        return
    apply_weight_decay(param, lr, weight_decay)
    if velocity is None:
        param -= grad * lr
        return
    velocity *= momentum
    velocity -= grad * lr
    if nesterov:
        param += velocity * momentum - grad * lr
    else:
        param += velocity


def adam_update(param, grad, m, v, lr, beta_1, beta_2, epsilon, step, v_hat=None, weight_decay=0.0):
    """One Adam step in place; ``step`` counts from 1 on the first update.

    ``m += (g - m) * (1 - beta_1)``; ``v += (g**2 - v) * (1 - beta_2)``;
    AMSGrad (``v_hat`` given): ``v_hat = max(v_hat, v)`` and ``v_hat`` replaces ``v`` below;
    ``p -= m * alpha / (sqrt(v) + epsilon)`` with the bias correction folded into
    ``alpha = lr * sqrt(1 - beta_2**step) / (1 - beta_1**step)``.
    """
    if step < 1:
        raise ValueError(f"adam_update: step counts from 1; received step={step}.")
    alpha = lr * math.sqrt(1.0 - beta_2 ** step) / (1.0 - beta_1 ** step)
    if backend.current().runs_kernels:
        _adam_kernel(param, grad, m, v, v_hat, alpha, lr, beta_1, beta_2, epsilon, weight_decay)
        return
    apply_weight_decay(param, lr, weight_decay)
    m += (grad - m) * (1.0 - beta_1)
    v += (grad * grad - v) * (1.0 - beta_2)
    second = v
    if v_hat is not None:
        np.maximum(v_hat, v, out=v_hat)
        second = v_hat
    param -= (m * alpha) / (np.sqrt(second) + epsilon)


def adamw_update(param, grad, m, v, lr, weight_decay, beta_1, beta_2, epsilon, step, v_hat=None):
    """AdamW: the decoupled decay ``p -= p * weight_decay * lr``, then the Adam step above."""
    adam_update(param, grad, m, v, lr, beta_1, beta_2, epsilon, step, v_hat=v_hat,
                weight_decay=weight_decay)


def rmsprop_update(param, grad, velocity, momentum_buf, lr, rho, momentum, epsilon,
                   average_grad=None, weight_decay=0.0):
    """One RMSprop step in place.

    ``velocity = rho * velocity + (1 - rho) * g**2``; centered (``average_grad`` given):
    ``average_grad = rho * average_grad + (1 - rho) * g`` and the denominator is
    ``sqrt(velocity - average_grad**2 + epsilon)``, else ``sqrt(velocity + epsilon)``;
    ``increment = lr * g / denominator``; with momentum (``momentum_buf`` given):
    ``momentum_buf = momentum * momentum_buf + increment`` and ``p -= momentum_buf``,
    else ``p -= increment``.
    """
    if backend.current().runs_kernels:
        _rmsprop_kernel(param, grad, velocity, momentum_buf, average_grad, lr, rho, momentum, epsilon,
                        weight_decay)
        return
    apply_weight_decay(param, lr, weight_decay)
    velocity *= rho
    velocity += (grad * grad) * (1.0 - rho)
    if average_grad is not None:
        average_grad *= rho
        average_grad += grad * (1.0 - rho)
        denominator = velocity - average_grad * average_grad + epsilon
    else:
        denominator = velocity + epsilon
    increment = (grad * lr) / np.sqrt(denominator)
    if momentum_buf is not None:
        momentum_buf *= momentum
        momentum_buf += increment
        param -= momentum_buf
    else:
        param -= increment


# -- every parameter at once: one launch on a kernel backend ----------------------------------
# Lists of parameters, gradients and slots (a slot list None when the option leaves it unused);
# the result is exactly that of the per-parameter op above applied to each in turn.
# ``step``: on a kernel backend, an optimizer's ``(StepState, settings)`` (optim_state.py): the
# kernel then takes the rate, Adam's step and the skip flag from the device state, ignores
# ``lr`` / ``step`` given here, and counts the step there. Without it, a state holding ``lr``
# and the step is made for this one call (an upload: for direct calls, not a training loop).

def _step_state(step, lr, count=1, beta_1=0.0, beta_2=0.0):
    if step is not None:
        return step
    state = optim_state.StepState(iterations=count - 1)
    return state, state.settings((0, (float(lr),)), beta_1, beta_2)


def sgd_update_many(params, grads, velocities, lr, momentum=0.0, nesterov=False, weight_decay=0.0, step=None):
    """:func:`sgd_update` over every parameter; ``velocities`` a list, or None without momentum."""
    if backend.current().runs_kernels:
        _many_kernel("sgd_update_many", params, grads, [velocities], _step_state(step, lr), float(momentum),
                     float(weight_decay or 0.0), int(velocities is not None), int(bool(nesterov)))
        return
    for i, (param, grad) in enumerate(zip(params, grads)):
        sgd_update(param, grad, None if velocities is None else velocities[i], lr, momentum, nesterov,
                   weight_decay)


def adam_update_many(params, grads, ms, vs, lr, beta_1, beta_2, epsilon, step_count, v_hats=None,
                     weight_decay=0.0, step=None):
    """:func:`adam_update` (AdamW with ``weight_decay``) over every parameter; ``v_hats`` for AMSGrad.
    ``step_count`` counts from 1 (the ``step`` of :func:`adam_update`)."""
    if step_count < 1:
        raise ValueError(f"adam_update_many: step counts from 1; received step={step_count}.")
    if backend.current().runs_kernels:
        _many_kernel("adam_update_many", params, grads, [ms, vs, v_hats],
                     _step_state(step, lr, step_count, beta_1, beta_2), float(1.0 - beta_1), float(1.0 - beta_2),
                     float(epsilon), float(weight_decay or 0.0), int(v_hats is not None))
        return
    for i, (param, grad) in enumerate(zip(params, grads)):
        adam_update(param, grad, ms[i], vs[i], lr, beta_1, beta_2, epsilon, step_count,
                    v_hat=None if v_hats is None else v_hats[i], weight_decay=weight_decay)


def rmsprop_update_many(params, grads, velocities, momentum_bufs, lr, rho, momentum, epsilon,
                        average_grads=None, weight_decay=0.0, step=None):
    """:func:`rmsprop_update` over every parameter; ``momentum_bufs`` / ``average_grads`` lists or None."""
    if backend.current().runs_kernels:
        _many_kernel("rmsprop_update_many", params, grads, [velocities, momentum_bufs, average_grads],
                     _step_state(step, lr), float(rho), float(1.0 - rho), float(momentum), float(epsilon),
                     float(weight_decay or 0.0), int(momentum_bufs is not None), int(average_grads is not None))
        return
    for i, (param, grad) in enumerate(zip(params, grads)):
        rmsprop_update(param, grad, velocities[i], None if momentum_bufs is None else momentum_bufs[i], lr,
                       rho, momentum, epsilon, None if average_grads is None else average_grads[i],
                       weight_decay)


def clip_by_value(grad, clipvalue):
    """``grad`` clipped elementwise to ``[-clipvalue, clipvalue]`` (a new array)."""
    if backend.current().runs_kernels:
        return _clip_by_value_kernel(grad, clipvalue)
    return grad.clip(-clipvalue, clipvalue)


def clip_by_norm(grad, clipnorm):
    """``grad * clipnorm / max(||grad||, clipnorm)``: rescaled only when its L2 norm exceeds clipnorm."""
    if backend.current().runs_kernels:
        return _clip_by_norm_kernel(grad, clipnorm)
    norm = float(np.sqrt((grad * grad).sum()))
    return grad * clipnorm / max(norm, clipnorm)


def clip_by_global_norm(grads, clipnorm):
    """All ``grads`` rescaled together so that their joint L2 norm is at most ``clipnorm``.

    As in Keras, a non-finite joint norm turns every gradient into NaN rather than into
    zeros, so that a diverged step is visible instead of silently skipped.
    """
    if backend.current().runs_kernels:
        return _clip_by_global_norm_kernel(list(grads), clipnorm)
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    scale = clipnorm / max(norm, clipnorm) if math.isfinite(norm) else math.nan
    return [g * scale for g in grads]


# -- kernel paths (kernels/optim.cu) ---------------------------------------------------------
_MAX_BLOCKS = 256   # grid-stride kernels; also the most partial sums a norm reduction makes


def _read_arrays(op, *arrays):
    """Arrays a kernel only reads: float32 (kernels are float32 only), C-contiguous, on the backend."""
    for a in arrays:
        if a.dtype != np.float32:
            raise TypeError(f"{op} on the {backend.current().name} backend runs float32 kernels; "
                            f"received an array of dtype {a.dtype}. "
                            "Use dtype='float32' or the numpy backend.")
    return [launch.array(a) for a in arrays]


def _in_place(op, size, **arrays):
    """Arrays a kernel updates in place, checked: a converted copy would leave the caller's unchanged.

    Unused slots (None) become a one-element placeholder the kernel never dereferences.
    """
    be = backend.current()
    checked = []
    for name, a in arrays.items():
        if a is None:
            checked.append(launch.empty((1,)))
            continue
        if not isinstance(a, be.xp.ndarray) or a.dtype != np.float32 or not a.flags.c_contiguous:
            raise TypeError(f"{op} on the {be.name} backend updates {name} in place, so it must be a "
                            f"C-contiguous float32 {be.xp.__name__} array; received "
                            f"{type(a).__name__} of dtype {a.dtype}.")
        if a.size != size:
            raise ValueError(f"{op}: {name} has {a.size} elements; the parameter has {size}.")
        checked.append(a)
    return checked


def _run_elementwise(kernel, count, *args):
    """Launch a grid-stride optim.cu kernel over ``count`` elements."""
    launch.i32(count, f"{kernel}: elements")
    launch.run("optim.cu", kernel, launch.blocks_for(count, cap=_MAX_BLOCKS), launch.THREADS, *args)


def _sgd_kernel(param, grad, velocity, lr, momentum, nesterov, weight_decay):
    grad, = _read_arrays("sgd_update", grad)
    param, velocity_arg = _in_place("sgd_update", grad.size, param=param, velocity=velocity)
    _run_elementwise("sgd_update", param.size, param, grad, velocity_arg, param.size, float(lr),
                     float(momentum), float(weight_decay or 0.0), int(velocity is not None),
                     int(bool(nesterov)))


def _adam_kernel(param, grad, m, v, v_hat, alpha, lr, beta_1, beta_2, epsilon, weight_decay):
    grad, = _read_arrays("adam_update", grad)
    arrays = _in_place("adam_update", grad.size, param=param, m=m, v=v, v_hat=v_hat)
    _run_elementwise("adam_update", grad.size, arrays[0], grad, *arrays[1:], grad.size, float(alpha),
                     float(1.0 - beta_1), float(1.0 - beta_2), float(epsilon), float(lr),
                     float(weight_decay or 0.0), int(v_hat is not None))


def _rmsprop_kernel(param, grad, velocity, momentum_buf, average_grad, lr, rho, momentum, epsilon,
                    weight_decay):
    grad, = _read_arrays("rmsprop_update", grad)
    arrays = _in_place("rmsprop_update", grad.size, param=param, velocity=velocity,
                       momentum_buf=momentum_buf, average_grad=average_grad)
    _run_elementwise("rmsprop_update", grad.size, arrays[0], grad, *arrays[1:], grad.size, float(lr),
                     float(rho), float(1.0 - rho), float(momentum), float(epsilon),
                     float(weight_decay or 0.0), int(momentum_buf is not None), int(average_grad is not None))


def _many_kernel(kernel, params, grads, slot_lists, step, *settings, file="optim.cu"):
    """One launch of a ``*_update_many`` kernel: the addresses of every parameter, gradient and used
    slot in one table (parameters, then gradients, then each slot), their sizes in another;
    ``step`` the ``(StepState, settings table)`` the kernel reads and advances."""
    if len(params) != len(grads) or not params:
        raise ValueError(f"{kernel}: needs as many gradients as parameters (at least one); received "
                         f"{len(params)} parameters and {len(grads)} gradients.")
    grads = _read_arrays(kernel, *grads)
    tables = []
    for param, grad, *slots in zip(params, grads, *[s for s in slot_lists if s is not None]):
        named = {"param": param, **{f"slot {k}": a for k, a in enumerate(slots)}}
        checked = _in_place(kernel, grad.size, **named)
        tables.append([checked[0], grad, *checked[1:]])
    columns = list(zip(*tables))    # (params), (grads), (slot 0 of each), ...
    sizes = tuple(launch.i32(g.size, f"{kernel}: elements") for g in grads)
    grid = (launch.blocks_for(max(sizes), cap=_MAX_BLOCKS), launch.i32(len(sizes), f"{kernel}: tensors"))
    if grid[1] > 65535:
        raise ValueError(f"{kernel}: at most 65,535 tensors a launch; received {grid[1]}.")
    launch.run(file, kernel, grid, launch.THREADS, launch.address_table([a for c in columns for a in c]),
               launch.int_table(sizes), len(sizes), step[0].array, step[1], launch.counters(1), *settings)


def _sum_squares(x, totals, slot):
    """``totals[slot] = sum(x**2)``: a fixed grid of block sums for x's size, then one block adds them."""
    blocks = launch.blocks_for(x.size, cap=_MAX_BLOCKS)
    partial = launch.empty((blocks,))
    launch.run("optim.cu", "sum_squares_partial", blocks, launch.THREADS, x, partial,
               launch.i32(x.size, "sum_squares_partial: elements"))
    launch.run("optim.cu", "sum_squares_total", 1, launch.THREADS, partial, totals, blocks, slot)


def _clip_by_value_kernel(grad, clipvalue):
    grad, = _read_arrays("clip_by_value", grad)
    out = launch.empty(grad.shape)
    _run_elementwise("clip_by_value", grad.size, grad, out, grad.size, float(clipvalue))
    return out


def _clip_by_norm_kernel(grad, clipnorm):
    grad, = _read_arrays("clip_by_norm", grad)
    sums = launch.empty((1,))
    _sum_squares(grad, sums, 0)
    out = launch.empty(grad.shape)
    _run_elementwise("clip_by_norm_apply", grad.size, grad, sums, out, grad.size, float(clipnorm))
    return out


def _clip_by_global_norm_kernel(grads, clipnorm):
    grads = _read_arrays("clip_by_global_norm", *grads)
    sums = launch.empty((max(len(grads), 1),))
    for slot, grad in enumerate(grads):
        _sum_squares(grad, sums, slot)
    clipped = []
    for grad in grads:
        out = launch.empty(grad.shape)
        _run_elementwise("clip_by_global_norm_apply", grad.size, grad, sums, out, grad.size,
                         len(grads), float(clipnorm))
        clipped.append(out)
    return clipped
