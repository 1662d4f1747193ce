"""x[int array] and x[bool mask] as take along axis 0, and take's gradient as a deterministic
gather (no atomics): float64 finite differences on numpy; the kernels against numpy, bit for bit."""
import ml_dtypes
import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, numeric_gradients, run_on_backend
from gpunet import ops

ROWS = np.array([2, 0, 2, -1, 2], np.int32)             # repeats and a negative index
MASK = np.array([[True, False, True], [False, True, True]])


def _index_and_gradient(x, key, dy):
    t = ops.convert_to_tensor(x)
    with gn.GradientTape() as tape:
        tape.watch(t)
        y = t[key]
    return y.data, tape.gradient(y, t, output_gradients=ops.convert_to_tensor(dy)).data


@pytest.mark.reference
@pytest.mark.parametrize("shape, key", [((4, 3), ROWS), ((2, 3, 2), MASK)], ids=["rows", "mask"])
def test_gradients_match_finite_differences(shape, key):
    x = np.random.default_rng(0).standard_normal(shape)
    y = x[key]
    dy = np.random.default_rng(1).standard_normal(y.shape)
    out, grad = _index_and_gradient(x, key, dy)
    np.testing.assert_array_equal(out, y)
    numeric, = numeric_gradients(lambda v: np.asarray(ops.convert_to_tensor(v)[key]), [x], dy)
    assert_close(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.dtype(ml_dtypes.bfloat16)], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("shape, key", [((5, 33), ROWS), ((2, 3, 7), MASK)], ids=["rows", "mask"])
def test_kernels_match_numpy_bit_for_bit(kernel_backend, dtype, shape, key):
    """Each dx element adds its shares in ascending position, as NumPy's add.at: the same bits."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(x[key].shape).astype(dtype)
    expected, _ = run_on_backend("numpy", lambda: _index_and_gradient(x, key, dy))
    first, launched = run_on_backend(kernel_backend, lambda: _index_and_gradient(x, key, dy))
    second, _ = run_on_backend(kernel_backend, lambda: _index_and_gradient(x, key, dy))
    assert "take_forward" in launched and "take_backward" in launched
    for got, again, want in zip(first, second, expected):
        assert got.dtype == want.dtype == dtype
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got, again)


def test_bad_keys_are_refused(kernel_backend):
    with gn.backend.use(kernel_backend):
        x = ops.ones((4, 2))
        with pytest.raises(IndexError, match=r"getitem: a boolean mask of shape \(3,\) must match .* \(4, 2\)"):
            x[np.array([True, False, True])]
        with pytest.raises(IndexError, match=r"take: index 4 is out of range for an axis of size 4"):
            x[np.array([0, 4])]
