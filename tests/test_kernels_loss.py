"""The loss and metric kernels (kernels/loss.cu) against the numpy backend.

Each case runs an op under the numpy backend and under a kernel backend, compares every output
(the fused softmax cross-entropy's probs too), and checks which kernels the kernel backend
launched, so no NumPy compute hides on the kernel path. Counts must be exact.
"""
import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, compare_with_numpy, run_on_backend, thread_order
from gpunet import backend
from gpunet.primitives import loss as ops

FINISH = "sum_partials_finish"


def _normal(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _one_hot(rng, shape):
    labels = rng.integers(0, shape[-1], shape[:-1])
    return labels, ops.one_hot(labels, shape[-1], np.float32)


def _probabilities(rng, shape):
    """Rows that do not sum to 1, with entries the clip catches (0 and almost all of a row)."""
    p = rng.uniform(0.0, 1.0, shape).astype(np.float32)
    if shape[-1] > 1:   # (a one-class row of 0 would be 0 / 0)
        p.flat[0] = 0.0
        p[(-1,) * (len(shape) - 1)] = 1e-9
        p[(-1,) * (len(shape) - 1) + (0,)] = 3.0
    return p


# (batch, classes): batch 1, one class, 3 and 67 classes; 4-D per-pixel outputs; 19 rows (three
# blocks of 8 warps, the last part empty).
CE_SHAPES = [(1, 3), (4, 1), (5, 10), (2, 67), (2, 3, 3, 5), (19, 6)]


@pytest.mark.parametrize("shape", CE_SHAPES)
def test_softmax_cross_entropy(kernel_backend, rng, shape):
    logits = _normal(rng, shape, 3.0)
    _, y_true = _one_hot(rng, shape)
    y_true[0] = rng.uniform(0, 1, shape[1:])   # a soft target row, not summing to 1
    loss, probs = compare_with_numpy(kernel_backend, lambda: ops.softmax_cross_entropy_forward(y_true, logits),
                           ["softmax_cross_entropy_forward", FINISH])
    assert loss.shape == ()
    compare_with_numpy(kernel_backend, lambda: ops.softmax_cross_entropy_backward(y_true, probs),
             ["softmax_cross_entropy_backward"])


@pytest.mark.parametrize("shape", CE_SHAPES)
@pytest.mark.parametrize("label_dtype", [np.int64, np.int32])
def test_sparse_softmax_cross_entropy(kernel_backend, rng, shape, label_dtype):
    logits = _normal(rng, shape, 3.0)
    labels = rng.integers(0, shape[-1], shape[:-1]).astype(label_dtype)
    _, probs = compare_with_numpy(kernel_backend, lambda: ops.sparse_softmax_cross_entropy_forward(labels, logits),
                        ["sparse_softmax_cross_entropy_forward", FINISH])
    compare_with_numpy(kernel_backend, lambda: ops.sparse_softmax_cross_entropy_backward(labels, probs),
             ["sparse_softmax_cross_entropy_backward"])


@pytest.mark.parametrize("labels", [[0, -1], [0, 3], [0, 2 ** 32 + 2]])
def test_labels_outside_the_classes_agree_on_both_backends(kernel_backend, rng, labels):
    """A label outside [0, C) makes the sparse losses NaN and never counts as correct: int32 on the
    kernel path must not wrap 2**32 + 2 into class 2."""
    labels = np.array(labels, np.int64)
    logits, p = _normal(rng, (2, 3)), _probabilities(rng, (2, 3))
    p[1] = [0.1, 0.1, 0.8]   # class 2 wins the second row
    for fn in (lambda: ops.sparse_softmax_cross_entropy_forward(labels, logits)[0],
               lambda: ops.sparse_categorical_crossentropy_forward(labels, p)):
        for name in ("numpy", kernel_backend):
            (loss,), _ = run_on_backend(name, fn)
            assert np.isnan(loss), f"{name}: {loss}"
    counts = [run_on_backend(name, lambda: ops.count_label_equal(labels, p))[0][0] for name in ("numpy", kernel_backend)]
    assert counts[0] == counts[1] == (np.argmax(p[0]) == 0)


def test_softmax_cross_entropy_of_huge_logits_is_finite(kernel_backend):
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4], [0.0, 0.0, 1e4]], np.float32)
    labels = np.array([0, 1, 0])
    y_true = ops.one_hot(labels, 3, np.float32)
    for fn, kernel in [(lambda: ops.softmax_cross_entropy_forward(y_true, logits), "softmax_cross_entropy_forward"),
                       (lambda: ops.sparse_softmax_cross_entropy_forward(labels, logits),
                        "sparse_softmax_cross_entropy_forward")]:
        loss, probs = compare_with_numpy(kernel_backend, fn, [kernel, FINISH])
        assert np.isfinite(loss) and np.all(np.isfinite(probs))
        assert_close(loss, np.float32((np.log(2) + 1e4) / 3))   # rows lose 0, log 2 and 1e4


@pytest.mark.parametrize("shape", CE_SHAPES)
def test_categorical_crossentropy_on_probabilities(kernel_backend, rng, shape):
    y_pred = _probabilities(rng, shape)
    labels, y_true = _one_hot(rng, shape)
    y_true[(-1,) * (len(shape) - 1)] = 0.0
    y_true[(-1,) * (len(shape) - 1) + (-1,)] = 1.0   # the target on the clipped 1e-9 entry
    for sparse, targets in [("", y_true), ("sparse_", np.argmax(y_true, axis=-1))]:
        forward = getattr(ops, f"{sparse}categorical_crossentropy_forward")
        backward = getattr(ops, f"{sparse}categorical_crossentropy_backward")
        compare_with_numpy(kernel_backend, lambda: forward(targets, y_pred), [f"{sparse}categorical_crossentropy_forward", FINISH])
        compare_with_numpy(kernel_backend, lambda: backward(targets, y_pred), [f"{sparse}categorical_crossentropy_backward"])


# Elementwise losses: 1 element, a 1-channel image, 67 channels, and over 256 elements (several
# partial sums).
ELEMENTWISE_SHAPES = [(1, 1), (1, 5, 7, 1), (2, 3, 67), (3, 1000)]


def _binary_case(rng, shape):
    y_true = rng.integers(0, 2, shape).astype(np.float32)
    y_true.flat[-1] = 0.3   # a soft target
    y_pred = rng.uniform(0, 1, shape).astype(np.float32)
    y_pred.flat[:3] = [0.0, 1.0, 1e-9][:y_pred.size]   # the clip is active: zero gradient
    return y_true, y_pred


@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES)
def test_binary_crossentropy(kernel_backend, rng, shape):
    y_true, y_pred = _binary_case(rng, shape)
    compare_with_numpy(kernel_backend, lambda: ops.binary_crossentropy_forward(y_true, y_pred),
             ["binary_crossentropy_sum_partials", FINISH])
    compare_with_numpy(kernel_backend, lambda: ops.binary_crossentropy_backward(y_true, y_pred), ["binary_crossentropy_backward"])


@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES)
def test_binary_crossentropy_from_logits(kernel_backend, rng, shape):
    y_true, _ = _binary_case(rng, shape)
    logits = _normal(rng, shape, 4.0)
    logits.flat[:3] = [1e4, -1e4, 0.0][:logits.size]
    loss, = compare_with_numpy(kernel_backend, lambda: ops.binary_crossentropy_from_logits_forward(y_true, logits),
                     ["binary_crossentropy_from_logits_sum_partials", FINISH])
    assert np.isfinite(loss)
    compare_with_numpy(kernel_backend, lambda: ops.binary_crossentropy_from_logits_backward(y_true, logits),
             ["binary_crossentropy_from_logits_backward"])


@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES)
@pytest.mark.parametrize("name, partials", [("mse", "squared_error_sum_partials"),
                                            ("mae", "absolute_error_sum_partials")])
def test_regression_losses(kernel_backend, rng, shape, name, partials):
    y_true, y_pred = _normal(rng, shape), _normal(rng, shape)
    y_pred.flat[0] = y_true.flat[0]   # sign(0) = 0 for mae
    compare_with_numpy(kernel_backend, lambda: getattr(ops, f"{name}_forward")(y_true, y_pred), [partials, FINISH])
    compare_with_numpy(kernel_backend, lambda: getattr(ops, f"{name}_backward")(y_true, y_pred), [f"{name}_backward"])


def test_grids_smaller_than_the_work_loop(kernel_backend, rng, monkeypatch):
    """With the block caps lowered, warps loop over rows and threads over elements, as they do on
    inputs larger than 256 (reductions) or 2048 (gradients) blocks' worth."""
    monkeypatch.setattr(ops, "_MAX_PARTIALS", 3)
    monkeypatch.setattr(ops, "_MAX_BLOCKS", 2)
    logits, labels = _normal(rng, (61, 5)), rng.integers(0, 5, 61)
    y_true = ops.one_hot(labels, 5, np.float32)
    _, probs = compare_with_numpy(kernel_backend, lambda: ops.sparse_softmax_cross_entropy_forward(labels, logits),
                        ["sparse_softmax_cross_entropy_forward", FINISH])
    compare_with_numpy(kernel_backend, lambda: ops.softmax_cross_entropy_backward(y_true, probs), ["softmax_cross_entropy_backward"])
    many_labels, many_probs = rng.integers(0, 5, 200), _normal(rng, (200, 5))   # more than 2 blocks' elements
    compare_with_numpy(kernel_backend, lambda: ops.sparse_softmax_cross_entropy_backward(many_labels, many_probs),
             ["sparse_softmax_cross_entropy_backward"])
    p = _probabilities(rng, (61, 5))
    compare_with_numpy(kernel_backend, lambda: ops.categorical_crossentropy_backward(y_true, p), ["categorical_crossentropy_backward"])
    y_true, y_pred = _normal(rng, (7, 300)), _normal(rng, (7, 300))
    compare_with_numpy(kernel_backend, lambda: ops.mse_forward(y_true, y_pred), ["squared_error_sum_partials", FINISH])
    compare_with_numpy(kernel_backend, lambda: ops.mae_backward(y_true, y_pred), ["mae_backward"])
    _count(kernel_backend, lambda: ops.count_label_equal(labels, logits), "count_label_equal")
    _count(kernel_backend, lambda: ops.count_argmax_equal(logits, probs), "count_argmax_equal")
    _count(kernel_backend, lambda: ops.count_binary_equal(np.round(y_pred), y_pred, 0.0), "count_binary_equal")


def test_finish_adds_any_number_of_partials(kernel_backend, rng):
    partial = rng.integers(-1000, 1000, 700).astype(np.float32)   # integers: every order is exact
    with backend.use(kernel_backend) as be:
        out = be.empty((1,), np.float32)
        be.launch("loss.cu", FINISH, 1, 256, [be.asarray(partial), np.int32(700), out, np.float32(4)])
        assert float(be.to_numpy(out)[0]) == float(partial.astype(np.float64).sum() / 4)


def _kernel_values(kernel_backend, fn):
    outs, _ = run_on_backend(kernel_backend, fn)
    return [a.tobytes() for a in outs]


def test_reductions_and_gradients_are_bit_identical_across_runs(kernel_backend, rng):
    logits, labels = _normal(rng, (60, 13), 3.0), rng.integers(0, 13, 60)
    y_pred, y_true = _normal(rng, (7, 300)), _normal(rng, (7, 300))
    p = _probabilities(rng, (60, 13))
    cases = [
        lambda: ops.sparse_softmax_cross_entropy_forward(labels, logits),
        lambda: ops.softmax_cross_entropy_backward(ops.one_hot(labels, 13, np.float32), logits),
        lambda: ops.categorical_crossentropy_backward(ops.one_hot(labels, 13, np.float32), p),
        lambda: ops.categorical_crossentropy_forward(ops.one_hot(labels, 13, np.float32), p),
        lambda: ops.mse_forward(y_true, y_pred),
        lambda: ops.sum_absolute_error(y_true, y_pred),
    ]
    for fn in cases:
        with thread_order("ascending"):
            first = _kernel_values(kernel_backend, fn)
        with thread_order("descending"):
            assert _kernel_values(kernel_backend, fn) == first


# -- metric reductions --------------------------------------------------------------------------

def _count(kernel_backend, fn, kernel):
    (expected,), _ = run_on_backend("numpy", fn)
    (actual,), launched = run_on_backend(kernel_backend, fn)
    assert launched == [kernel]
    assert actual.shape == () and actual.dtype.kind == "i"
    assert int(actual) == int(expected), (int(actual), int(expected))
    return int(actual)


@pytest.mark.parametrize("shape", [(1, 3), (4, 1), (9, 10), (2, 3, 67), (19, 3)])
def test_count_argmax_and_label_equal(kernel_backend, rng, shape):
    # Small integers make ties common: the first maximum must win, as in NumPy.
    y_pred = rng.integers(0, 3, shape).astype(np.float32)
    labels, y_true = _one_hot(rng, shape)
    y_pred.flat[-shape[-1]:] = -np.inf   # a row of -inf: argmax 0
    _count(kernel_backend, lambda: ops.count_argmax_equal(y_true, y_pred), "count_argmax_equal")
    _count(kernel_backend, lambda: ops.count_label_equal(labels, y_pred), "count_label_equal")
    assert _count(kernel_backend, lambda: ops.count_label_equal(labels, y_true), "count_label_equal") == labels.size


def test_argmax_takes_the_first_nan_and_ties_as_numpy_does(kernel_backend):
    y_pred = np.array([[1.0, np.nan, 5.0], [np.nan, 2.0, np.nan], [0.0, 1.0, 0.0], [-0.0, 0.0, -1.0],
                       [-2.0, -1.0, -1.0]], np.float32)
    for labels in ([1, 0, 1, 0, 1], [2, 1, 1, 1, 2]):
        labels = np.array(labels)
        _count(kernel_backend, lambda: ops.count_label_equal(labels, y_pred), "count_label_equal")


@pytest.mark.parametrize("shape", [(1, 1), (5, 7, 3), (3, 1000)])
def test_count_binary_equal(kernel_backend, rng, shape):
    y_true = rng.integers(0, 2, shape).astype(np.float32)
    y_pred = rng.uniform(0, 1, shape).astype(np.float32)
    y_pred.flat[0] = 0.5   # not above the threshold
    for threshold in (0.5, 0.25):
        _count(kernel_backend, lambda: ops.count_binary_equal(y_true, y_pred, threshold), "count_binary_equal")


@pytest.mark.parametrize("name, partials", [("sum_squared_error", "squared_error_sum_partials"),
                                            ("sum_absolute_error", "absolute_error_sum_partials")])
def test_sums_of_errors(kernel_backend, rng, name, partials):
    for shape in [(1, 1), (4, 67), (3, 1000)]:
        y_true, y_pred = _normal(rng, shape), _normal(rng, shape)
        compare_with_numpy(kernel_backend, lambda: getattr(ops, name)(y_true, y_pred), [partials, FINISH])
    ints = rng.integers(-3, 4, (5, 9)).astype(np.float32)   # integer-valued: exact
    (total,), _ = run_on_backend(kernel_backend, lambda: getattr(ops, name)(ints, np.zeros_like(ints)))
    assert float(total) == float(np.sum(ints ** 2 if name == "sum_squared_error" else np.abs(ints)))


# -- through the public loss and metric objects ------------------------------------------------

@pytest.mark.parametrize("loss, metric, sparse", [
    ("sparse_categorical_crossentropy", "sparse_categorical_accuracy", True),
    ("categorical_crossentropy", "categorical_accuracy", False)])
def test_loss_and_metric_objects_run_on_kernels(kernel_backend, rng, loss, metric, sparse):
    logits = _normal(rng, (6, 4), 2.0)
    labels, y_true = _one_hot(rng, (6, 4))
    targets = labels if sparse else y_true

    def fused():
        value, dlogits, _ = gn.losses.get(loss).compute_from_logits(targets, logits)
        accuracy = gn.metrics.get(metric)
        accuracy.update_state(targets, logits)
        return np.float32(value), dlogits, np.float32(accuracy.result())
    compare_with_numpy(kernel_backend, fused, [f"{'sparse_' if sparse else ''}softmax_cross_entropy_forward", FINISH,
                                     f"{'sparse_' if sparse else ''}softmax_cross_entropy_backward",
                                     "count_label_equal" if sparse else "count_argmax_equal"])


def test_kernel_path_checks_dtypes_and_shapes(kernel_backend):
    with backend.use(kernel_backend):
        with pytest.raises(TypeError, match="mse_backward.*float32.*float64"):
            ops.mse_backward(np.zeros((2, 3)), np.zeros((2, 3)))
        with pytest.raises(ValueError, match=r"squared_error_sum_partials.*\(2, 3\).*\(3, 2\)"):
            ops.mse_forward(np.zeros((3, 2), np.float32), np.zeros((2, 3), np.float32))
        with pytest.raises(TypeError, match="integer labels"):
            ops.sparse_softmax_cross_entropy_forward(np.zeros(2, np.float32), np.zeros((2, 3), np.float32))
