"""Metrics with sample_weight, as Keras 3 reduces them: per-sample, per-pixel, broadcast and scalar
weights give Keras 3.15's results (tests/keras_fixtures/weighted_metrics.npz, written by
make_weighted_metric_fixtures.py); the weighted kernels of kernels/metrics.cu equal the NumPy
reference on cudasim; a weighted update inside a step reads nothing from the device."""
import json
import os

import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, compare_with_numpy
from gpunet import backend
from gpunet.primitives import launch, precision
from gpunet.primitives import metrics as ops

FIXTURE = os.path.join(os.path.dirname(__file__), "keras_fixtures", "weighted_metrics.npz")
with np.load(FIXTURE) as _data:
    KERAS = {key: _data[key] for key in _data.files}
CASES = json.loads(str(KERAS["cases"]))
IDS = [f"{i}-{name}-{kind}" for i, (name, _, kind) in enumerate(CASES)]
LABELS = ("SparseCategoricalAccuracy", "SparseTopKCategoricalAccuracy")


def _run(index, backend_name):
    name, kwargs, _ = CASES[index]
    with gn.backend.use(backend_name):
        metric = getattr(gn.metrics, name)(**kwargs)
        for b in range(2):
            y = KERAS[f"{index}_y{b}"]
            if name in ("Mean", "Sum"):   # update_state(values, sample_weight)
                metric.update_state(KERAS[f"{index}_p{b}"], sample_weight=KERAS[f"{index}_w{b}"])
                continue
            metric.update_state(y.astype(np.int64) if name in LABELS else y, KERAS[f"{index}_p{b}"],
                                sample_weight=KERAS[f"{index}_w{b}"])
        return np.asarray(metric.result(), dtype=np.float64)


@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_weighted_result_matches_keras(index):
    assert_close(_run(index, "numpy"), KERAS[f"{index}_result"], rtol=1e-5, atol=1e-6, what=IDS[index])


@pytest.mark.parametrize("index", [1, 3, 4, 6, 8, 11, 13, 16, 17, 18, 19], ids=lambda i: IDS[i])
def test_weighted_result_on_kernels_matches_keras(kernel_backend, index):
    assert_close(_run(index, kernel_backend), KERAS[f"{index}_result"], rtol=1e-5, atol=1e-6, what=IDS[index])


def test_mean_and_sum_without_weights_as_keras_documents_them():
    mean, total = gn.metrics.Mean(), gn.metrics.Sum()
    for metric in (mean, total):
        metric.update_state(np.array([1, 3, 5, 7]))
    assert (mean.result(), total.result()) == (4.0, 16.0)
    mean.update_state(np.array([[1.0, 3.0], [5.0, 7.0]]))   # per-sample means, each sample counted once
    total.update_state(np.array([1, 3, 5, 7]), sample_weight=np.array([1, 1, 0, 0]))
    assert (mean.result(), total.result()) == (4.0, 20.0)


def test_unit_weights_equal_no_weights():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 3, (2, 4, 5)), rng.uniform(0, 1, (2, 4, 5, 3)).astype(np.float32)
    plain, weighted = gn.metrics.SparseCategoricalAccuracy(), gn.metrics.SparseCategoricalAccuracy()
    plain.update_state(y, p)
    weighted.update_state(y, p, sample_weight=np.ones((2, 4, 5), np.float32))
    assert plain.result() == pytest.approx(weighted.result(), abs=1e-7)
    assert plain.count == 2 and weighted.count == pytest.approx(2.0)   # samples, as Keras counts them


def test_bad_weight_shape_names_the_metric():
    metric = gn.metrics.CategoricalAccuracy(name="acc")
    with pytest.raises(ValueError, match=r"Metric 'acc': sample_weight of shape \(3,\) does not broadcast"):
        metric.update_state(np.eye(4)[:2], np.eye(4)[:2], sample_weight=np.ones(3))
    with pytest.raises(ValueError, match=r"Metric 'precision': sample_weight of shape \(7,\) does not fit"):
        gn.metrics.Precision().update_state(np.ones((4, 2)), np.ones((4, 2)), sample_weight=np.ones(7))


def _weighted_inputs(rng, dtype=np.float32):
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, (3, 7))]
    p = rng.uniform(0, 1, (3, 7, 5)).astype(dtype)
    return y, p, rng.uniform(0, 2, (3, 7)).astype(np.float32)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_weighted_row_sums_kernel(kernel_backend, rng, dtype):
    y, p, w = _weighted_inputs(rng, precision.dtype_of(dtype))
    labels = np.argmax(y, -1).astype(np.int32)

    def run():
        be = gn.backend.current()
        yb, pb, wb = be.asarray(y), be.asarray(p, dtype=p.dtype), be.asarray(w)
        return [ops.weighted_row_sums(yb, pb, wb, 1, ops.ROW_ARGMAX_EQUAL),
                ops.weighted_row_sums(be.asarray(labels, np.int32), pb, wb[::7].copy(), 7, ops.ROW_TOP_K, 2,
                                      sparse=True),
                ops.weighted_row_sums(yb, pb, wb, 1, ops.ROW_SQUARED_ERROR),
                ops.weighted_row_sums(yb.reshape(-1, 1), pb.reshape(-1, 1), wb, 5, ops.ROW_BINARY_EQUAL, 0.5)]
    kernels = ["weighted_row_sums", "weighted_sums_finish", "weighted_label_sums", "weighted_sums_finish"]
    compare_with_numpy(kernel_backend, run, kernels + ["weighted_row_sums", "weighted_sums_finish"] * 2)


def test_weighted_confusion_and_histogram_kernels(kernel_backend, rng):
    y, p, w = _weighted_inputs(rng)
    thresholds = np.array([0.2, 0.5, 0.8], np.float32)

    def run():
        be = gn.backend.current()
        yb, pb, wb = be.asarray(y), be.asarray(p), be.asarray(w)
        cm = ops.confusion_update(launch.zeros((5, 5)), yb, pb, 5, 1, ops.CLASS_ARGMAX, ops.CLASS_ARGMAX,
                                  weights=wb, per=1)
        hist = ops.threshold_histogram(launch.zeros((2, 4)), yb, pb, be.asarray(thresholds), weights=wb, per=5)
        state = ops.fbeta_update(launch.zeros((4, 5)), yb.reshape(21, 5), pb.reshape(21, 5), 0.4, wb.reshape(-1))
        return cm, hist, state
    compare_with_numpy(kernel_backend, run, ["confusion_update_weighted", "threshold_histogram_weighted",
                                             "fbeta_update"])


def test_weighted_update_reads_nothing_in_a_step(kernel_backend):
    """Issue 12: a weighted update inside a step leaves its sums on the device."""
    with gn.backend.use(kernel_backend) as be:
        rng = np.random.default_rng(1)
        y, p, w = _weighted_inputs(rng)
        yb, pb, wb = be.asarray(y), be.asarray(p), be.asarray(w)
        metrics = [gn.metrics.CategoricalAccuracy(), gn.metrics.OneHotMeanIoU(5), gn.metrics.AUC(num_thresholds=5)]
        with backend.strict_sync(), backend.step("train"):
            for metric in metrics:
                metric.update_state(yb, pb, sample_weight=wb)
        assert 0.0 < metrics[0].result() < 1.0


def test_function_metric_weighs_as_its_builtin_twin():
    """A fn(y_true, y_pred) metric (Keras's MeanMetricWrapper) reduces weights as the built-in one."""
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=(4, 3, 2)).astype(np.float32), rng.normal(size=(4, 3, 2)).astype(np.float32)
    w = rng.uniform(0, 2, (4, 3)).astype(np.float32)

    def my_mae(a, b):
        return gn.ops.mean(gn.ops.abs(b - a), axis=-1)
    for weight in (w, w[:, :1], None):
        mine, builtin = gn.metrics.get(my_mae), gn.metrics.MeanAbsoluteError()
        for metric in (mine, builtin):
            metric.update_state(y, p, sample_weight=weight)
            metric.update_state(y[:2], p[:2])
        assert mine.result() == pytest.approx(builtin.result(), rel=1e-6)
