"""Pooling and batch-norm ops: output shapes, values against slow references, and gradients."""
import numpy as np
import pytest

from checks import assert_close, check_backward
from gpunet.primitives import norm, pool

# float64 checks of the NumPy reference ops: they stay on numpy under any GPUNET_BACKEND
# (the kernels are compared with them in test_kernels_*.py)
pytestmark = pytest.mark.reference

# (x shape, pool_size, strides, padding, output shape by Keras's rules:
#  valid -> (n - k) // s + 1, same -> (n - 1) // s + 1)
POOL_CASES = [
    ((2, 5, 5, 2), (2, 2), (2, 2), "valid", (2, 2, 2, 2)),
    ((1, 5, 5, 1), (2, 2), (2, 2), "same", (1, 3, 3, 1)),
    ((2, 7, 6, 3), (3, 3), (2, 2), "same", (2, 4, 3, 3)),
    ((1, 7, 7, 2), (3, 3), (1, 1), "valid", (1, 5, 5, 2)),
    ((1, 7, 7, 2), (3, 3), (1, 1), "same", (1, 7, 7, 2)),
    ((2, 8, 7, 1), (2, 3), (3, 2), "valid", (2, 3, 3, 1)),
    ((1, 8, 7, 2), (3, 2), (3, 3), "same", (1, 3, 3, 2)),
    ((1, 4, 4, 1), (3, 3), (3, 3), "same", (1, 2, 2, 1)),
    ((1, 6, 5, 2), (2, 2), (1, 1), "valid", (1, 5, 4, 2)),
    ((1, 3, 3, 1), (3, 3), (2, 2), "valid", (1, 1, 1, 1)),
]
POOL_IDS = [f"{c[0]}-k{c[1]}-s{c[2]}-{c[3]}" for c in POOL_CASES]


def reference_pool(x, pool_size, strides, padding, reduce):
    """Loop-per-output-pixel pooling (test only): returns values, and for max the winner index."""
    n, h, w, c = x.shape
    _, oh, ow, _ = pool.pool_output_shape(x.shape, pool_size, strides, padding)
    pad_top = max((oh - 1) * strides[0] + pool_size[0] - h, 0) // 2 if padding == "same" else 0
    pad_left = max((ow - 1) * strides[1] + pool_size[1] - w, 0) // 2 if padding == "same" else 0
    y = np.zeros((n, oh, ow, c), dtype=x.dtype)
    winner = np.zeros((n, oh, ow, c), dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * strides[0] - pad_top, j * strides[1] - pad_left
            r1, c1 = min(r0 + pool_size[0], h), min(c0 + pool_size[1], w)
            r0, c0 = max(r0, 0), max(c0, 0)
            window = x[:, r0:r1, c0:c1, :].reshape(n, -1, c)
            if reduce == "max":
                best = window.argmax(axis=1)   # first maximum in row-major order
                y[:, i, j] = np.take_along_axis(window, best[:, None], axis=1)[:, 0]
                winner[:, i, j] = (r0 + best // (c1 - c0)) * w + c0 + best % (c1 - c0)
            else:
                y[:, i, j] = window.mean(axis=1)
    return y, winner


@pytest.mark.parametrize("x_shape, pool_size, strides, padding, out_shape", POOL_CASES, ids=POOL_IDS)
def test_max_pool_forward_matches_reference(rng, x_shape, pool_size, strides, padding, out_shape):
    x = rng.standard_normal(x_shape).astype(np.float32)
    y, argmax = pool.max_pool2d_forward(x, pool_size, strides, padding)
    assert y.shape == out_shape and y.dtype == np.float32
    assert argmax.shape == out_shape and argmax.dtype == np.int32
    ref_y, ref_winner = reference_pool(x, pool_size, strides, padding, "max")
    assert_close(y, ref_y, rtol=0, atol=0, what="max pool output")
    assert_close(argmax, ref_winner, rtol=0, atol=0, what="max pool argmax")


@pytest.mark.parametrize("x_shape, pool_size, strides, padding, out_shape", POOL_CASES, ids=POOL_IDS)
def test_max_pool_argmax_on_many_ties_matches_reference(rng, x_shape, pool_size, strides, padding, out_shape):
    x = rng.integers(-1, 2, x_shape).astype(np.float32)   # three values: most windows tie
    y, argmax = pool.max_pool2d_forward(x, pool_size, strides, padding)
    ref_y, ref_winner = reference_pool(x, pool_size, strides, padding, "max")
    assert_close(y, ref_y, rtol=0, atol=0, what="max pool output")
    assert_close(argmax, ref_winner, rtol=0, atol=0, what="max pool argmax (first of ties)")


@pytest.mark.parametrize("x_shape, pool_size, strides, padding, out_shape", POOL_CASES, ids=POOL_IDS)
def test_avg_pool_forward_matches_reference(rng, x_shape, pool_size, strides, padding, out_shape):
    x = rng.standard_normal(x_shape).astype(np.float32)
    y = pool.avg_pool2d_forward(x, pool_size, strides, padding)
    assert y.shape == out_shape and y.dtype == np.float32
    assert_close(y, reference_pool(x, pool_size, strides, padding, "avg")[0], what="avg pool output")


@pytest.mark.parametrize("x_shape, pool_size, strides, padding, out_shape", POOL_CASES, ids=POOL_IDS)
def test_max_pool_gradient(rng, x_shape, pool_size, strides, padding, out_shape):
    saved = {}

    def forward(x):
        y, saved["argmax"] = pool.max_pool2d_forward(x, pool_size, strides, padding)
        return y

    check_backward(forward, lambda dy: pool.max_pool2d_backward(dy, saved["argmax"], x_shape),
                   [rng.standard_normal(x_shape)])


@pytest.mark.parametrize("x_shape, pool_size, strides, padding, out_shape", POOL_CASES, ids=POOL_IDS)
def test_avg_pool_gradient(rng, x_shape, pool_size, strides, padding, out_shape):
    check_backward(lambda x: pool.avg_pool2d_forward(x, pool_size, strides, padding),
                   lambda dy: pool.avg_pool2d_backward(dy, x_shape, pool_size, strides, padding),
                   [rng.standard_normal(x_shape)])


def test_avg_pool_same_divides_by_real_cells():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    y = pool.avg_pool2d_forward(x, (3, 3), (2, 2), "same")
    # Bottom/right windows hang over one padded row/column: 6 or 4 real cells, not 9.
    assert_close(y[0, :, :, 0], np.array([[5.0, 6.5], [11.0, 12.5]]), rtol=0, atol=1e-6)


def test_max_pool_ties_pick_first_real_cell():
    x = np.zeros((1, 3, 3, 1))
    _, argmax = pool.max_pool2d_forward(x, (3, 3), (1, 1), "same")
    # Windows at row/col 0 start in the padding; their first real cell is (0, 0), (0, c-1) ...
    expected = np.array([[0, 0, 1], [0, 0, 1], [3, 3, 4]])
    assert_close(argmax[0, :, :, 0], expected, rtol=0, atol=0, what="argmax on ties")


@pytest.mark.parametrize("pool_size, strides, expected", [
    ((2, 2), (2, 2), [[0, 2], [6, 8]]),                       # padding after only
    ((3, 3), (1, 1), [[0, 0, 1], [0, 0, 1], [3, 3, 4]]),      # padding before and after
])
def test_max_pool_all_minus_inf_never_points_into_padding(pool_size, strides, expected):
    x = np.full((1, 3, 3, 1), -np.inf, dtype=np.float32)
    y, argmax = pool.max_pool2d_forward(x, pool_size, strides, "same")
    assert np.all(y == -np.inf)
    assert argmax[0, :, :, 0].tolist() == expected


def test_max_pool_propagates_nan():
    x = np.arange(16, dtype=np.float64).reshape(1, 4, 4, 1)
    x[0, 1, 0, 0] = np.nan
    y, argmax = pool.max_pool2d_forward(x, (2, 2), (2, 2), "valid")
    assert np.isnan(y[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 4
    assert y[0, 1, 1, 0] == 15 and argmax[0, 1, 1, 0] == 15


def test_max_pool_backward_adds_overlapping_winners():
    x = np.zeros((1, 3, 3, 1))
    x[0, 1, 1, 0] = 9.0
    y, argmax = pool.max_pool2d_forward(x, (2, 2), (1, 1), "valid")
    dx = pool.max_pool2d_backward(np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 2, 2, 1), argmax, x.shape)
    expected = np.zeros((1, 3, 3, 1))
    expected[0, 1, 1, 0] = 10.0
    assert_close(dx, expected, rtol=0, atol=0, what="max pool dx")


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("x_shape, pool_size", [((1, 2, 2, 1), (3, 3)), ((2, 5, 2, 1), (2, 3))])
def test_pool_larger_than_input_raises(op, x_shape, pool_size):
    forward = pool.max_pool2d_forward if op == "max" else pool.avg_pool2d_forward
    with pytest.raises(ValueError, match=r"does not fit an input of shape"):
        forward(np.zeros(x_shape), pool_size, pool_size, "valid")


def test_pool_rejects_unknown_padding():
    with pytest.raises(ValueError, match="padding must be 'valid' or 'same'"):
        pool.max_pool2d_forward(np.zeros((1, 4, 4, 1)), (2, 2), (2, 2), "full")


@pytest.mark.parametrize("x_shape", [(2, 3, 4, 3), (1, 1, 1, 2), (1, 5, 3, 1)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_avg_pool(rng, x_shape, keepdims):
    x = rng.standard_normal(x_shape)
    y = pool.global_avg_pool2d_forward(x, keepdims)
    n, _, _, c = x_shape
    assert y.shape == ((n, 1, 1, c) if keepdims else (n, c))
    assert_close(y.reshape(n, c), x.reshape(n, -1, c).mean(axis=1), rtol=1e-12, atol=1e-12)
    check_backward(lambda a: pool.global_avg_pool2d_forward(a, keepdims),
                   lambda dy: pool.global_avg_pool2d_backward(dy, x_shape), [x])


# -- batch normalization --------------------------------------------------------------------

BN_SHAPES = [(6, 3), (2, 3, 4, 2), (1, 5, 5, 2), (4, 1, 1, 1)]


def test_batch_norm_train_forward_real_numbers():
    x = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 14.0], [4.0, 14.0]], dtype=np.float32)
    gamma, beta = np.array([2.0, 0.5], np.float32), np.array([1.0, -1.0], np.float32)
    y, mean, inv_std, var = norm.batch_norm_train_forward(x, gamma, beta, 1e-3)
    # channel 0: mean 2.5, biased var 1.25; channel 1: mean 12, var 4.
    assert_close(mean, [2.5, 12.0], rtol=0, atol=1e-6)
    assert_close(inv_std, [1 / np.sqrt(1.251), 1 / np.sqrt(4.001)], rtol=1e-6)
    assert_close(var, [1.25, 4.0], rtol=1e-6)
    expected = np.array([[2 * (v - 2.5) / np.sqrt(1.251) + 1, 0.5 * (w - 12) / np.sqrt(4.001) - 1]
                         for v, w in x])
    assert_close(y, expected, rtol=1e-5, atol=1e-6)
    assert y.dtype == mean.dtype == inv_std.dtype == var.dtype == np.float32


def test_batch_norm_train_forward_large_mean_stays_accurate():
    x = (1e4 + np.array([-1.0, 1.0, -1.0, 1.0])).astype(np.float32).reshape(4, 1)
    y, _, inv_std, var = norm.batch_norm_train_forward(x, None, None, 1e-3)
    assert_close(inv_std, [1 / np.sqrt(1.001)], rtol=1e-5)
    assert_close(var, [1.0], rtol=1e-5)
    assert_close(y[:, 0], np.array([-1, 1, -1, 1]) / np.sqrt(1.001), rtol=1e-5)


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_train_gradient(rng, shape, affine):
    channels = shape[-1]
    saved = {}

    def forward(x, *params):
        gamma, beta = params if affine else (None, None)
        y, saved["mean"], saved["inv_std"], _ = norm.batch_norm_train_forward(x, gamma, beta, 1e-3)
        saved["x"], saved["gamma"] = x, gamma
        return y

    def backward(dy):
        dx, dgamma, dbeta = norm.batch_norm_backward(dy, saved["x"], saved["gamma"],
                                                     saved["mean"], saved["inv_std"])
        return [dx, dgamma, dbeta] if affine else [dx]

    inputs = [rng.standard_normal(shape) * 3 + 1]
    if affine:
        inputs += [rng.standard_normal(channels), rng.standard_normal(channels)]
    check_backward(forward, backward, inputs, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batch_norm_inference_forward_and_gradient(rng, shape):
    channels = shape[-1]
    moving_mean = rng.standard_normal(channels)
    moving_var = rng.uniform(0.5, 2.0, channels)
    x, gamma, beta = rng.standard_normal(shape), rng.standard_normal(channels), rng.standard_normal(channels)
    y = norm.batch_norm_inference_forward(x, gamma, beta, moving_mean, moving_var, 1e-3)
    assert_close(y, gamma * (x - moving_mean) / np.sqrt(moving_var + 1e-3) + beta, rtol=1e-12, atol=1e-12)
    check_backward(
        lambda a, g, b: norm.batch_norm_inference_forward(a, g, b, moving_mean, moving_var, 1e-3),
        lambda dy: norm.batch_norm_inference_backward(dy, x, gamma, moving_mean, moving_var, 1e-3),
        [x, gamma, beta])


def test_batch_norm_update_moving_stats_real_numbers():
    x = np.array([[1.0], [2.0], [3.0], [4.0]], dtype=np.float32)
    _, mean, _, var = norm.batch_norm_train_forward(x, None, None, 1e-3)
    moving_mean, moving_var = np.array([1.0], np.float32), np.array([2.0], np.float32)
    norm.batch_norm_update_moving_stats(moving_mean, moving_var, mean, var, 0.9)
    assert_close(moving_mean, [0.9 * 1.0 + 0.1 * 2.5], rtol=1e-6)
    assert_close(moving_var, [0.9 * 2.0 + 0.1 * 1.25], rtol=1e-6)


def test_batch_norm_update_constant_channel_gives_zero_variance():
    x = np.full((5, 2), 3.0, dtype=np.float32)
    _, mean, _, var = norm.batch_norm_train_forward(x, None, None, 1e-3)
    moving_mean, moving_var = np.zeros(2, np.float32), np.ones(2, np.float32)
    norm.batch_norm_update_moving_stats(moving_mean, moving_var, mean, var, 0.0)
    assert_close(moving_mean, [3.0, 3.0], rtol=0, atol=0)
    assert_close(moving_var, [0.0, 0.0], rtol=0, atol=0)
