"""Subtract, Multiply, Average, Maximum, Minimum and the functional forms (add, concatenate, ...):
kernels of kernels/elementwise.cu against the numpy reference on cudasim, the reference against
float64 central differences, and the layers against values real Keras computed."""
import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, check_backward, compare_with_numpy, run_on_backend
from gpunet import layers
from gpunet.primitives import merge
from keras_layers import check_against_keras


def _inputs(rng, count, shape=(2, 3, 5, 3)):
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(count)]


@pytest.mark.parametrize("count", [2, 3])
def test_multiply_kernels(kernel_backend, rng, count):
    xs = _inputs(rng, count)
    dy = _inputs(rng, 1)[0]
    rest = ["multiply_forward_accumulate"] * (count - 2)
    compare_with_numpy(kernel_backend, lambda: merge.multiply_forward(xs), ["multiply_forward", *rest])
    compare_with_numpy(kernel_backend, lambda: merge.multiply_backward(dy, xs),
                       ["multiply_forward", *rest] * count)


def test_subtract_and_average_kernels(kernel_backend, rng):
    a, b, c, dy = _inputs(rng, 4, (3, 37))
    compare_with_numpy(kernel_backend, lambda: merge.subtract_forward(a, b), ["subtract_forward"])
    compare_with_numpy(kernel_backend, lambda: merge.subtract_backward(dy)[1], ["scale_copy"])
    compare_with_numpy(kernel_backend, lambda: merge.average_forward([a, b, c]),
                       ["add_forward", "add_forward_accumulate", "scale_copy"])
    compare_with_numpy(kernel_backend, lambda: merge.average_backward(dy, 3), ["scale_copy"] * 3)


@pytest.mark.parametrize("kind", ["maximum", "minimum"])
@pytest.mark.parametrize("count", [2, 3])
def test_extreme_kernels(kernel_backend, rng, kind, count):
    xs = _inputs(rng, count)
    xs[1].flat[:3] = xs[0].flat[:3]            # ties go to the first input
    xs[1].flat[3] = np.nan                     # a NaN wins
    dy = _inputs(rng, 1)[0]
    rest = [f"{kind}_forward_accumulate"] * (count - 2)
    (y, winner), _ = run_on_backend("numpy", lambda: merge.extreme_forward(xs, kind))
    (y_k, winner_k), launched = run_on_backend(kernel_backend, lambda: merge.extreme_forward(xs, kind))
    assert launched == [f"{kind}_forward", *rest]
    np.testing.assert_array_equal(y_k, y)          # NaN where numpy has NaN
    np.testing.assert_array_equal(winner_k, winner)
    assert np.isnan(y.flat[3]) and winner.flat[3] == 1 and not (winner.flat[:3] == 1).any()
    compare_with_numpy(kernel_backend, lambda: merge.extreme_backward(dy, winner, count),
                       ["select_backward"] * count)


@pytest.mark.reference
@pytest.mark.parametrize("op", ["subtract", "multiply", "average", "maximum", "minimum"])
def test_merge_gradients_match_finite_differences(rng, op):
    xs = [rng.standard_normal((2, 4)) for _ in range(2 if op == "subtract" else 3)]
    forward = {"subtract": lambda *v: merge.subtract_forward(*v),
               "multiply": lambda *v: merge.multiply_forward(list(v)),
               "average": lambda *v: merge.average_forward(list(v)),
               "maximum": lambda *v: merge.extreme_forward(list(v), "maximum")[0],
               "minimum": lambda *v: merge.extreme_forward(list(v), "minimum")[0]}[op]
    backward = {"subtract": lambda dy: merge.subtract_backward(dy),
                "multiply": lambda dy: merge.multiply_backward(dy, xs),
                "average": lambda dy: merge.average_backward(dy, 3),
                "maximum": lambda dy: merge.extreme_backward(dy, merge.extreme_forward(xs, "maximum")[1], 3),
                "minimum": lambda dy: merge.extreme_backward(dy, merge.extreme_forward(xs, "minimum")[1], 3)}[op]
    check_backward(forward, backward, xs)


LAYERS = {"multiply": layers.Multiply, "subtract": layers.Subtract, "average": layers.Average,
          "maximum": layers.Maximum, "minimum": layers.Minimum}


@pytest.mark.parametrize("name", list(LAYERS))
def test_merge_layers_match_keras(name):
    check_against_keras(LAYERS[name](), name)


@pytest.mark.parametrize("name", ["multiply", "maximum"])
def test_merge_layers_match_keras_on_kernels(kernel_backend, name):
    check_against_keras(LAYERS[name](), name, kernel_backend)


def test_functional_forms_build_a_model_that_trains_and_reloads(tmp_path, rng):
    inputs = gn.Input((4,))
    a = layers.Dense(3)(inputs)
    b = layers.Dense(3)(inputs)
    merged = [layers.add([a, b]), layers.subtract([a, b]), layers.multiply([a, b]), layers.average([a, b]),
              layers.maximum([a, b]), layers.minimum([a, b], name="lowest")]
    outputs = layers.Dense(1)(layers.concatenate(merged, axis=-1))
    model = gn.Model(inputs, outputs)
    assert model.get_layer("lowest").name == "lowest" and outputs.shape == (None, 1)
    x, y = _inputs(rng, 1, (16, 4))[0], _inputs(rng, 1, (16, 1))[0]
    model.compile(optimizer="adam", loss="mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=10, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before
    model.save(str(tmp_path / "m.h5"))
    assert_close(gn.models.load_model(str(tmp_path / "m.h5")).predict(x, verbose=0), model.predict(x, verbose=0))


def test_bad_merge_inputs_are_refused_with_keras_reasons():
    with pytest.raises(ValueError, match=r"A `Subtract` layer should be called on exactly 2 inputs"):
        layers.subtract([gn.Input((3,))] * 3)
    with pytest.raises(ValueError, match=r"Multiply 'multiply' expects inputs of one shape; received shapes"):
        layers.Multiply(name="multiply")([gn.Input((3,)), gn.Input((4,))])
