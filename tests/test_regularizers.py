"""Regularizers and constraints: two SGD steps of models using them equal Keras 3.15's
(tests/keras_fixtures/regularizers.npz, from make_regularizer_fixtures.py), model.losses,
gradients against central differences, the config round trip (.keras included), and the
kernels of regularize.cu against NumPy on cudasim."""
import os

import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, compare_with_numpy, numeric_gradients
from gpunet import layers, regularizers
from gpunet.primitives import launch
from gpunet.primitives import regularize as ops
from keras_fixtures import regularizer_models

FIXTURE = os.path.join(os.path.dirname(__file__), "keras_fixtures", "regularizers.npz")
with np.load(FIXTURE) as _data:
    KERAS = {key: _data[key] for key in _data.files}


def conv_model():
    return regularizer_models.conv_model(gn)


def dense_model():
    return regularizer_models.dense_model(gn)


@pytest.mark.parametrize("index, build", [(0, conv_model), (1, dense_model)])
def test_two_sgd_steps_match_keras(index, build):
    model = build()
    model.set_weights([KERAS[f"{index}_w{k}"] for k in range(len(model.get_weights()))])
    model.compile(optimizer=gn.optimizers.SGD(0.1), loss="mse")
    for s in range(2):
        loss = model.train_on_batch(KERAS["x"], KERAS["y_dense"])
        assert loss == pytest.approx(float(KERAS[f"{index}_loss{s}"]), rel=1e-5)
    for k, w in enumerate(model.get_weights()):
        assert_close(w, KERAS[f"{index}_after{k}"], rtol=1e-4, atol=1e-6, what=f"weight {k}")
    model.predict(KERAS["x"], verbose=0)   # model(x) in Keras: the activity penalty of this call
    assert sum(float(v) for v in model.losses) == pytest.approx(float(KERAS[f"{index}_losses"]), rel=1e-5)


@pytest.mark.parametrize("index, build", [(0, conv_model), (1, dense_model)])
def test_two_sgd_steps_on_kernels_match_keras(kernel_backend, index, build):
    with gn.backend.use(kernel_backend):
        model = build()
        model.set_weights([KERAS[f"{index}_w{k}"] for k in range(len(model.get_weights()))])
        model.compile(optimizer=gn.optimizers.SGD(0.1), loss="mse")
        for s in range(2):
            model.train_on_batch(KERAS["x"], KERAS["y_dense"])
        weights = model.get_weights()
    for k, w in enumerate(weights):
        assert_close(w, KERAS[f"{index}_after{k}"], rtol=1e-4, atol=2e-6, what=f"weight {k}")


@pytest.mark.reference
def test_regularized_gradients_match_central_differences():
    rng = np.random.default_rng(0)
    dense = layers.Dense(3, kernel_regularizer=regularizers.L1L2(0.03, 0.05), bias_regularizer="l2",
                         activity_regularizer=regularizers.L1L2(0.02, 0.04), activation="tanh", dtype="float64")
    model = gn.Sequential([gn.Input((4,), dtype="float64"), dense])
    x = rng.normal(0, 1, (5, 4))
    model.set_weights([rng.normal(0, 1, (4, 3)), rng.normal(0, 1, (3,))])

    def objective(kernel, bias):
        model.set_weights([kernel, bias])
        y = model.forward(x, training=True)
        return np.sum(y * y) / 2 + sum(float(v) for v in model.losses)
    kernel, bias = (w.copy() for w in model.get_weights())
    numeric = numeric_gradients(objective, [kernel, bias], np.float64(1.0))
    model.set_weights([kernel, bias])
    y = model.forward(x, training=True)
    model.backward(y)
    for analytic, expected in zip(dense.grads, numeric):
        assert_close(analytic, expected, rtol=1e-5, atol=1e-7)


def test_configs_round_trip_in_keras_form(tmp_path):
    model = conv_model()
    config = model.layers[-1].get_config()
    assert config["kernel_regularizer"] == {"class_name": "L1L2", "config": {"l1": 0.01, "l2": 0.02}}
    assert config["bias_constraint"] == {"class_name": "NonNeg", "config": {}}
    model.save(str(tmp_path / "m.keras"))
    loaded = gn.models.load_model(str(tmp_path / "m.keras"))
    again = loaded.layers[0].get_config()
    assert again["kernel_constraint"] == {"class_name": "MaxNorm", "config": {"max_value": 0.4, "axis": [0, 1, 2]}}
    assert type(loaded.layers[-1].activity_regularizer) is regularizers.L1
    assert regularizers.get("l1_l2").get_config() == {"l1": 0.0, "l2": 0.0}   # Keras 3's L1L2 defaults


@pytest.mark.parametrize("make, message", [
    (lambda: layers.Dense(2, kernel_regularizer="l3"), r"Dense '.*' kernel_regularizer: Unknown regularizer 'l3'"),
    (lambda: regularizers.L2(-1.0), r"L2 l2 must be a float >= 0; received -1.0"),
    (lambda: layers.Conv2D(2, 3, bias_constraint="positive"), r"bias_constraint: Unknown constraint 'positive'")])
def test_bad_arguments_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_penalty_kernels_match_numpy(kernel_backend, rng):
    w = rng.normal(0, 1, (70, 41)).astype("float32")
    g = rng.normal(0, 1, (70, 41)).astype("float32")
    compare_with_numpy(kernel_backend, lambda: ops.penalty(gn.backend.current().asarray(w), 0.01, 0.03, 6),
                       ["penalty_sum_partials", "sum_partials_finish"])
    compare_with_numpy(kernel_backend, lambda: ops.add_penalty_gradient(
        gn.backend.current().asarray(w), gn.backend.current().asarray(g.copy()), 0.01, 0.03, 0.5),
        ["penalty_add_gradient"])


@pytest.mark.parametrize("kind, axis, settings", [
    ("max_norm", 0, {"max_value": 0.8}), ("max_norm", [0, 1, 2], {"max_value": 1.5}),
    ("min_max_norm", 1, {"min_value": 0.5, "max_value": 0.9, "rate": 0.6}), ("unit_norm", [1, 3], {}),
    ("non_neg", 0, {})])
def test_constraint_kernel_matches_numpy(kernel_backend, rng, kind, axis, settings):
    w = rng.normal(0, 1, (3, 3, 4, 5)).astype("float32")
    compare_with_numpy(kernel_backend, lambda: ops.constrain(gn.backend.current().asarray(w.copy()), kind, axis,
                                                               **settings), ["norm_constraint"])
