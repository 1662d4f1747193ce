"""gn.ops on the kernel backends (the kernels of elementwise_nd.cu and the conv / pool / GEMM /
activation kernels the ops reuse): outputs and tape gradients against the numpy backend, float32."""
import numpy as np
import pytest

import gpunet as gn
from autodiff_cases import CASES, DIFFERENTIABLE, make_inputs, output_gradient
from checks import assert_close, run_on_backend, tape_run
from gpunet import ops
from gpunet.primitives import elementwise_nd as E


@pytest.mark.parametrize("name, fn, specs", CASES, ids=[c[0] for c in CASES])
def test_case_matches_numpy(kernel_backend, name, fn, specs):
    inputs = make_inputs(name, specs, dtype=np.float32)
    wrt = [i for i, (kind, _) in enumerate(specs) if kind in DIFFERENTIABLE]
    out_shape = np.asarray(fn(ops, *inputs)).shape
    dy = output_gradient(name, out_shape).astype(np.float32)
    expected, _ = run_on_backend("numpy", lambda: tape_run(fn, inputs, wrt, dy))
    actual, launched = run_on_backend(kernel_backend, lambda: tape_run(fn, inputs, wrt, dy))
    assert launched, f"{name}: no kernel ran on {kernel_backend}"
    for k, (a, e) in enumerate(zip(actual, expected)):
        what = f"{name}: " + ("output" if k == 0 else f"gradient of input {wrt[k - 1]}")
        assert a.dtype == e.dtype == np.float32, f"{what}: {a.dtype} vs {e.dtype}"
        assert_close(a, e, rtol=2e-4, atol=2e-5, what=what)


@pytest.mark.parametrize("op", ["equal", "not_equal", "less", "less_equal", "greater", "greater_equal"])
def test_comparisons_match_numpy(kernel_backend, op):
    a = np.array([[0.0, 1.0, -2.0, np.nan]], dtype=np.float32)
    b = np.array([[0.0], [1.0]], dtype=np.float32)
    expected, _ = run_on_backend("numpy", lambda: getattr(ops, op)(a, b).data)
    actual, launched = run_on_backend(kernel_backend, lambda: getattr(ops, op)(a, b).data)
    assert launched == ["broadcast_" + op]
    assert actual[0].dtype == np.bool_ and np.array_equal(actual[0], expected[0])


def test_nan_rules_and_arg_reductions(kernel_backend):
    """max / maximum keep a NaN; argmax names the first NaN or the first of tied maxima (NumPy's rules)."""
    x = np.array([[1.0, 3.0, 3.0, -1.0], [2.0, np.nan, 5.0, np.nan], [-4.0, -4.0, -5.0, -4.0]], dtype=np.float32)

    def run():
        return [ops.max(x, axis=1).data, ops.maximum(x, 2.0).data, ops.min(x, axis=0).data,
                ops.argmax(x, axis=1).data, ops.argmin(x, axis=1).data, ops.argmax(x).data]
    expected, _ = run_on_backend("numpy", run)
    actual, _ = run_on_backend(kernel_backend, run)
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape
        assert np.array_equal(a, e, equal_nan=True), f"{a} != {e}"


@pytest.mark.parametrize("shape, axis", [((1,), None), ((5, 1, 300), (0, 2)), ((2, 3, 4, 5), (1, 3)), ((70, 3), 0)])
def test_reductions_on_odd_shapes(kernel_backend, rng, shape, axis):
    x = rng.standard_normal(shape).astype(np.float32)
    for op in ("sum", "mean", "max", "min"):
        expected, _ = run_on_backend("numpy", lambda: E.reduce(op, x, axis, keepdims=True))
        actual, _ = run_on_backend(kernel_backend, lambda: E.reduce(op, x, axis, keepdims=True))
        assert_close(actual[0], expected[0], rtol=1e-5, atol=1e-5, what=f"{op} over {axis} of {shape}")


def test_integer_inputs_run_the_float_kernels(kernel_backend):
    labels = np.array([0, 2, 1], dtype=np.int32)

    def run():
        return [ops.multiply(labels, 2.5).data, ops.one_hot(labels, 3).data]
    expected, _ = run_on_backend("numpy", run)
    actual, _ = run_on_backend(kernel_backend, run)
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype == np.float32 and np.array_equal(a, e)


def test_slicing_and_take_run_their_kernels(kernel_backend, rng):
    x = rng.standard_normal((4, 5, 3)).astype(np.float32)
    index = np.array([[1, -1], [1, 0]], dtype=np.int32)     # repeated and negative indices

    def run():
        t = ops.convert_to_tensor(x)
        with gn.GradientTape() as tape:
            tape.watch(t)
            parts = [t[::-2, 1:4, None, 0], t[1], ops.take(t, index, axis=1), ops.take(t, np.array([7, 7, -1]))]
            total = ops.add(ops.sum(parts[0] * 2.0) + ops.sum(parts[1]), ops.sum(parts[2]) + ops.sum(parts[3] * 3.0))
        return [p.data for p in parts] + [tape.gradient(total, t).data]
    expected, _ = run_on_backend("numpy", run)
    actual, launched = run_on_backend(kernel_backend, run)
    assert {"strided_copy", "strided_scatter", "take_forward", "take_backward"} <= set(launched)
    for a, e in zip(actual, expected):
        assert_close(a, e, rtol=1e-6, atol=1e-6, what="slicing and take")
    with pytest.raises(IndexError, match="take: index 5 is out of range for an axis of size 5"):
        with gn.backend.use(kernel_backend):
            ops.take(x, np.array([5]), axis=1)
