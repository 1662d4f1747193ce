"""bf16 / fp16 through the loss and metric kernels (issue 11): predictions and their gradients in
the 16-bit type, targets, loss values, probs, sums and counts in float32 / integers.

Two checks per case, on small shapes (cudasim runs every thread on the CPU):

* cudasim against the NumPy reference, both given the same 16-bit predictions: a gradient within
  1 unit in the last place of the 16-bit type (both compute in float32 and round once; their
  float32 values differ only by summation order, a few float32 ulps, which moves the rounded
  result by at most one 16-bit ulp where it sits next to a rounding boundary); a float32 value
  (loss, sum) within n * 2**-24 relative, n the terms summed (the float32 error bound of a sum of
  non-negative terms in any order); counts exactly.
* the NumPy reference in 16-bit against float64 arithmetic on the same (widened) inputs: the
  gradient within 1 ulp of the 16-bit type (float32 evaluation error far below half an ulp, then
  one rounding), the float32 values within n * 2**-24 relative: the round-once rule holds.
"""
import types

import numpy as np
import pytest

from checks import run_on_backend
from gpunet.primitives import loss as ops
from gpunet.primitives import launch, loss_overlap, loss_rows, loss_terms, metrics, precision, weighted_loss

HALF = {"bfloat16": precision.BFLOAT16, "float16": precision.FLOAT16}
EPS32 = 2.0 ** -24   # float32's unit roundoff


def ordered(a):
    """16-bit values as integers in their numeric order (-0 and +0 both 0), for ulp distances."""
    bits = np.asarray(a).view(np.uint16).astype(np.int64)
    return np.where(bits & 0x8000, -(bits & 0x7FFF), bits)


def assert_ulps(actual, expected, limit=1, what=""):
    """``actual`` and ``expected`` (one 16-bit dtype) at most ``limit`` ulps apart, NaN where NaN."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, \
        f"{what}: {actual.dtype}{actual.shape} vs {expected.dtype}{expected.shape}"
    nan = np.isnan(expected.astype(np.float32))
    assert np.array_equal(np.isnan(actual.astype(np.float32)), nan), f"{what}: NaN positions differ"
    distance = np.abs(ordered(actual) - ordered(expected))[~nan]
    assert distance.size == 0 or distance.max() <= limit, \
        f"{what}: {distance.max()} ulps apart (at most {limit}), {np.count_nonzero(distance > limit)} elements"


def assert_float32(actual, expected, terms, what=""):
    """A float32 sum of ``terms`` non-negative-ish terms: within terms * 2**-24 relative."""
    assert actual.dtype == np.float32, f"{what}: dtype {actual.dtype}, expected float32"
    np.testing.assert_allclose(actual, expected, rtol=terms * EPS32, atol=1e-30, err_msg=what)


def inputs(rng, dtype, rows=6, cols=10):
    """Predictions of ``dtype`` (the 16-bit values; float64 copies of them for the reference),
    float32 targets: one-hot, soft, labels (int), binary."""
    half = precision.BFLOAT16 if dtype == np.float64 else dtype

    def pred(x):
        return x.astype(np.float32).astype(half).astype(dtype)

    labels = rng.integers(0, cols, rows)
    return types.SimpleNamespace(
        logits=pred(rng.standard_normal((rows, cols)) * 3),
        probs=pred(rng.uniform(0.05, 1.0, (rows, cols))),
        unit=pred(rng.uniform(0.02, 0.98, (rows, cols))),
        one_hot=ops.one_hot(labels, cols, np.float32), labels=labels,
        soft=rng.dirichlet(np.ones(cols), rows).astype(np.float32),
        binary=rng.integers(0, 2, (rows, cols)).astype(np.float32),
        target=rng.standard_normal((rows, cols)).astype(np.float32),
        weights=rng.uniform(0.0, 2.0, rows).astype(np.float32))


def _softmax_ce(d):
    loss, probs = ops.softmax_cross_entropy_forward(d.soft, d.logits)
    return [loss, probs, ops.softmax_cross_entropy_backward(d.soft, probs, d.logits.dtype)]


def _sparse_softmax_ce(d):
    loss, probs = ops.sparse_softmax_cross_entropy_forward(d.labels, d.logits)
    return [loss, probs, ops.sparse_softmax_cross_entropy_backward(d.labels, probs, d.logits.dtype)]


def _categorical(d):
    return [ops.categorical_crossentropy_forward(d.soft, d.probs), ops.categorical_crossentropy_backward(d.soft, d.probs),
            ops.sparse_categorical_crossentropy_forward(d.labels, d.probs),
            ops.sparse_categorical_crossentropy_backward(d.labels, d.probs)]


def _binary(d):
    return [ops.binary_crossentropy_forward(d.binary, d.unit), ops.binary_crossentropy_backward(d.binary, d.unit),
            ops.binary_crossentropy_from_logits_forward(d.binary, d.logits),
            ops.binary_crossentropy_from_logits_backward(d.binary, d.logits)]


def _regression(d):
    return [ops.mse_forward(d.target, d.logits), ops.mse_backward(d.target, d.logits),
            ops.mae_forward(d.target, d.logits), ops.mae_backward(d.target, d.logits),
            ops.sum_squared_error(d.target, d.logits), ops.sum_absolute_error(d.target, d.logits)]


def _counts(d):
    return [ops.count_argmax_equal(d.one_hot, d.logits), ops.count_label_equal(d.labels, d.logits),
            ops.count_binary_equal(d.binary, d.unit)]


def _weighted(d):
    loss, probs = weighted_loss.softmax_cross_entropy_forward(d.labels, d.weights, d.logits, sparse=True)
    dx = ops.sparse_softmax_cross_entropy_backward(d.labels, probs, d.logits.dtype)
    return [loss, probs, weighted_loss.softmax_cross_entropy_forward(d.soft, d.weights, d.logits)[0],
            weighted_loss.categorical_crossentropy_forward(d.soft, d.weights, d.probs),
            weighted_loss.categorical_crossentropy_forward(d.labels, d.weights, d.probs, sparse=True),
            weighted_loss.elementwise_forward("binary_crossentropy", d.binary, d.weights, d.unit),
            weighted_loss.elementwise_forward("binary_crossentropy_from_logits", d.binary, d.weights, d.logits),
            weighted_loss.elementwise_forward("squared_error", d.target, d.weights, d.logits),
            weighted_loss.elementwise_forward("absolute_error", d.target, d.weights, d.logits),
            weighted_loss.scale_rows(dx, d.weights)]


# loss_terms kinds: (targets, predictions, settings a, b, c)
TERMS = {"huber": ("target", "logits", (1.0,)), "log_cosh": ("target", "logits", ()),
         "poisson": ("binary", "probs", (1e-7,)), "squared_log": ("binary", "probs", (1e-7,)),
         "percentage": ("target", "logits", (1e-7,)), "kl_divergence": ("soft", "probs", (1e-7,)),
         "hinge": ("signs", "logits", ()), "squared_hinge": ("signs", "logits", ()),
         "binary_focal": ("binary", "unit", (2.0, 0.25, 1.0)), "binary_focal_logits": ("binary", "logits", (2.0, 0.25, 0.0))}


def _terms(d):
    out = []
    for kind, (y, p, settings) in TERMS.items():
        y_true, y_pred = getattr(d, y) if y != "signs" else 2 * d.binary - 1, getattr(d, p)
        out += [loss_terms.term_sum(kind, y_true, y_pred, y_pred.size, *settings),
                loss_terms.term_gradient(kind, y_true, y_pred, 1.0 / y_pred.size, *settings)]
    return out


def _rows(d):
    out = []
    for kind, y, p, settings in [("cosine", d.target, d.logits, (1e-7,)), ("categorical_hinge", d.one_hot, d.logits, ()),
                                 ("categorical_focal", d.one_hot, d.probs, (0.25, 2.0)),
                                 ("categorical_focal_logits", d.soft, d.logits, (0.25, 2.0))]:
        rows = p.size // p.shape[-1]
        out += [loss_rows.row_sum(kind, y, p, rows, *settings), loss_rows.row_gradient(kind, y, p, 1.0 / rows, *settings)]
    return out


def _overlap(d):
    out = []
    for settings in ({"tversky": False}, {"tversky": True, "alpha": 0.3, "beta": 0.7}):
        loss, stats = loss_overlap.overlap_forward(d.binary, d.unit, **settings)
        out += [loss, loss_overlap.overlap_backward(d.binary, d.unit, stats, **settings)]
    return out


def _metrics(d):
    rows, cols = d.logits.shape
    cm = metrics.confusion_update(launch.zeros((cols, cols), np.uint64), d.one_hot, d.logits, cols,
                                  mode_true=metrics.CLASS_ARGMAX, mode_pred=metrics.CLASS_ARGMAX)
    binary_cm = metrics.confusion_update(launch.zeros((2, 2), np.uint64), d.binary, d.unit, 2, ignore_class=None,
                                         mode_true=metrics.CLASS_VALUE, mode_pred=metrics.CLASS_THRESHOLD,
                                         threshold=0.3)
    thresholds = launch.array(np.linspace(0.0, 1.0, 7, dtype=np.float32))
    hist = metrics.threshold_histogram(launch.zeros((2, 8), np.uint64), d.binary, d.unit, thresholds)
    top = [metrics.top_k_count(launch.zeros((1,), np.uint64), y, d.logits, 3, sparse)
           for y, sparse in ((d.labels.astype(np.float32), True), (d.one_hot, False))]
    fbeta = [metrics.fbeta_update(launch.zeros((4, cols)), d.binary, p, threshold)
             for p, threshold in ((d.logits, None), (d.unit, 0.3))]
    return [cm, binary_cm, hist, *top, *fbeta]


# name: (the case, the most terms one float32 output sums)
CASES = {"softmax_ce": (_softmax_ce, 60), "sparse_softmax_ce": (_sparse_softmax_ce, 60),
         "categorical": (_categorical, 60), "binary": (_binary, 60), "regression": (_regression, 60),
         "counts": (_counts, 0), "weighted": (_weighted, 60), "terms": (_terms, 600), "rows": (_rows, 600),
         "overlap": (_overlap, 60), "metrics": (_metrics, 0)}


def check_outputs(actual, expected, half, terms, what):
    assert len(actual) == len(expected)
    for k, (a, e) in enumerate(zip(actual, expected)):
        name = f"{what} output {k}"
        if e.dtype == half:
            assert_ulps(a, e, 1, name)
        elif e.dtype.kind == "f":
            assert_float32(a, e, max(terms, 1), name)
        else:
            assert a.dtype.kind in "iu" and np.array_equal(a, e), f"{name}: {a} vs {e}"
    assert not any(e.dtype in precision.HALF and e.dtype != half for e in expected)


@pytest.mark.parametrize("half", sorted(HALF))
@pytest.mark.parametrize("case", sorted(CASES))
def test_kernels_match_numpy_in_16_bit(kernel_backend, rng, case, half):
    fn, terms = CASES[case]
    d = inputs(rng, HALF[half])
    expected, _ = run_on_backend("numpy", lambda: fn(d))
    actual, launched = run_on_backend(kernel_backend, lambda: fn(d))
    assert launched and "cast_from_float" not in launched   # no hidden float32 copy of the predictions
    gradients = [e for e in expected if e.dtype == HALF[half]]
    assert gradients or case in ("counts", "metrics") or case.endswith("softmax_ce")
    check_outputs(actual, expected, HALF[half], terms, f"{case} {half}")


@pytest.mark.reference
@pytest.mark.parametrize("half", sorted(HALF))
@pytest.mark.parametrize("case", sorted(CASES))
def test_numpy_reference_rounds_once(rng, case, half):
    fn, terms = CASES[case]
    seed = rng.integers(1 << 30)
    d16 = inputs(np.random.default_rng(seed), HALF[half])
    d64 = inputs(np.random.default_rng(seed), np.float64)
    d64.logits, d64.probs, d64.unit = (d16.logits.astype(np.float64), d16.probs.astype(np.float64),
                                       d16.unit.astype(np.float64))
    actual = [np.asarray(a) for a in fn(d16)]
    exact = [np.asarray(e) for e in fn(d64)]
    for k, (a, e) in enumerate(zip(actual, exact)):
        name = f"{case} {half} output {k}"
        if a.dtype == HALF[half]:
            assert_ulps(a, e.astype(np.float32).astype(HALF[half]), 1, name)
        elif a.dtype.kind == "f":
            assert_float32(a, e.astype(np.float32), max(terms, 1) + 2, name)
        else:
            assert np.array_equal(a, e), name


def test_probs_and_losses_are_float32_and_the_gradient_has_the_logits_dtype(kernel_backend, rng):
    d = inputs(rng, precision.BFLOAT16, rows=3, cols=5)
    (loss, probs, dx), _ = run_on_backend(kernel_backend, lambda: _softmax_ce(d))
    assert (loss.dtype, probs.dtype, dx.dtype) == (np.float32, np.float32, precision.BFLOAT16)
    assert loss.shape == () and probs.shape == dx.shape == (3, 5)


def test_16_bit_targets_are_widened_and_float64_predictions_refused(kernel_backend, rng):
    d = inputs(rng, precision.FLOAT16, rows=3, cols=5)
    targets16 = d.target.astype(np.float16)
    (wide, narrow), _ = run_on_backend(kernel_backend, lambda: [
        ops.mse_backward(targets16.astype(np.float32), d.logits), ops.mse_backward(targets16, d.logits)])
    np.testing.assert_array_equal(wide.view(np.uint16), narrow.view(np.uint16))
    with pytest.raises(TypeError, match=r"mse_backward.*float32 or bfloat16 or float16.*float64"):
        run_on_backend(kernel_backend, lambda: ops.mse_backward(d.target, d.logits.astype(np.float64)))


def _loss_objects(d):
    import gpunet as gn
    smoothed = gn.losses.CategoricalCrossentropy(label_smoothing=0.1)
    sparse = gn.losses.SparseCategoricalCrossentropy()
    return [*smoothed.device_compute_from_logits(d.one_hot, d.logits),
            *sparse.device_compute_from_logits(d.labels, d.logits, sample_weight=d.weights),
            *gn.losses.MeanSquaredError().device_compute(d.target, d.logits)]


@pytest.mark.parametrize("half", sorted(HALF))
def test_loss_objects_take_16_bit_predictions(kernel_backend, rng, half):
    """The Loss objects keep targets and weights float32 and give gradients in the predictions' dtype."""
    d = inputs(rng, HALF[half])
    expected, _ = run_on_backend("numpy", lambda: _loss_objects(d))
    actual, _ = run_on_backend(kernel_backend, lambda: _loss_objects(d))
    dtypes = [np.float32, HALF[half], np.float32] * 2 + [np.float32, HALF[half]]
    assert [a.dtype for a in actual] == [e.dtype for e in expected] == dtypes
    check_outputs(actual, expected, HALF[half], 60, f"loss objects {half}")


def test_mean_metrics_keep_float32_targets_beside_bfloat16_predictions(kernel_backend, rng):
    import gpunet as gn
    d = inputs(rng, precision.BFLOAT16)
    metric = gn.metrics.MeanSquaredError()
    run_on_backend(kernel_backend, lambda: metric.update_state(d.target, d.logits))
    exact = np.mean((d.logits.astype(np.float64) - d.target) ** 2)   # targets not rounded to bfloat16
    assert metric.result() == pytest.approx(exact, rel=60 * EPS32)
