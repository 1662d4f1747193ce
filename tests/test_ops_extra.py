"""The keras.ops added in round 4 (rsqrt, cumsum, cumprod, flip, roll, tile, repeat, pad, linspace,
logical_*, moments, norm): tape gradients against float64 central differences, outputs and
gradients against JAX through keras.ops (committed fixture, made by
tests/autodiff_fixtures/make_ops_extra_jax.py), the kernel backends against numpy in float32 and
16-bit, and the errors bad arguments give."""
import pathlib

import ml_dtypes
import numpy as np
import pytest

from autodiff_cases import DIFFERENTIABLE, make_inputs, output_gradient
from checks import assert_close, numeric_gradients, run_on_backend, tape_run
from gpunet import ops
from ops_extra_cases import CASES

JAX = np.load(pathlib.Path(__file__).resolve().parent / "autodiff_fixtures" / "ops_extra_jax.npz")
IDS = [c[0] for c in CASES]


def _case(name, specs, dtype=np.float64):
    inputs = make_inputs(name, specs, dtype=dtype)
    return inputs, [i for i, (kind, _) in enumerate(specs) if kind in DIFFERENTIABLE]


@pytest.mark.reference
@pytest.mark.parametrize("name, fn, specs", CASES, ids=IDS)
def test_gradient_matches_finite_differences_and_jax(name, fn, specs):
    inputs, wrt = _case(name, specs)
    out = np.asarray(fn(ops, *inputs))
    dy = output_gradient(name, out.shape)
    got = [np.asarray(a) for a in tape_run(fn, inputs, wrt, dy)]
    assert_close(got[0], JAX[f"{name}/out"], rtol=1e-6, atol=1e-9, what=f"{name}: output vs JAX")

    def forward(*chosen):
        full = list(inputs)
        for i, value in zip(wrt, chosen):
            full[i] = value
        return np.asarray(fn(ops, *full))
    for i, g, n in zip(wrt, got[1:], numeric_gradients(forward, [inputs[i] for i in wrt], dy)):
        assert g.dtype == np.float64
        assert_close(g, n, rtol=1e-5, atol=1e-6, what=f"{name}: gradient of input {i} vs finite differences")
        assert_close(g, JAX[f"{name}/grad{i}"], rtol=1e-6, atol=1e-9, what=f"{name}: gradient of input {i} vs JAX")


@pytest.mark.parametrize("name, fn, specs", CASES, ids=IDS)
def test_kernels_match_numpy(kernel_backend, name, fn, specs):
    inputs, wrt = _case(name, specs, np.float32)
    dy = output_gradient(name, np.asarray(fn(ops, *inputs)).shape).astype(np.float32)
    expected, _ = run_on_backend("numpy", lambda: tape_run(fn, inputs, wrt, dy))
    actual, launched = run_on_backend(kernel_backend, lambda: tape_run(fn, inputs, wrt, dy))
    assert launched, f"{name}: no kernel ran on {kernel_backend}"
    for k, (a, e) in enumerate(zip(actual, expected)):
        what = f"{name}: " + ("output" if k == 0 else f"gradient of input {wrt[k - 1]}")
        assert a.dtype == e.dtype == np.float32, f"{what}: {a.dtype} vs {e.dtype}"
        assert_close(a, e, rtol=2e-5, atol=2e-6, what=what)


HALF = [np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16)]


@pytest.mark.parametrize("dtype", HALF, ids=["bfloat16", "float16"])
def test_scan_and_rsqrt_kernels_in_16_bit(kernel_backend, dtype):
    """16-bit in, 16-bit out, float32 inside: the sequential scan rounds each output once, as the
    reference does, so cumsum / cumprod and their gradients agree exactly; rsqrt within 1 ulp."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0.5, 1.5, (3, 37)).astype(dtype)
    dy = rng.standard_normal((3, 37)).astype(dtype)

    def run():
        return tape_run(lambda o, a: o.cumsum(a, axis=1), [x], [0], dy) + \
            tape_run(lambda o, a: o.cumprod(a, axis=0), [x], [0], dy) + [ops.rsqrt(x).data, ops.flip(x, 1).data]
    expected, _ = run_on_backend("numpy", run)
    actual, launched = run_on_backend(kernel_backend, run)
    assert {"cumulative_sum", "cumulative_prod", "unary_rsqrt", "strided_copy"} <= set(launched)
    ulp = float(np.finfo(dtype).eps)
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert a.dtype == e.dtype == dtype, f"output {k}: {a.dtype} vs {e.dtype}"
        exact = k < 3    # cumsum, its gradient, cumprod: the same float32 operations, one rounding each
        assert_close(a.astype(np.float32), e.astype(np.float32), rtol=0 if exact else ulp, atol=0,
                     what=f"output {k} ({dtype})")


def test_logical_ops_linspace_and_integer_cumsum(kernel_backend):
    """Bool results as NumPy's (NaN is true); linspace as np.linspace; a bool cumsum counts."""
    a = np.array([[0.0, 1.0, -2.0, np.nan]], dtype=np.float32)
    b = np.array([[0.0], [3.0]], dtype=np.float32)
    mask = np.array([True, False, True, True])

    def run():
        return [ops.logical_and(a, b).data, ops.logical_or(a, b).data, ops.logical_xor(a, b).data,
                ops.logical_not(a).data, ops.linspace(-1.0, 2.0, 7).data, ops.linspace(0, 1, 4, endpoint=False).data,
                ops.cumsum(mask).data]
    want = [np.logical_and(a, b), np.logical_or(a, b), np.logical_xor(a, b), np.logical_not(a),
            np.linspace(-1.0, 2.0, 7, dtype=np.float32), np.linspace(0, 1, 4, endpoint=False, dtype=np.float32),
            np.array([1, 1, 2, 3])]
    for backend_name in ("numpy", kernel_backend):
        got, _ = run_on_backend(backend_name, run)
        for g, w in zip(got[:4], want[:4]):
            assert g.dtype == np.bool_ and np.array_equal(g, w), f"{backend_name}: {g} != {w}"
        assert got[4].dtype == np.float32 and np.array_equal(got[4], want[4])
        assert np.array_equal(got[5], want[5])
        assert np.array_equal(got[6], want[6]), f"{backend_name}: {got[6]}"
    samples, step = ops.linspace([0.0, 1.0], 2.0, 3, retstep=True, axis=1)
    assert samples.shape == (2, 3) and np.allclose(step, [1.0, 0.5])


@pytest.mark.parametrize("call, error, words", [
    (lambda x: ops.pad(x, ((1, 1), (1, 1), (1, 1))), ValueError, "same length as x.shape"),
    (lambda x: ops.pad(x, -1), ValueError, "non-negative"),
    (lambda x: ops.pad(x, 1, mode="median"), ValueError, "mode must be one of"),
    (lambda x: ops.pad(x, 1, mode="reflect", constant_values=2.0), ValueError, "constant_values"),
    (lambda x: ops.pad(x, ((0, 0), (4, 0)), mode="reflect"), ValueError, "at most 3"),
    (lambda x: ops.repeat(x, -2, axis=0), ValueError, "non-negative"),
    (lambda x: ops.repeat(x, 1.5), TypeError, "must be integers"),
    (lambda x: ops.repeat(x, [1, 2], axis=1), ValueError, "has 4"),
    (lambda x: ops.tile(x, (2, -1)), ValueError, "non-negative"),
    (lambda x: ops.roll(x, (1, 2), axis=0), ValueError, "same length"),
    (lambda x: ops.norm(x, ord="nuc"), NotImplementedError, "singular values"),
    (lambda x: ops.norm(x, ord="fro", axis=1), ValueError, "vector norm"),
    (lambda x: ops.norm(x, ord=3), ValueError, "matrix norm"),
    (lambda x: ops.norm(x, axis=(0, 0)), ValueError, "twice"),
    (lambda x: ops.moments(x, 0, synchronized=True), NotImplementedError, "synchronized"),
    (lambda x: ops.cumsum(x, axis=2), ValueError, "out of range"),
    (lambda x: ops.linspace(0, 1, -1), ValueError, "num"),
    (lambda x: ops.einsum("ij,jk->ik", x, x), ValueError, "sizes 4 and 3"),
    (lambda x: ops.einsum("ii->i", x), NotImplementedError, "diagonal"),
    (lambda x: ops.einsum("ijk->i", x), ValueError, "do not match an operand of shape"),
    (lambda x: ops.einsum("ij,jk->ik", x), ValueError, "names 2 operands"),
    (lambda x: ops.meshgrid(x, indexing="ji"), ValueError, "indexing"),
])
def test_bad_arguments_are_named(call, error, words):
    x = np.ones((3, 4), np.float32)
    with pytest.raises(error, match=words):
        call(x)


@pytest.mark.parametrize("dtype", HALF, ids=["bfloat16", "float16"])
def test_composed_ops_keep_16_bit(kernel_backend, dtype):
    """The composed ops keep a 16-bit dtype (moments: computed in float32, cast back, as Keras) and
    agree with numpy within 1 ulp of the type."""
    x = np.random.default_rng(4).standard_normal((3, 5)).astype(dtype)

    def run():
        m, v = ops.moments(x, axes=0)
        return [m.data, v.data, ops.norm(x, axis=1).data, ops.pad(x, ((1, 2), (2, 1)), mode="reflect").data,
                ops.tile(x, (2, 1)).data, ops.repeat(x, 2, axis=1).data, ops.roll(x, 2, axis=1).data]
    expected, _ = run_on_backend("numpy", run)
    actual, launched = run_on_backend(kernel_backend, run)
    assert launched
    want = x.astype(np.float32)
    assert_close(expected[0].astype(np.float32), want.mean(0), rtol=float(np.finfo(dtype).eps), atol=1e-6)
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert a.dtype == e.dtype == dtype, f"output {k}: {a.dtype} vs {e.dtype}"
        assert_close(a.astype(np.float32), e.astype(np.float32), rtol=float(np.finfo(dtype).eps), atol=1e-6,
                     what=f"output {k} ({dtype})")


def test_sort_argsort_top_k_order_ties_and_nan(kernel_backend):
    """Stable order (ties keep their positions), NaN last ascending and first in top_k, on both
    backends and in 16-bit; argsort and top_k's indices int32."""
    x = np.array([[3.0, 1.0, 2.0, 1.0, np.nan, 5.0, 2.0], [0.0, -1.0, 0.0, 7.0, -1.0, 0.5, 4.0]], np.float32)

    def run(dtype):
        def go():
            v, i = ops.top_k(x.astype(dtype), 3)
            return [ops.sort(x.astype(dtype)).data, ops.argsort(x, axis=0).data, ops.argsort(x).data, v.data, i.data]
        return go
    want_values = np.array([[np.nan, 5.0, 3.0], [7.0, 4.0, 0.5]], np.float32)
    want_indices = np.array([[4, 5, 0], [3, 6, 5]])
    for dtype in [np.float32, *HALF]:
        for name in ("numpy", kernel_backend):
            got, _ = run_on_backend(name, run(dtype))
            assert np.array_equal(got[0].astype(np.float32), np.sort(x.astype(dtype), kind="stable").astype(np.float32),
                                  equal_nan=True), f"{name} {dtype}: {got[0]}"
            assert got[1].dtype == got[2].dtype == got[4].dtype == np.int32
            assert np.array_equal(got[1], np.argsort(x, axis=0, kind="stable"))
            assert np.array_equal(got[2], np.argsort(x, kind="stable"))
            assert got[3].dtype == dtype and np.array_equal(got[3].astype(np.float32), want_values, equal_nan=True)
            assert np.array_equal(got[4], want_indices), f"{name} {dtype}: {got[4]}"
    with pytest.raises(ValueError, match=r"k must be an int in \[0, 7\]"):
        ops.top_k(x, 8)
