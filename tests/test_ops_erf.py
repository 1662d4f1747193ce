"""gn.ops.erf and the exact gelu: the NumPy erf reference against math.erf, gradients against
float64 finite differences, and the erff kernel against the reference on the kernel backends."""
import math

import ml_dtypes
import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, numeric_gradients, run_on_backend
from gpunet import ops
from gpunet.primitives import elementwise_nd as E

BF16 = np.dtype(ml_dtypes.bfloat16)
_EDGES = [0.0, -0.0, 1e-30, -1e-8, 0.5, 1.9999999, 2.0, -2.0000001, 3.7, 5.9999, 6.0, 9.0, np.inf, -np.inf]


def _grid(dtype):
    return np.concatenate([np.linspace(-7, 7, 4001), _EDGES]).astype(dtype)


@pytest.mark.reference
def test_erf_reference_matches_math_erf():
    x64 = _grid(np.float64)
    exact = np.array([math.erf(v) for v in x64])
    assert_close(E.erf_reference(x64), exact, rtol=2e-15, atol=1e-300, what="float64 erf")
    x32 = _grid(np.float32)
    got = E.erf_reference(x32)
    assert got.dtype == np.float32
    expected = np.array([math.erf(v) for v in x32.astype(np.float64)]).astype(np.float32)
    assert np.array_equal(got, expected), "float32 erf: not the correctly rounded value"
    assert np.isnan(E.erf_reference(np.array([np.nan], np.float32)))[0]


@pytest.mark.reference
@pytest.mark.parametrize("fn", [lambda x: ops.erf(x), lambda x: ops.gelu(x, approximate=False)],
                         ids=["erf", "gelu_exact"])
def test_gradients_match_finite_differences(fn):
    x = np.random.default_rng(0).standard_normal((3, 5)) * 2
    dy = np.random.default_rng(1).standard_normal((3, 5))
    t = ops.convert_to_tensor(x)
    with gn.GradientTape() as tape:
        tape.watch(t)
        y = fn(t)
    grad = tape.gradient(y, t, output_gradients=dy).numpy()
    assert grad.dtype == np.float64
    numeric, = numeric_gradients(lambda v: np.asarray(fn(v)), [x], dy)
    assert_close(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.reference
def test_exact_gelu_values():
    x = np.array([-3.0, -1.0, 0.0, 0.5, 2.0])
    expected = [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x]
    assert_close(np.asarray(ops.gelu(x, approximate=False)), expected, rtol=1e-14, atol=1e-300)
    assert_close(np.asarray(gn.activations.gelu(x)), expected, rtol=1e-14, atol=1e-300)   # Keras: exact default
    assert not np.allclose(np.asarray(ops.gelu(x)), expected, rtol=1e-6)      # keras.ops default: tanh form


@pytest.mark.parametrize("dtype, ulps", [(np.float32, 2), (BF16, 1)])
def test_erf_kernel_matches_reference(kernel_backend, dtype, ulps):
    """CUDA's erff is within 2 float32 ulp of erf (cudasim's C library within 1); the reference is
    correctly rounded, so they agree within 2 ulp in float32, 1 in bfloat16 (rounded once)."""
    x = _grid(dtype)
    (want,), _ = run_on_backend("numpy", lambda: ops.erf(x).data)
    (got,), launched = run_on_backend(kernel_backend, lambda: ops.erf(x).data)
    assert launched == ["unary_erf"] and got.dtype == dtype
    spacing = np.spacing(np.abs(want.astype(np.float32))) * (2 ** 16 if dtype == BF16 else 1)
    bad = np.abs(got.astype(np.float64) - want.astype(np.float64)) > ulps * spacing
    assert not bad.any(), f"erf({x[bad][:3]}): {got[bad][:3]} vs {want[bad][:3]}"


def test_erf_and_exact_gelu_gradients_on_kernels(kernel_backend):
    x = np.random.default_rng(2).standard_normal((4, 33)).astype(np.float32) * 2
    dy = np.random.default_rng(3).standard_normal((4, 33)).astype(np.float32)

    def run():
        t = ops.convert_to_tensor(x)
        with gn.GradientTape(persistent=True) as tape:
            tape.watch(t)
            e, g = ops.erf(t), ops.gelu(t, approximate=False)
        return e.data, g.data, tape.gradient(e, t, output_gradients=dy).data, \
            tape.gradient(g, t, output_gradients=dy).data
    expected, _ = run_on_backend("numpy", run)
    actual, launched = run_on_backend(kernel_backend, run)
    assert "gelu_forward" in launched and "gelu_backward" in launched
    for what, got, want in zip(("erf", "gelu", "d erf", "d gelu"), actual, expected):
        assert_close(got, want, rtol=1e-5, atol=1e-6, what=what)
