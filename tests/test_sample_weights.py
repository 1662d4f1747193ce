"""sample_weight and class_weight: the weighted losses against Keras 3's values (fixtures made by
tests/keras_fixtures/make_sample_weight_fixtures.py), their gradients against finite differences,
the weighted-loss kernels against numpy, and fit / evaluate with weights against Keras."""
import json
import os

import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, compare_with_numpy, numeric_gradients
from gpunet import layers, losses
from gpunet.primitives import weighted_loss as wl

HERE = os.path.join(os.path.dirname(__file__), "keras_fixtures")
F = np.load(os.path.join(HERE, "sample_weights.npz"))
J = json.load(open(os.path.join(HERE, "sample_weights.json")))

# name -> (loss, y_true, y_pred, weights)
CASES = {
    "scce_pix": (losses.SparseCategoricalCrossentropy(), F["lab"], F["yp"], F["wpix"]),
    "cce_pix": (losses.CategoricalCrossentropy(), np.eye(5, dtype=np.float32)[F["lab"]], F["yp"], F["wpix"]),
    "cce_logits_pix": (losses.CategoricalCrossentropy(from_logits=True), np.eye(5, dtype=np.float32)[F["lab"]],
                       F["logits"], F["wpix"]),
    "scce_logits_pix": (losses.SparseCategoricalCrossentropy(from_logits=True), F["lab"], F["logits"], F["wpix"]),
    "bce_pix": (losses.BinaryCrossentropy(), F["yb"], F["pb"], F["wpix"]),
    "bce_logits_pix": (losses.BinaryCrossentropy(from_logits=True), F["yb"], F["xb"], F["wpix"]),
    "mse_pix": (losses.MeanSquaredError(), F["yb"], F["pb"], F["wpix"]),
    "mae_pix": (losses.MeanAbsoluteError(), F["yb"], F["pb"], F["wpix"]),
    "mse_sample": (losses.MeanSquaredError(), F["yb"][:, 0, 0], F["pb"][:, 0, 0], F["ws"]),
    "scce_sample": (losses.SparseCategoricalCrossentropy(), F["lab"][:, 0, 0], F["yp"][:, 0, 0], F["ws"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_weighted_losses_equal_keras(name):
    loss, y_true, y_pred, w = CASES[name]
    value, grad = loss.compute(y_true, gn.backend.current().asarray(y_pred), sample_weight=w)
    assert value == pytest.approx(float(F[name]), rel=2e-5, abs=1e-6), name
    assert loss(y_true, gn.backend.current().asarray(y_pred), sample_weight=w) == pytest.approx(value, rel=1e-6)
    assert grad.shape == y_pred.shape


@pytest.mark.reference
@pytest.mark.parametrize("name", ["scce_pix", "cce_pix", "cce_logits_pix", "bce_pix", "bce_logits_pix",
                                  "mse_sample", "mae_pix"])
def test_weighted_gradients_match_finite_differences(name):
    loss, y_true, y_pred, w = CASES[name]
    y_pred = y_pred.astype(np.float64)
    if name == "mae_pix":   # keep |p - y| away from its kink
        y_pred = np.where(np.abs(y_pred - y_true) < 1e-3, y_pred + 0.01, y_pred)
    _, grad = loss.compute(y_true, y_pred, sample_weight=w)
    numeric, = numeric_gradients(lambda p: loss(y_true, p, sample_weight=w), [y_pred.copy()], 1.0)
    assert_close(grad, numeric, rtol=1e-5, atol=1e-8, what=name)


def test_fused_softmax_with_weights_equals_the_unfused_loss():
    logits, labels, w = F["logits"][:, 0, 0], F["lab"][:, 0, 0], F["ws"]
    loss = losses.SparseCategoricalCrossentropy()
    value, dlogits, probs = loss.compute_from_logits(labels, logits, sample_weight=w)
    expected = losses.SparseCategoricalCrossentropy(from_logits=True).compute(labels, logits, sample_weight=w)
    assert value == pytest.approx(expected[0], rel=1e-6)
    assert_close(dlogits, expected[1], rtol=1e-5, atol=1e-7)


def test_sample_weight_of_a_wrong_shape_is_refused():
    loss = losses.MeanSquaredError()
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(4,\) .* or \(4, 3, 3\).*received shape \(3,\)"):
        loss(F["yb"], F["pb"], sample_weight=np.ones(3))


# -- the kernels ------------------------------------------------------------------------------------
W_SHAPES = [(1, 3), (5, 10), (2, 67), (2, 3, 3, 5), (19, 6)]


@pytest.mark.parametrize("shape", W_SHAPES)
def test_weighted_cross_entropy_kernels(kernel_backend, rng, shape):
    logits = rng.standard_normal(shape).astype(np.float32) * 3
    probs = rng.uniform(0.01, 1.0, shape).astype(np.float32)
    labels = rng.integers(0, shape[-1], shape[:-1])
    onehot = np.eye(shape[-1], dtype=np.float32)[labels]
    w = rng.uniform(0, 2, shape[:-1]).astype(np.float32)
    for sparse, targets in ((False, onehot), (True, labels)):
        prefix = "weighted_" + ("sparse_" if sparse else "")
        compare_with_numpy(kernel_backend, lambda: wl.softmax_cross_entropy_forward(targets, w, logits, sparse),
                           [prefix + "softmax_cross_entropy_forward", "weighted_sum_finish"])
        compare_with_numpy(kernel_backend, lambda: [wl.categorical_crossentropy_forward(targets, w, probs, sparse)],
                           [prefix + "categorical_crossentropy_forward", "weighted_sum_finish"])
    compare_with_numpy(kernel_backend, lambda: wl.scale_rows(logits, w), ["scale_rows"])


@pytest.mark.parametrize("kind", ["binary_crossentropy", "binary_crossentropy_from_logits", "squared_error",
                                  "absolute_error"])
def test_weighted_elementwise_kernels(kernel_backend, rng, kind):
    shape = (3, 7, 5, 2)
    y = (rng.random(shape) > 0.5).astype(np.float32)
    p = rng.uniform(0.0, 1.0, shape).astype(np.float32)
    p.flat[0], p.flat[1] = 0.0, 1.0   # clipped ends
    w = rng.uniform(0, 2, shape[:-1]).astype(np.float32)
    compare_with_numpy(kernel_backend, lambda: [wl.elementwise_forward(kind, y, w, p)],
                       [f"weighted_{kind}_sum_partials", "weighted_sum_finish"])


def test_a_bad_sparse_label_makes_the_weighted_loss_nan(kernel_backend, rng):
    from checks import run_on_backend
    labels, w = np.array([0, 7, 1]), np.ones(3, np.float32)
    logits = rng.standard_normal((3, 4)).astype(np.float32)
    for name in ("numpy", kernel_backend):
        (value, _), _ = run_on_backend(name, lambda: wl.softmax_cross_entropy_forward(labels, w, logits, True))
        assert np.isnan(value), name


# -- fit and evaluate -----------------------------------------------------------------------------------
def _keras_model(optimizer):
    model = gn.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
    model.set_weights([F["k"], np.zeros(3, np.float32)])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_fit_with_class_weight_equals_keras():
    model = _keras_model(gn.optimizers.SGD(0.5))
    history = model.fit(F["x"], F["y"], batch_size=6, epochs=1, class_weight={0: 2.0, 2: 0.5}, shuffle=False,
                        verbose=0)
    assert history.history["loss"][0] == pytest.approx(J["fit_class_weight_loss"], rel=1e-5)
    kernel, bias = model.get_weights()
    assert_close(kernel, F["kernel_after_class_weight"], rtol=1e-5, atol=1e-6)
    assert_close(bias, F["bias_after_class_weight"], rtol=1e-5, atol=1e-6)


def test_evaluate_with_sample_weight_equals_keras():
    model = _keras_model("sgd")
    logs = model.evaluate(F["x"], F["y"], sample_weight=F["sw"], batch_size=4, verbose=0, return_dict=True)
    expected = J["evaluate_sample_weight"]
    assert logs["loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert logs["accuracy"] == pytest.approx(expected["accuracy"])   # `metrics` are unweighted, as in Keras


def test_zero_weights_leave_the_model_untouched_and_per_pixel_weights_train():
    model = gn.Sequential([layers.Input((4, 4, 1)), layers.Conv2D(2, 1, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).standard_normal((3, 4, 4, 1)).astype(np.float32)
    y = (x[..., 0] > 0).astype(np.int64)
    before = model.get_weights()
    model.fit(x, y, sample_weight=np.zeros((3, 4, 4)), epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), before):
        assert_close(a, b, rtol=0, atol=0)
    pixel = np.zeros((3, 4, 4), np.float32)
    pixel[:, :2] = 1.0   # only the top half counts
    trained = model.fit(x, y, sample_weight=pixel, epochs=3, verbose=0)
    assert trained.history["loss"][-1] < trained.history["loss"][0]


def test_class_weight_per_pixel_for_segmentation_labels():
    from gpunet.data import class_weight_to_sample_weight
    labels = np.array([[[0, 1], [2, 1]]])
    assert_close(class_weight_to_sample_weight(labels, {1: 3.0, 2: 0.5}, output_rank=4), [[[1.0, 3.0], [0.5, 3.0]]])
    onehot = np.eye(3)[labels]
    assert_close(class_weight_to_sample_weight(onehot, {1: 3.0}), [[[1.0, 3.0], [1.0, 3.0]]])
