"""x[int array] and x[bool mask] as take along axis 0, and take's gradient as a deterministic
gather (no atomics): float64 finite differences on numpy; the kernels against numpy, bit for bit.
full (zeros, ones, *_like) and one_hot on their kernels, against numpy."""
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


KEYS = [((4, 3), ROWS), ((2, 3, 2), MASK), ((2, 4, 3), (slice(None), ROWS)),
        ((3, 2, 3), (Ellipsis, MASK)), ((2, 2, 3, 2), (slice(None), MASK))]
KEY_IDS = ["rows", "mask", "columns", "mask_last", "mask_middle"]


@pytest.mark.reference
@pytest.mark.parametrize("shape, key", KEYS, ids=KEY_IDS)
def test_gradients_match_finite_differences(shape, key):
    x = np.random.default_rng(0).standard_normal(shape)
    y = x[key]
    dy = np.random.default_rng(1).standard_normal(y.shape)
    out, grad = _index_and_gradient(x, key, dy)
    np.testing.assert_array_equal(out, y)
    numeric, = numeric_gradients(lambda v: np.asarray(ops.convert_to_tensor(v)[key]), [x], dy)
    assert_close(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.dtype(ml_dtypes.bfloat16)], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("shape, key", [((5, 33), ROWS), ((2, 3, 7), MASK), ((3, 5, 2), (Ellipsis, ROWS, slice(None)))],
                         ids=["rows", "mask", "ellipsis"])
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
        with pytest.raises(IndexError, match=r"getitem: a boolean mask of shape \(3,\) must match the axes it "
                                             r"covers, \(4,\) of the tensor's shape \(4, 2\)"):
            x[np.array([True, False, True])]
        with pytest.raises(IndexError, match=r"take: index -3 is out of range for an axis of size 2"):
            x[:, np.array([-3])]
        with pytest.raises(IndexError, match=r"take: index 4 is out of range for an axis of size 4"):
            x[np.array([0, 4])]


# -- full and one_hot on the kernels --------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_full_runs_the_fill_kernel_with_numpys_bits(kernel_backend, dtype):
    def run():
        return [ops.full((3, 5), 0.1, dtype).data, ops.zeros_like(ops.ones((2, 0, 3), dtype)).data,
                ops.full_like(np.zeros((4,), np.float32), -np.inf).data]
    expected, _ = run_on_backend("numpy", run)
    actual, launched = run_on_backend(kernel_backend, run)
    assert launched == ["fill"] * 2     # the empty ones launch nothing
    for got, want in zip(actual, expected):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))   # bit for bit


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot_runs_its_kernel_and_matches_numpy(kernel_backend, axis):
    labels = np.array([[0, 3, 1], [2, -1, 4]], np.int32)     # -1 and 4 are outside [0, 4): zero rows
    expected, _ = run_on_backend("numpy", lambda: ops.one_hot(labels, 4, axis=axis).data)
    (got,), launched = run_on_backend(kernel_backend, lambda: ops.one_hot(labels, 4, axis=axis).data)
    assert launched == ["one_hot"]
    np.testing.assert_array_equal(got, expected[0])
    want = np.moveaxis((labels[..., None] == np.arange(4)).astype(np.float32), -1, axis)
    np.testing.assert_array_equal(got, want)


def test_one_hot_dtypes_and_bad_arguments(kernel_backend):
    with gn.backend.use(kernel_backend):
        hot = ops.one_hot(np.array([1.7, 0.0], np.float32), 3, dtype="bfloat16")   # float labels truncate
        assert hot.dtype == np.dtype(ml_dtypes.bfloat16)
        np.testing.assert_array_equal(hot.numpy().astype(np.float32), [[0, 1, 0], [1, 0, 0]])
        assert ops.one_hot(np.array([2]), 3, dtype="int32").numpy().tolist() == [[0, 0, 1]]
        with pytest.raises(ValueError, match=r"one_hot: num_classes must be a positive int; received 0"):
            ops.one_hot(np.array([1]), 0)
        with pytest.raises(ValueError, match=r"one_hot: axis 3 is out of range for labels of shape \(2,\)"):
            ops.one_hot(np.array([1, 0]), 3, axis=3)
