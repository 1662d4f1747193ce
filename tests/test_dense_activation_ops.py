"""Dense, activation and dropout ops: gradients against central differences, dtypes, the dropout hash."""
import numpy as np
import pytest

from checks import assert_close, check_backward
from gpunet.primitives import activation, dense, dropout

# float64 checks of the NumPy reference ops: they stay on numpy under any GPUNET_BACKEND
# (the kernels are compared with them in test_kernels_*.py)
pytestmark = pytest.mark.reference


# -- dense ----------------------------------------------------------------------------------

@pytest.mark.parametrize("n, fan_in, fan_out", [(1, 1, 1), (3, 4, 5), (7, 2, 3)])
def test_dense_gradients(n, fan_in, fan_out, rng):
    x, w, b = rng.standard_normal((n, fan_in)), rng.standard_normal((fan_in, fan_out)), rng.standard_normal(fan_out)
    saved = {}

    def forward(x, w, b):
        saved.update(x=x, w=w)
        return dense.dense_forward(x, w, b)

    check_backward(forward, lambda dy: dense.dense_backward(dy, saved["x"], saved["w"]), [x, w, b])


def test_dense_without_bias_and_without_input_gradient(rng):
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    assert_close(dense.dense_forward(x, w, None), x @ w)
    dy = rng.standard_normal((4, 2))
    dx, dw, db = dense.dense_backward(dy, x, w, need_dx=False, need_db=False)
    assert dx is None and db is None
    assert_close(dw, x.T @ dy)


def test_dense_keeps_float32(rng):
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((4, 3), (3, 2), (2,)))
    y = dense.dense_forward(x, w, b)
    grads = dense.dense_backward(np.ones_like(y), x, w)
    assert y.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    assert_close(grads[2], np.full(2, 4.0))   # bias gradient: sum over the batch of ones


# -- activations ----------------------------------------------------------------------------

# (name, forward, backward, which saved array backward takes: "x" or "y")
CASES = [
    ("relu", activation.relu_forward, activation.relu_backward, "x"),
    ("relu6", lambda x: activation.relu_forward(x, max_value=0.6),
     lambda dy, x: activation.relu_backward(dy, x, max_value=0.6), "x"),
    ("relu_general", lambda x: activation.relu_forward(x, max_value=1.0, negative_slope=0.1, threshold=0.2),
     lambda dy, x: activation.relu_backward(dy, x, max_value=1.0, negative_slope=0.1, threshold=0.2), "x"),
    ("leaky_relu", lambda x: activation.leaky_relu_forward(x, 0.3),
     lambda dy, x: activation.leaky_relu_backward(dy, x, 0.3), "x"),
    ("elu", lambda x: activation.elu_forward(x, 1.5), lambda dy, x: activation.elu_backward(dy, x, 1.5), "x"),
    ("sigmoid", activation.sigmoid_forward, activation.sigmoid_backward, "y"),
    ("tanh", activation.tanh_forward, activation.tanh_backward, "y"),
    ("softmax", activation.softmax_forward, activation.softmax_backward, "y"),
    ("softmax_axis0", lambda x: activation.softmax_forward(x, axis=0),
     lambda dy, y: activation.softmax_backward(dy, y, axis=0), "y"),
]


@pytest.mark.parametrize("name, forward, backward, saves", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("shape", [(5,), (2, 3, 4)])
def test_activation_gradients(name, forward, backward, saves, shape, rng):
    x0 = rng.standard_normal(shape)
    saved = {}

    def run(x):
        saved["x"], saved["y"] = x, forward(x)
        return saved["y"]

    check_backward(run, lambda dy: backward(dy, saved[saves]), [x0])


@pytest.mark.parametrize("name, forward, backward, saves", CASES, ids=[c[0] for c in CASES])
def test_activation_keeps_float32(name, forward, backward, saves, rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    y = forward(x)
    assert y.dtype == np.float32
    assert backward(np.ones_like(y), x if saves == "x" else y).dtype == np.float32


def test_activation_values_by_hand():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    assert_close(activation.relu_forward(x), [0, 0, 0, 0.5, 2])
    assert_close(activation.relu_forward(x, max_value=1.0), [0, 0, 0, 0.5, 1])
    # Keras's general ReLU: below the threshold, negative_slope * (x - threshold).
    assert_close(activation.relu_forward(x, negative_slope=0.5, threshold=1.0), [-1.5, -0.75, -0.5, -0.25, 2])
    assert_close(activation.leaky_relu_forward(x, 0.3), [-0.6, -0.15, 0, 0.5, 2])
    assert_close(activation.elu_forward(x, 1.0), [np.exp(-2) - 1, np.exp(-0.5) - 1, 0, 0.5, 2])
    assert_close(activation.sigmoid_forward(np.array([0.0, np.log(3.0)])), [0.5, 0.75])
    assert_close(activation.relu_backward(np.ones(5), x), [0, 0, 0, 1, 1])


def test_sigmoid_and_softmax_stay_finite_for_huge_inputs():
    x = np.array([[-1e4, 0.0, 1e4]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):   # underflow to 0 is fine
        assert_close(activation.sigmoid_forward(x), [[0, 0.5, 1]])
        assert_close(activation.softmax_forward(x), [[0, 0, 1]])
        assert_close(activation.elu_forward(x), [[-1, 0, 1e4]])


# -- dropout --------------------------------------------------------------------------------

def _mix32_python(h):
    """The brief's hash written with Python ints, independent of the NumPy version."""
    mask = 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x7FEB352D) & mask
    h ^= h >> 15
    h = (h * 0x846CA68B) & mask
    return h ^ (h >> 16)


@pytest.mark.parametrize("seed, rate", [(0, 0.5), (12345, 0.25), (2 ** 32 - 1, 0.9)])
def test_dropout_mask_matches_the_hash_element_by_element(seed, rate):
    key = _mix32_python(seed)
    expected = []
    for i in range(200):
        h = _mix32_python((_mix32_python(i ^ key) + key) & 0xFFFFFFFF)
        expected.append((h >> 8) * 2.0 ** -24 >= rate)
    assert np.array_equal(dropout.dropout_keep(200, rate, seed), np.array(expected))


def test_dropout_hash_pinned_values():
    # Pinned from a separate C implementation with uint32_t arithmetic (the CUDA kernel's target).
    hashed = dropout.mix32(np.array([1, 2, 0xDEADBEEF], dtype=np.uint32))
    assert [int(h) for h in hashed] == [0x688990C0, 0xD1132181, 0xE628C683]
    assert np.flatnonzero(dropout.dropout_keep(32, 0.5, 2024)).tolist() == [
        3, 4, 6, 13, 14, 15, 17, 18, 19, 20, 22, 25, 26, 27, 29, 31]
    # u >= rate exactly: (h >> 8) >= ceil(rate * 2**24), so u == rate keeps the element.
    assert dropout.keep_threshold(0.5) == 2 ** 23 and dropout.keep_threshold(0.1) == 1677722


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_keeps_the_right_fraction_and_scales(rate, rng):
    x = rng.standard_normal((100, 100)).astype(np.float32)
    y, mask = dropout.dropout_forward(x, rate, seed=7)
    kept = mask != 0
    # 10k Bernoulli draws: the standard deviation of the kept fraction is below 0.005.
    assert abs(kept.mean() - (1 - rate)) < 0.02
    assert y.dtype == mask.dtype == np.float32
    assert_close(y[kept], x[kept] / (1 - rate), rtol=1e-6)
    assert np.all(y[~kept] == 0)


def test_dropout_mask_is_reproducible_from_the_seed(rng):
    x = rng.standard_normal((6, 7))
    y1, m1 = dropout.dropout_forward(x, 0.4, seed=99)
    y2, m2 = dropout.dropout_forward(x, 0.4, seed=99)
    _, m3 = dropout.dropout_forward(x, 0.4, seed=100)
    assert np.array_equal(m1, m2) and np.array_equal(y1, y2)
    assert not np.array_equal(m1, m3)
    # The mask depends on the flat index only, not on the shape.
    _, flat = dropout.dropout_forward(x.reshape(-1), 0.4, seed=99)
    assert np.array_equal(flat.reshape(6, 7), m1)


def test_dropout_gradient(rng):
    saved = {}

    def forward(x):
        y, saved["mask"] = dropout.dropout_forward(x, 0.3, seed=5)
        return y

    check_backward(forward, lambda dy: dropout.dropout_backward(dy, saved["mask"]), [rng.standard_normal((4, 5))])


def test_dropout_rate_zero_keeps_everything_and_bad_rate_fails(rng):
    x = rng.standard_normal((3, 3))
    y, _ = dropout.dropout_forward(x, 0.0, seed=1)
    assert np.array_equal(y, x)
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\); received 1.0"):
        dropout.dropout_forward(x, 1.0, seed=1)
