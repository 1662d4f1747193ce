"""The activation and dropout kernels (kernels/activation.cu, kernels/dropout.cu) against the numpy backend.

Each case runs an op under the numpy backend and under a kernel backend, compares every output
(and what forward saves for backward), and checks that the kernel backend launched exactly the
op's kernel, so no NumPy compute hides on the kernel path.
"""
import numpy as np
import pytest

from checks import assert_close, compare_with_numpy, run_on_backend, thread_order
from gpunet import backend
from gpunet.primitives import activation as ops
from gpunet.primitives import dropout


def _normal(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# 1 element, a 1-channel image, 3 and 67 channels, sizes that are no multiple of 256 or 32.
SHAPES = [(1,), (1, 5, 7, 1), (2, 3, 5, 3), (1, 4, 3, 67), (3, 37)]

ELEMENTWISE = {   # name -> (forward, backward, which forward array backward takes)
    "relu": (ops.relu_forward, ops.relu_backward, "x"),
    "leaky_relu": (lambda x: ops.leaky_relu_forward(x, 0.2), lambda dy, x: ops.leaky_relu_backward(dy, x, 0.2), "x"),
    "elu": (lambda x: ops.elu_forward(x, 0.7), lambda dy, x: ops.elu_backward(dy, x, 0.7), "x"),
    "sigmoid": (ops.sigmoid_forward, ops.sigmoid_backward, "y"),
    "tanh": (ops.tanh_forward, ops.tanh_backward, "y"),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_activation(kernel_backend, rng, name, shape):
    forward, backward, saved = ELEMENTWISE[name]
    x = _normal(rng, shape, 3.0)
    x.flat[0] = 0.0   # the kink of the piecewise activations
    y, = compare_with_numpy(kernel_backend, lambda: forward(x), [f"{name}_forward"])
    dy = _normal(rng, shape)
    compare_with_numpy(kernel_backend, lambda: backward(dy, x if saved == "x" else y), [f"{name}_backward"])


def test_activations_saturate_without_overflow(kernel_backend):
    x = np.array([-1e4, -100.0, -88.0, 88.0, 100.0, 1e4, 3e38, -3e38], np.float32)
    for name in ("sigmoid", "tanh", "elu"):
        forward = ELEMENTWISE[name][0]
        y, = compare_with_numpy(kernel_backend, lambda: forward(x), [f"{name}_forward"])
        assert np.all(np.isfinite(y)), (name, y)


NAN_CASES = {   # every activation, and ReLU in each of its forms
    **{name: forward for name, (forward, _, _) in ELEMENTWISE.items()},
    "relu_capped": lambda x: ops.relu_forward(x, max_value=6.0),
    "relu_sloped": lambda x: ops.relu_forward(x, negative_slope=0.1, threshold=0.5),
}


@pytest.mark.parametrize("name", list(NAN_CASES))
def test_nan_propagates_through_every_activation_on_both_backends(kernel_backend, name):
    """A NaN in is a NaN out, as in Keras and PyTorch: an activation that maps it to 0 would hide
    a diverged layer from TerminateOnNaN."""
    x = np.array([np.nan, -2.0, 0.0, 0.7, 9.0], np.float32)
    (expected,), _ = run_on_backend("numpy", lambda: NAN_CASES[name](x))
    (actual,), _ = run_on_backend(kernel_backend, lambda: NAN_CASES[name](x))
    for got, backend_name in ((expected, "numpy"), (actual, kernel_backend)):
        assert np.isnan(got[0]), f"{name} on {backend_name} maps NaN to {got[0]}"
    assert_close(actual[1:], expected[1:], what=name)


RELU_SETTINGS = [   # (max_value, negative_slope, threshold)
    (None, 0.0, 0.0),
    (6, 0.0, 0.0),            # an int max_value must still reach the kernel as a float
    (None, 0.1, 0.0),
    (None, 0.0, 0.5),
    (1.5, 0.2, -0.5),
    (2.0, 0.3, 1.0),
]


@pytest.mark.parametrize("max_value, negative_slope, threshold", RELU_SETTINGS)
def test_relu_settings(kernel_backend, rng, max_value, negative_slope, threshold):
    x = _normal(rng, (2, 7, 5, 3), 3.0)
    x.flat[:4] = [threshold, 0.0, max_value or 6.0, -threshold]   # every boundary the masks compare with
    settings = (max_value, negative_slope, threshold)
    compare_with_numpy(kernel_backend, lambda: ops.relu_forward(x, *settings), ["relu_forward"])
    dy = _normal(rng, x.shape)
    compare_with_numpy(kernel_backend, lambda: ops.relu_backward(dy, x, *settings), ["relu_backward"])


def test_grid_stride_covers_more_elements_than_the_grid(kernel_backend, rng):
    x = _normal(rng, (2049 * 256 + 7,))   # past the 2048-block cap: threads loop
    compare_with_numpy(kernel_backend, lambda: ops.leaky_relu_forward(x, 0.3), ["leaky_relu_forward"])


SOFTMAX_CASES = [   # (shape, axis)
    ((1, 1), -1),         # one class: probability 1, gradient 0
    ((5, 3), -1),
    ((3, 1, 2, 67), -1),  # 67 classes: lanes take columns j, j + 32, j + 64
    ((4, 10), 1),
    ((2, 3, 4, 5), 1),    # softmax along H: moved last and back
    ((1, 37), 0),         # along a batch of 1
    ((19, 6), -1),        # 19 rows: three blocks of 8 warps, the last part empty
]


@pytest.mark.parametrize("shape, axis", SOFTMAX_CASES)
def test_softmax(kernel_backend, rng, shape, axis):
    x = _normal(rng, shape, 4.0)
    y, = compare_with_numpy(kernel_backend, lambda: ops.softmax_forward(x, axis), ["softmax_forward"])
    assert_close(y.sum(axis=axis), np.ones(y.sum(axis=axis).shape, np.float32), what="row sums")
    dy = _normal(rng, shape)
    compare_with_numpy(kernel_backend, lambda: ops.softmax_backward(dy, y, axis), ["softmax_backward"])


def test_softmax_warps_loop_over_rows_past_the_grid(kernel_backend, rng, monkeypatch):
    monkeypatch.setattr(ops, "_MAX_BLOCKS", 2)   # 16 warps for 45 rows
    x, dy = _normal(rng, (45, 40)), _normal(rng, (45, 40))
    y, = compare_with_numpy(kernel_backend, lambda: ops.softmax_forward(x), ["softmax_forward"])
    compare_with_numpy(kernel_backend, lambda: ops.softmax_backward(dy, y), ["softmax_backward"])


def test_softmax_of_huge_logits_is_finite(kernel_backend):
    x = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 0.0], [-1e4, -1e4, -1e4]], np.float32)
    y, = compare_with_numpy(kernel_backend, lambda: ops.softmax_forward(x), ["softmax_forward"])
    assert np.all(np.isfinite(y))
    assert_close(y, np.array([[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]], np.float32))


def test_softmax_backward_is_bit_identical_across_runs(kernel_backend, rng):
    y, _ = run_on_backend(kernel_backend, lambda: ops.softmax_forward(_normal(rng, (21, 45))))
    dy = _normal(rng, (21, 45))
    with thread_order("ascending"):
        first, _ = run_on_backend(kernel_backend, lambda: ops.softmax_backward(dy, y[0]))
    with thread_order("descending"):
        second, _ = run_on_backend(kernel_backend, lambda: ops.softmax_backward(dy, y[0]))
    assert first[0].tobytes() == second[0].tobytes()


@pytest.mark.parametrize("op, args", [
    (ops.relu_forward, 1), (ops.sigmoid_backward, 2), (ops.softmax_forward, 1), (dropout.dropout_backward, 2)])
def test_kernel_path_refuses_float64(kernel_backend, op, args):
    arrays = [np.ones((2, 3))] * args
    with backend.use(kernel_backend), pytest.raises(TypeError, match=f"{op.__name__}.*float32.*float64"):
        op(*arrays)


def test_kernel_path_refuses_mismatched_shapes(kernel_backend):
    with backend.use(kernel_backend), pytest.raises(ValueError, match=r"relu_backward.*\(2, 3\), \(3, 2\)"):
        ops.relu_backward(np.ones((2, 3), np.float32), np.ones((3, 2), np.float32))


# -- dropout --------------------------------------------------------------------------------

DROPOUT_CASES = [   # (shape, rate, seed)
    ((1,), 0.5, 0),
    ((2, 5, 7, 3), 0.5, 1234),
    ((1, 4, 3, 67), 0.1, 2 ** 32 - 1),
    ((3, 37), 0.9, 7),
    ((1000,), 0.0, 99),          # rate 0 keeps everything, scale 1
    ((513,), 0.3, 2 ** 40 + 5),  # a seed past 32 bits is taken modulo 2**32
]


@pytest.mark.parametrize("shape, rate, seed", DROPOUT_CASES)
def test_dropout_matches_the_numpy_hash_bit_for_bit(kernel_backend, rng, shape, rate, seed):
    x = _normal(rng, shape)
    expected, _ = run_on_backend("numpy", lambda: dropout.dropout_forward(x, rate, seed))
    actual, launched = run_on_backend(kernel_backend, lambda: dropout.dropout_forward(x, rate, seed))
    assert launched == ["dropout_forward"]
    for name, a, e in zip(("y", "mask"), actual, expected):
        assert a.dtype == np.float32 and a.shape == shape
        assert a.tobytes() == e.tobytes(), f"dropout {name} differs at {np.flatnonzero(a != e)[:5]}"
    dy = _normal(rng, shape)
    dx, = compare_with_numpy(kernel_backend, lambda: dropout.dropout_backward(dy, actual[1]), ["dropout_backward"])
    assert dx.tobytes() == (dy * expected[1]).tobytes()


def test_dropout_drops_about_rate(kernel_backend, rng):
    x = np.ones((40, 50), np.float32)
    (y, mask), _ = run_on_backend(kernel_backend, lambda: dropout.dropout_forward(x, 0.25, 3))
    kept = np.count_nonzero(mask)
    assert 0.72 * x.size < kept < 0.78 * x.size
    assert set(np.unique(y)) == {np.float32(0), np.float32(1 / 0.75)}
