"""The confusion-matrix and score metrics: results equal to Keras 3.15's on the same two batches
(tests/keras_fixtures/metrics.npz, from make_metric_fixtures.py), state kept on the backend, and
every kernel of kernels/metrics.cu equal to the NumPy reference on cudasim (counts exactly)."""
import json
import os

import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, compare_with_numpy
from gpunet.primitives import launch
from gpunet.primitives import metrics as ops

FIXTURE = os.path.join(os.path.dirname(__file__), "keras_fixtures", "metrics.npz")
with np.load(FIXTURE) as _data:
    KERAS = {key: _data[key] for key in _data.files}
CASES = json.loads(str(KERAS["cases"]))
IDS = [f"{i}-{name}" for i, (name, _, _) in enumerate(CASES)]


def _run(index, backend_name):
    name, kwargs, _ = CASES[index]
    with gn.backend.use(backend_name):
        metric = getattr(gn.metrics, name)(**kwargs)
        for b in range(2):
            metric.update_state(KERAS[f"{index}_y{b}"], KERAS[f"{index}_p{b}"])
        return metric, np.asarray(metric.result(), dtype=np.float64)


@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_result_matches_keras(index):
    metric, result = _run(index, "numpy")
    assert_close(result, KERAS[f"{index}_result"], rtol=1e-5, atol=1e-6, what=CASES[index][0])
    again = gn.metrics.get({"class_name": CASES[index][0], "config": metric.get_config()})
    assert again.get_config() == metric.get_config()
    metric.reset_state()
    assert np.all(np.asarray(metric.result()) == 0)


@pytest.mark.parametrize("index", [0, 1, 3, 5, 9, 10, 12, 15, 17, 19, 21], ids=lambda i: IDS[i])
def test_result_on_kernels_matches_keras(kernel_backend, index):
    _, result = _run(index, kernel_backend)
    assert_close(result, KERAS[f"{index}_result"], rtol=1e-5, atol=1e-6, what=CASES[index][0])


def test_state_stays_on_the_backend(kernel_backend):
    with gn.backend.use(kernel_backend) as be:
        iou, auc = gn.metrics.MeanIoU(3), gn.metrics.AUC()
        iou.update_state(np.array([0, 1, 2]), np.array([0, 1, 1]))
        auc.update_state(np.array([0, 1, 1]), np.array([0.2, 0.9, 0.4]))
        assert type(iou.total_cm) is type(be.zeros((1,), np.float32)) and iou.total_cm.dtype == np.uint64
        assert type(auc._hist) is type(be.zeros((1,), np.float32))


@pytest.mark.parametrize("name, kind", [("precision", "Precision"), ("recall", "Recall"), ("auc", "AUC"),
                                        ("f1_score", "F1Score"), ("root_mean_squared_error", "RootMeanSquaredError"),
                                        ("top_k_categorical_accuracy", "TopKCategoricalAccuracy")])
def test_metrics_by_keras_name(name, kind):
    assert type(gn.metrics.get(name)).__name__ == kind


@pytest.mark.parametrize("make, message", [
    (lambda: gn.metrics.MeanIoU(0), r"num_classes must be a positive int; received 0"),
    (lambda: gn.metrics.IoU(3, [0, 3]), r"target_class_ids must be class ids in \[0, 3\)"),
    (lambda: gn.metrics.AUC(curve="ROCK"), r"curve must be 'ROC' or 'PR'; received 'ROCK'"),
    (lambda: gn.metrics.Precision(top_k=2), r"top_k is not supported"),
    (lambda: gn.metrics.FBetaScore(average="mean"), r"average must be None, 'micro'"),
    (lambda: gn.metrics.TopKCategoricalAccuracy(k=0), r"k must be a positive int")])
def test_bad_arguments_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_fit_logs_mean_iou_and_auc():
    x = np.random.default_rng(0).standard_normal((16, 4, 4, 1)).astype("float32")
    y = (x > 0).astype("float32")
    model = gn.Sequential([gn.Input((4, 4, 1)), gn.layers.Conv2D(1, 1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=[gn.metrics.BinaryIoU(), "auc"])
    logs = model.fit(x, y, epochs=2, batch_size=8, verbose=0).history
    assert 0.0 <= logs["binary_io_u"][-1] <= 1.0 and 0.0 <= logs["auc"][-1] <= 1.0


# -- kernels against numpy ---------------------------------------------------------------------
def _state(shape, dtype):
    return lambda: launch.zeros(shape, dtype)


@pytest.mark.parametrize("mode_true, mode_pred, shape", [
    (ops.CLASS_VALUE, ops.CLASS_VALUE, (3, 7, 7)), (ops.CLASS_ARGMAX, ops.CLASS_ARGMAX, (300, 5)),
    (ops.CLASS_VALUE, ops.CLASS_THRESHOLD, (1, 40))])
def test_confusion_kernel_matches_numpy(kernel_backend, rng, mode_true, mode_pred, shape):
    classes = 2 if mode_pred == ops.CLASS_THRESHOLD else 5
    def values(mode):
        if mode == ops.CLASS_ARGMAX:
            return rng.uniform(0, 1, shape).astype("float32")
        if mode == ops.CLASS_THRESHOLD:
            return rng.uniform(0, 1, shape).astype("float32")
        v = rng.integers(-1, classes + 1, shape).astype("float32")   # out-of-range ids are left out
        return v
    y, p = values(mode_true), values(mode_pred)
    out = compare_with_numpy(kernel_backend, lambda: ops.confusion_update(
        launch.zeros((classes, classes), np.uint64), gn.backend.current().asarray(y),
        gn.backend.current().asarray(p), classes, 1, mode_true, mode_pred, 0.4).astype(np.float32),
        ["confusion_update"])
    assert out[0].sum() > 0


@pytest.mark.parametrize("class_id", [None, 2])
def test_threshold_histogram_kernel_matches_numpy(kernel_backend, rng, class_id):
    y = rng.integers(0, 2, (70, 3)).astype("float32")
    p = rng.uniform(0, 1, (70, 3)).astype("float32")
    p[0, :] = [0.25, 0.5, 0.0]   # exactly on thresholds
    thresholds = np.array([0.0, 0.25, 0.25, 0.5, 0.9], dtype="float32")

    def run():
        be = gn.backend.current()
        hist = ops.threshold_histogram(launch.zeros((2, 6), np.uint64), be.asarray(y), be.asarray(p),
                                       be.asarray(thresholds), class_id)
        return hist.astype(np.float32)
    compare_with_numpy(kernel_backend, run, ["threshold_histogram"])


@pytest.mark.parametrize("sparse", [False, True])
def test_top_k_kernel_matches_numpy(kernel_backend, rng, sparse):
    p = rng.uniform(0, 1, (300, 6)).astype("float32")
    p[0] = 0.5   # all tied: in the top k
    labels = rng.integers(0, 6, 300)
    y = labels.astype("float32") if sparse else np.eye(6, dtype="float32")[labels]

    def run():
        be = gn.backend.current()
        return ops.top_k_count(launch.zeros((1,), np.uint64), be.asarray(y), be.asarray(p), 3, sparse).astype(np.float32)
    compare_with_numpy(kernel_backend, run, ["top_k_count"])


@pytest.mark.parametrize("threshold", [None, 0.4])
def test_fbeta_kernel_matches_numpy(kernel_backend, rng, threshold):
    y = np.eye(5, dtype="float32")[rng.integers(0, 5, 600)]
    p = rng.uniform(0, 1, (600, 5)).astype("float32")

    def run():
        be = gn.backend.current()
        state = ops.fbeta_update(launch.zeros((4, 5), np.float32), be.asarray(y), be.asarray(p), threshold)
        return ops.fbeta_update(state, be.asarray(y), be.asarray(p), threshold)   # += across batches
    compare_with_numpy(kernel_backend, run, ["fbeta_update", "fbeta_update"])
