"""Keras 3's loss functions (gn.losses.mean_squared_error ...) against Keras 3.15's values, on the
tape, and in compile (where a known function gets its fused class)."""
import os

import numpy as np
import pytest

import gpunet as gn
from checks import assert_close

KERAS = np.load(os.path.join(os.path.dirname(__file__), "keras_fixtures", "loss_functions.npz"))
L = gn.losses

CASES = {
    "mean_squared_error": lambda k: L.mean_squared_error(k["target"], k["real"]),
    "mean_absolute_error": lambda k: L.mean_absolute_error(k["target"], k["real"]),
    "mean_absolute_percentage_error": lambda k: L.mean_absolute_percentage_error(k["target"], k["real"]),
    "mean_squared_logarithmic_error": lambda k: L.mean_squared_logarithmic_error(k["positive"], k["real"]),
    "kl_divergence": lambda k: L.kl_divergence(k["onehot"], k["probs"]),
    "poisson": lambda k: L.poisson(k["positive"], k["unit"]),
    "huber": lambda k: L.huber(k["target"], k["real"], delta=1.5),
    "log_cosh": lambda k: L.log_cosh(k["target"], k["real"]),
    "hinge": lambda k: L.hinge(k["binary"], k["real"]),
    "squared_hinge": lambda k: L.squared_hinge(k["binary"], k["real"]),
    "binary_crossentropy": lambda k: L.binary_crossentropy(k["binary"], k["unit"]),
    "binary_crossentropy_logits_smooth": lambda k: L.binary_crossentropy(k["binary"], k["real"], from_logits=True,
                                                                         label_smoothing=0.1),
    "categorical_crossentropy": lambda k: L.categorical_crossentropy(k["onehot"], k["probs"]),
    "categorical_crossentropy_logits_smooth": lambda k: L.categorical_crossentropy(
        k["onehot"], k["logits"], from_logits=True, label_smoothing=0.2),
    "sparse_categorical_crossentropy": lambda k: L.sparse_categorical_crossentropy(k["labels"], k["probs"]),
    "sparse_categorical_crossentropy_logits_ignore": lambda k: L.sparse_categorical_crossentropy(
        k["labels"], k["logits"], from_logits=True, ignore_class=2),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_function_matches_keras(name):
    got = gn.ops.convert_to_numpy(CASES[name](KERAS))
    assert_close(got, KERAS[f"out_{name}"], rtol=2e-5, atol=2e-6)


def test_loss_function_on_the_tape_gives_the_loss_class_gradient():
    """mean(binary_crossentropy(y, p)) differentiated on the tape equals BinaryCrossentropy's
    fused gradient (the formulas are Keras's both ways)."""
    y, p = KERAS["binary"].reshape(12, 5), KERAS["unit"].reshape(12, 5)
    tp = gn.ops.convert_to_tensor(p)
    with gn.GradientTape() as tape:
        tape.watch(tp)
        value = gn.ops.mean(L.binary_crossentropy(y, tp))
    grad = gn.ops.convert_to_numpy(tape.gradient(value, tp))
    be = gn.backend.current()
    expected, dy = L.BinaryCrossentropy().device_compute(be.asarray(y), be.asarray(p))
    assert float(gn.ops.convert_to_numpy(value)) == pytest.approx(float(be.to_numpy(expected)), rel=1e-6)
    assert_close(grad, be.to_numpy(dy), rtol=1e-5, atol=1e-8)


def test_compile_with_a_known_function_gets_the_fused_class():
    model = gn.Sequential([gn.Input((3,)), gn.layers.Dense(2)])
    model.compile(optimizer="sgd", loss=L.mean_squared_error)
    assert type(model.compiled_loss) is L.MeanSquaredError
    custom = lambda y_true, y_pred: L.mean_squared_error(y_true, y_pred) * 2.0   # noqa: E731
    model.compile(optimizer="sgd", loss=custom)
    assert type(model.compiled_loss).__name__ == "LossFunctionWrapper"
