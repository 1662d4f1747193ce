"""Keras 3's activations beyond the first six (gelu, silu/swish, softplus, softsign, hard_sigmoid,
hard_silu/hard_swish, mish, relu6, selu, exponential): the templated kernels of
kernels/activation.cu against the numpy reference on cudasim, the reference against float64
central differences, and both against values real Keras computed (tests/keras_fixtures/layers)."""
import functools

import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, check_backward, compare_with_numpy, run_on_backend
from gpunet.primitives import activation as ops
from keras_layers import check_against_keras

UNARY = list(ops.UNARY)


@pytest.mark.parametrize("shape", [(1,), (2, 3, 5, 3), (3, 37)])
@pytest.mark.parametrize("name", UNARY)
def test_templated_activation_kernels_match_numpy(kernel_backend, rng, name, shape):
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    x.flat[0] = 0.0
    compare_with_numpy(kernel_backend, lambda: ops.unary_forward(name, x), [f"{name}_forward"])
    dy = rng.standard_normal(shape).astype(np.float32)
    compare_with_numpy(kernel_backend, lambda: ops.unary_backward(name, dy, x), [f"{name}_backward"])


@pytest.mark.parametrize("name", UNARY)
def test_templated_activations_keep_nan_and_stay_finite(kernel_backend, name):
    x = np.array([np.nan, -1e4, -100.0, -2.5, 0.0, 0.7, 40.0], np.float32)
    (expected,), _ = run_on_backend("numpy", lambda: ops.unary_forward(name, x))
    (actual,), _ = run_on_backend(kernel_backend, lambda: ops.unary_forward(name, x))
    assert np.isnan(expected[0]) and np.isnan(actual[0]), f"{name} maps NaN to {expected[0]}, {actual[0]}"
    assert np.all(np.isfinite(actual[1:])), (name, actual)
    assert_close(actual[1:], expected[1:], what=name)
    finite, dy = x[1:], np.ones(x.size - 1, np.float32)
    (grad,), _ = run_on_backend(kernel_backend, lambda: ops.unary_backward(name, dy, finite))
    assert np.all(np.isfinite(grad)), (name, grad)


@pytest.mark.reference
@pytest.mark.parametrize("name", UNARY)
def test_templated_activation_gradients_match_finite_differences(rng, name):
    x = rng.uniform(-5, 5, (4, 7))
    x[np.abs(np.abs(x) - 3) < 0.05] = 1.0     # away from the hard_* kinks at +-3
    check_backward(lambda v: ops.unary_forward(name, v), lambda dy: ops.unary_backward(name, dy, x), [x])


KERAS_NAMES = ["gelu", "silu", "swish", "softplus", "softsign", "hard_sigmoid", "hard_silu", "hard_swish",
               "mish", "relu6", "selu", "exponential"]


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_activation_layer_matches_keras(name):
    check_against_keras(gn.layers.Activation(name), f"act_{name}")


def test_approximate_gelu_matches_keras():
    gelu = functools.partial(gn.activations.gelu, approximate=True)
    check_against_keras(gn.layers.Activation(gelu), "act_gelu_approximate")


@pytest.mark.parametrize("name", ["gelu", "hard_silu", "mish"])
def test_activation_layer_matches_keras_on_kernels(kernel_backend, name):
    check_against_keras(gn.layers.Activation(name), f"act_{name}", kernel_backend)


def test_dense_with_gelu_loads_keras_weights_file_and_matches_keras():
    check_against_keras(gn.layers.Dense(3, activation="gelu"), "dense_gelu", from_file=True)


def test_names_serialize_as_keras_does():
    assert gn.layers.Dense(2, activation="swish").get_config()["activation"] == "silu"
    assert gn.layers.Activation("hard_swish").get_config()["activation"] == "hard_silu"
    assert gn.layers.Conv2D(2, 3, activation=gn.activations.mish).get_config()["activation"] == "mish"
    approximate = functools.partial(gn.activations.gelu, approximate=True)
    layer = gn.layers.Dense(2, activation=approximate)
    assert layer.get_config()["activation"] == "gelu_approximate"
    again = gn.layers.Dense.from_config(layer.get_config())
    assert again._activation.op == "gelu_approximate"


def test_activation_functions_compute_forward(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    assert_close(gn.activations.relu6(x * 10), np.clip(x * 10, 0, 6))
    assert_close(gn.activations.hard_sigmoid(x), np.clip(x / 6 + 0.5, 0, 1))
    assert gn.activations.get("swish") is gn.activations.silu


def test_unknown_activation_names_the_choices():
    with pytest.raises(ValueError, match=r"Unknown activation 'gelux'.*'gelu'.*'mish'"):
        gn.layers.Dense(2, activation="gelux")
    with pytest.raises(ValueError, match="Unknown activation function"):
        gn.layers.Dense(2, activation=np.sin)


def test_model_with_new_activations_trains_and_round_trips(tmp_path, rng):
    model = gn.Sequential([gn.Input((6,)), gn.layers.Dense(8, activation="mish"),
                           gn.layers.Dense(8, activation="selu"), gn.layers.Activation("hard_swish"),
                           gn.layers.Dense(2, activation="softplus")])
    model.compile(optimizer="adam", loss="mse")
    x, y = rng.standard_normal((32, 6)).astype(np.float32), rng.random((32, 2)).astype(np.float32)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before
    model.save(str(tmp_path / "m.h5"))
    again = gn.models.load_model(str(tmp_path / "m.h5"))
    assert_close(again.predict(x, verbose=0), model.predict(x, verbose=0))
