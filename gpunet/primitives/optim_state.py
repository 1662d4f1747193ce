"""An optimizer's step state in device memory, and the loss-scale ops that work on it.

A training step must not take a number from the host that changes between steps: a CUDA graph
replays its launches with the arguments they were captured with, and a Python scalar frozen
into one (the learning rate of a schedule, Adam's step, the loss scale) would stay what it was
at capture. So an optimizer keeps these in one small device array (``kernels/optim_state.cuh``
lists its layout) and its update kernel computes from it:

    state = StepState(iterations=0)
    settings = state.settings(schedule_form(schedule), beta_1=0.9, beta_2=0.999)
    # optim.*_update_many(..., step=(state, settings)): lr = schedule(state.iterations),
    # Adam's alpha from iterations + 1, nothing changed when the skip flag is set, and the last
    # block of the launch counts the step.

The host reads the state only when asked (``get``: a device-to-host read, never inside a step).
On the numpy backend there is no device: the optimizer computes the same numbers in Python
(gpunet/optimizers.py), and this module's NumPy branches are the references of its kernels.

Loss scaling (Keras's ``LossScaleOptimizer``): ``scale_seed(dy, state)`` multiplies the loss
gradient that starts the backward pass by the scale; ``unscale_gradients(grads, state)``
divides every gradient by it and, on the kernel backends, clears the finite flag when one is
non-finite (the update kernels then skip); ``finish_step(state, settings)`` ends a step whose
update was not one ``*_update_many`` launch.
"""
import math

import numpy as np

from .. import backend
from . import launch, precision

__all__ = ["ITERATIONS", "RATE", "FINITE", "SCALE", "GROWTH", "PRODUCT", "StepState", "schedule_form",
           "scale_seed", "unscale_gradients", "all_finite", "finish_step", "finish_step_reference"]

ITERATIONS, RATE, FINITE, SCALE, GROWTH, PRODUCT, PRODUCT_STEP = range(7)
_MAX_BLOCKS = 256


def schedule_form(rate):
    """``(kind, numbers)`` for a learning rate the update kernels evaluate on the device, or None.

    A float is kind 0; a schedule with a ``device_form()`` (ExponentialDecay, CosineDecay) gives
    its own; any other callable has none (the host evaluates it: it cannot be captured).
    """
    if not callable(rate):
        return 0, (float(rate),)
    form = getattr(rate, "device_form", None)
    return form() if form is not None else None


class StepState:
    """``[iterations, rate, finite, scale, growth, product, product_step]`` as a float64 array on
    the active backend (product: Nadam's momentum schedule, kept by its kernel; product_step -1:
    not computed yet)."""

    def __init__(self, iterations=0, scale=1.0):
        host = np.array([iterations, 0.0, 1.0, scale, 0.0, 1.0, -1.0], np.float64)
        be = backend.current()   # queued on the copy stream (pinned memory): the host does not wait
        self.array, event = be.upload_async(host, np.float64)
        be.wait_events([event])

    def get(self, slot):
        """One number of the state: a device-to-host read (not inside a step)."""
        return float(np.asarray(backend.current().to_numpy(self.array))[slot])

    def set(self, slot, value):
        """Write one number (a small host-to-device copy, queued in order with the kernels)."""
        self.array[slot] = float(value)

    @staticmethod
    def settings(form, beta_1=0.0, beta_2=0.0, growth_steps=0):
        """The constant table the kernels read beside the state (uploaded once per distinct value)."""
        kind, numbers = form
        numbers = tuple(float(v) for v in numbers) + (0.0,) * (5 - len(numbers))
        return launch.float64_table((float(kind), *numbers, float(beta_1), float(beta_2), float(growth_steps)))


def scale_seed(dy, state, dtype=None):
    """``dy * scale``: the backward pass's first gradient, scaled (a new array of ``dtype``, default
    dy's). A float32 ``dy`` may become a 16-bit result (loss_scale_seed_narrow): the product is
    rounded once, after the scale, so a gradient below fp16's range is scaled before it rounds.

    ``state`` a :class:`StepState` on the kernel backends; on numpy the scale as a float.
    """
    dtype = np.dtype(dy.dtype if dtype is None else dtype)
    if dtype != dy.dtype and (dy.dtype != precision.FLOAT32 or dtype not in precision.HALF):
        raise TypeError(f"loss_scale_seed: a {dy.dtype} loss gradient scales into its own dtype or, from "
                        f"float32, into bfloat16 / float16; received dtype={dtype.name}.")
    if backend.current().runs_kernels:
        dy, = launch.inputs("loss_scale_seed", dy, dtype=precision.FLOATS)
        out = launch.empty(dy.shape, dtype)
        count = launch.i32(dy.size, "loss_scale_seed: elements")
        kernel = "loss_scale_seed" if dtype == dy.dtype else "loss_scale_seed_narrow"
        launch.run("optim_state.cu", kernel, launch.blocks_for(count, cap=_MAX_BLOCKS), launch.THREADS,
                   dy, out, count, state.array)
        return out
    return precision.narrow(precision.widen(dy) * np.float32(state), dtype)   # float32, rounded once


def all_finite(grads):
    """Whether every gradient is finite (the NumPy reference of the kernels' flag; reads the host)."""
    return all(bool(np.isfinite(g).all()) for g in grads if g is not None)


def unscale_gradients(grads, state):
    """Every gradient divided by the loss scale.

    Kernel backends: in place, in one launch, and the state's finite flag cleared when any
    gradient was non-finite before the division (as Keras checks the scaled gradients); returns
    ``grads``. NumPy: ``state`` is the scale (a float); returns new arrays ``g / scale``.
    """
    if not backend.current().runs_kernels:
        return [precision.narrow(precision.widen(g) / np.float32(state), g.dtype) for g in grads]
    for g in grads:
        if g.dtype != np.float32 or not g.flags.c_contiguous:
            raise TypeError(f"LossScaleOptimizer on the {backend.current().name} backend unscales gradients in "
                            f"place: they must be C-contiguous float32 arrays; received dtype {g.dtype}.")
    sizes = tuple(launch.i32(g.size, "loss_scale_unscale_many: elements") for g in grads)
    grid = (launch.blocks_for(max(sizes), cap=_MAX_BLOCKS), launch.i32(len(sizes), "loss_scale_unscale_many: tensors"))
    launch.run("optim_state.cu", "loss_scale_unscale_many", grid, launch.THREADS, launch.address_table(grads),
               launch.int_table(sizes), len(sizes), state.array)
    return grads


def finish_step(state, settings):
    """End a step on the device (one thread): see ``finish_step`` in kernels/optim_state.cuh."""
    launch.run("optim_state.cu", "finish_step_kernel", 1, 1, state.array, settings)


def finish_step_reference(numbers, finite, growth_steps):
    """The NumPy reference of ``finish_step``'s loss-scale part: ``numbers`` a dict with ``scale``
    and ``growth``, updated in place after a step whose gradients were ``finite``."""
    if not finite:
        numbers["growth"], numbers["scale"] = 0, numbers["scale"] * 0.5
    elif numbers["growth"] == growth_steps - 1:
        numbers["growth"], numbers["scale"] = 0, numbers["scale"] * 2.0
    else:
        numbers["growth"] += 1
    return numbers
