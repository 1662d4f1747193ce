"""The optimizer and clipping kernels (kernels/optim.cu) against the numpy backend.

Updates run three steps in place on the same starting values under both backends; the
parameter and every slot must agree afterwards, and the kernel backend must have launched
exactly the op's kernels (no NumPy compute).
"""
import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, compare_with_numpy, run_on_backend, thread_order
from gpunet import backend
from gpunet.primitives import optim as ops


SHAPE = (33, 67)   # 2211 elements: nine blocks of 256, the last one partly filled
STEPS = 3

# (op, settings, slots the op takes by keyword; the rest are positional after param, grad)
UPDATES = {
    "sgd": (ops.sgd_update, dict(velocity=None, lr=0.1), []),
    "sgd_decay": (ops.sgd_update, dict(velocity=None, lr=0.1, weight_decay=0.05), []),
    "sgd_momentum": (ops.sgd_update, dict(lr=0.1, momentum=0.9), ["velocity"]),
    "sgd_nesterov": (ops.sgd_update, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
                     ["velocity"]),
    "adam": (ops.adam_update, dict(lr=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7), ["m", "v"]),
    "adam_amsgrad": (ops.adam_update, dict(lr=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-6),
                     ["m", "v", "v_hat"]),
    "adamw": (ops.adamw_update, dict(lr=0.01, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                                     epsilon=1e-7), ["m", "v"]),
    "rmsprop": (ops.rmsprop_update, dict(momentum_buf=None, lr=0.01, rho=0.9, momentum=0.0,
                                         epsilon=1e-7), ["velocity"]),
    "rmsprop_momentum": (ops.rmsprop_update, dict(lr=0.01, rho=0.9, momentum=0.5, epsilon=1e-7,
                                                  weight_decay=0.1), ["velocity", "momentum_buf"]),
    "rmsprop_centered": (ops.rmsprop_update, dict(momentum_buf=None, lr=0.01, rho=0.8, momentum=0.0,
                                                  epsilon=1e-7), ["velocity", "average_grad"]),
    "rmsprop_centered_momentum": (ops.rmsprop_update, dict(lr=0.01, rho=0.9, momentum=0.9, epsilon=1e-7),
                                  ["velocity", "momentum_buf", "average_grad"]),
}
OPTIM_KERNELS = {"sgd_update_many", "adam_update_many", "rmsprop_update_many", "sum_squares_partial",
                 "sum_squares_total", "clip_by_value", "clip_by_norm_apply", "clip_by_global_norm_apply"}
KERNELS = {ops.sgd_update: "sgd_update", ops.adam_update: "adam_update",
           ops.adamw_update: "adam_update", ops.rmsprop_update: "rmsprop_update"}


@pytest.mark.parametrize("case", list(UPDATES))
def test_update_matches_numpy_over_three_steps(kernel_backend, case):
    op, settings, slot_names = UPDATES[case]
    rng = np.random.default_rng(7)
    start = rng.standard_normal(SHAPE).astype(np.float32)
    # Slots start nonzero (velocity-like ones positive) so that every term of the formula counts;
    # the centered average starts at zero, as an optimizer's does, keeping velocity - average**2 > 0.
    slots0 = {name: np.abs(rng.standard_normal(SHAPE)).astype(np.float32) * 0.1 for name in slot_names}
    if "average_grad" in slots0:
        slots0["average_grad"][:] = 0.0
    grads = [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(STEPS)]

    def three_steps():
        be = backend.current()
        param = be.asarray(start.copy())     # numpy's asarray would hand back `start` itself
        slots = {name: be.asarray(value.copy()) for name, value in slots0.items()}
        for step, grad in enumerate(grads, start=1):
            extra = {"step": step} if op is not ops.sgd_update and op is not ops.rmsprop_update else {}
            op(param, be.asarray(grad), **slots, **settings, **extra)
        return [param, *slots.values()]

    compare_with_numpy(kernel_backend, three_steps, [KERNELS[op]] * STEPS, case)


@pytest.mark.parametrize("optimizer", [
    lambda: gn.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: gn.optimizers.Adam(0.01, amsgrad=True, clipnorm=0.5),
    lambda: gn.optimizers.AdamW(0.01, global_clipnorm=1.0),
    lambda: gn.optimizers.RMSprop(0.01, momentum=0.5, centered=True, clipvalue=0.2),
])
def test_optimizer_classes_step_on_kernels(kernel_backend, optimizer):
    """The optimizers' own slots and clipping go through the kernel paths and agree with numpy."""
    rng = np.random.default_rng(3)
    starts = [rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal((3,)).astype(np.float32)]
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in starts] for _ in range(STEPS)]

    def train():
        be = backend.current()
        params, opt = [be.asarray(p.copy()) for p in starts], optimizer()
        for step_grads in grads:
            opt.apply([be.asarray(g) for g in step_grads], params)
        return params

    expected, _ = run_on_backend("numpy", train)
    actual, launched = run_on_backend(kernel_backend, train)
    assert launched and set(launched) <= OPTIM_KERNELS, launched
    for k, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert_close(a, e, what=f"parameter {k}")


def _gradient(shape, scale=1.0, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.parametrize("shape, clipvalue", [((1,), 0.5), ((67, 3), 0.3), ((5, 1, 1, 67), 2.0)])
def test_clip_by_value(kernel_backend, shape, clipvalue):
    grad = _gradient(shape)
    clipped, = compare_with_numpy(kernel_backend, lambda: ops.clip_by_value(grad, clipvalue), ["clip_by_value"],
                        "clip_by_value")
    assert np.abs(clipped).max() <= clipvalue


def test_clip_by_value_passes_nan_through(kernel_backend):
    grad = np.array([np.nan, -3.0, 0.25, 3.0], dtype=np.float32)   # np.clip keeps a NaN; so must the kernel
    (clipped,), _ = run_on_backend(kernel_backend, lambda: ops.clip_by_value(grad, 1.0))
    assert np.isnan(clipped[0]) and clipped[1:].tolist() == [-1.0, 0.25, 1.0]


# 70,000 elements need more than the 256 partial sums' worth of blocks: the grid is capped
# and every thread strides over several elements.
@pytest.mark.parametrize("shape, clipnorm", [((1,), 0.5), ((67, 3), 100.0), ((67, 3), 1.0),
                                             ((1283,), 3.0), ((70, 1000), 10.0)])
def test_clip_by_norm(kernel_backend, shape, clipnorm):
    grad = _gradient(shape)
    kernels = ["sum_squares_partial", "sum_squares_total", "clip_by_norm_apply"]
    compare_with_numpy(kernel_backend, lambda: ops.clip_by_norm(grad, clipnorm), kernels, "clip_by_norm")


@pytest.mark.parametrize("clipnorm", [0.5, 1e6])
def test_clip_by_global_norm(kernel_backend, clipnorm):
    grads = [_gradient((3, 3, 3, 67), seed=1), _gradient((67,), seed=2), _gradient((1,), 10.0, seed=3)]
    kernels = ["sum_squares_partial", "sum_squares_total"] * 3 + ["clip_by_global_norm_apply"] * 3
    compare_with_numpy(kernel_backend, lambda: ops.clip_by_global_norm(grads, clipnorm), kernels,
             "clip_by_global_norm")


def test_clip_by_global_norm_of_infinite_gradients_is_nan(kernel_backend):
    grads = [_gradient((4, 5)), np.array([np.inf, 1.0], dtype=np.float32)]
    clipped, _ = run_on_backend(kernel_backend, lambda: ops.clip_by_global_norm(grads, 1.0))
    assert all(np.isnan(c).all() for c in clipped)


def test_norm_reduction_is_bit_identical_across_runs(kernel_backend):
    grads = [_gradient((67, 67), seed=4), _gradient((67,), seed=5)]
    with thread_order("ascending"):
        first, _ = run_on_backend(kernel_backend, lambda: ops.clip_by_global_norm(grads, 1.0))
    with thread_order("descending"):
        second, _ = run_on_backend(kernel_backend, lambda: ops.clip_by_global_norm(grads, 1.0))
    for a, b in zip(first, second, strict=True):
        assert a.tobytes() == b.tobytes()


def test_in_place_update_refuses_arrays_it_could_not_update(kernel_backend):
    grad = np.ones((4, 6), dtype=np.float32)
    with backend.use(kernel_backend) as be:
        with pytest.raises(TypeError, match=r"sgd_update .* updates param in place.*float64"):
            ops.sgd_update(be.asarray(grad, np.float64), be.asarray(grad), None, 0.1)
        strided = be.zeros((4, 12))[:, ::2]
        with pytest.raises(TypeError, match=r"adam_update .* updates m in place, so it must be a C-contiguous"):
            ops.adam_update(be.asarray(grad), be.asarray(grad), strided, be.zeros((4, 6)), 0.1,
                            0.9, 0.999, 1e-7, step=1)
        with pytest.raises(TypeError, match=r"rmsprop_update .* float32 kernels; received .* float64"):
            ops.rmsprop_update(be.asarray(grad), be.asarray(grad, np.float64), be.zeros((4, 6)), None,
                               0.1, 0.9, 0.0, 1e-7)
