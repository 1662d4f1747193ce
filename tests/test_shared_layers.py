"""Shared layers: a layer called more than once in a functional graph keeps one set of weights and
gets the sum of its calls' gradients (checked against float64 finite differences), survives a
config round trip and weight files, and a seeded Dropout shared by two calls still resumes."""
import pathlib

import numpy as np
import pytest

import gpunet as gn
from gpunet import layers

from checks import assert_close, numeric_gradients


def _model_grads(model, xs, dy):
    model.forward(xs, training=True)
    model.backward(dy)
    return [np.array(g) for g in model.grads]


@pytest.mark.reference
def test_a_layer_applied_to_its_own_output_has_exact_gradients():
    inputs = gn.Input((3,), dtype="float64")
    dense = layers.Dense(3, activation="tanh", dtype="float64")
    conv_out = layers.Dense(2, dtype="float64")(dense(dense(inputs)))   # the same Dense twice in a chain
    model = gn.Model(inputs, conv_out)
    assert len(model.layers) == 3 and len(model.weights) == 4
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    analytic = _model_grads(model, x, dy)
    numeric = numeric_gradients(lambda *weights: model.forward(x), model.trainable_weights, dy)
    for k, (a, n) in enumerate(zip(analytic, numeric)):
        assert_close(a, n, rtol=1e-6, atol=1e-9, what=f"gradient {k}")
    dx = model.backward(dy)
    numeric_x, = numeric_gradients(lambda v: model.forward(v), [x.copy()], dy)
    assert_close(dx, numeric_x, rtol=1e-6, atol=1e-9, what="dx")


@pytest.mark.reference
def test_a_siamese_conv_sums_its_two_calls_gradients():
    left, right = gn.Input((5, 5, 2), dtype="float64"), gn.Input((5, 5, 2), dtype="float64")
    conv = layers.Conv2D(3, 3, padding="same", activation="relu", dtype="float64")
    norm = layers.BatchNormalization(dtype="float64")
    merged = layers.Concatenate()([norm(conv(left)), norm(conv(right))])
    model = gn.Model([left, right], layers.Conv2D(1, 1, dtype="float64")(merged))
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((2, 5, 5, 2)), rng.standard_normal((2, 5, 5, 2))]
    dy = rng.standard_normal((2, 5, 5, 1))
    analytic = _model_grads(model, xs, dy)
    # Finite differences with training=True (batch statistics): BatchNorm's moving averages move,
    # which forward's output does not read in training.
    numeric = numeric_gradients(lambda *weights: model.forward(xs, training=True), model.trainable_weights, dy)
    for k, (a, n) in enumerate(zip(analytic, numeric)):
        assert_close(a, n, rtol=1e-5, atol=1e-8, what=f"gradient {k}")


def test_a_shared_encoder_trains_round_trips_and_saves(tmp_path):
    a, b = gn.Input((4,)), gn.Input((4,))
    encode = layers.Dense(3, activation="tanh", name="encode")
    out = layers.Dense(1, activation="sigmoid", name="head")(layers.Concatenate()([encode(a), encode(b)]))
    model = gn.Model([a, b], out)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    rng = np.random.default_rng(2)
    x1, x2 = rng.standard_normal((32, 4)).astype(np.float32), rng.standard_normal((32, 4)).astype(np.float32)
    y = (np.sum(x1 * x2, axis=1) > 0).astype(np.float32)
    history = model.fit([x1, x2], y, epochs=5, batch_size=8, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    clone = gn.Model.from_config(model.get_config())
    assert [l.name for l in clone.layers] == [l.name for l in model.layers]
    clone.set_weights(model.get_weights())
    assert_close(clone.predict([x1, x2], verbose=0), model.predict([x1, x2], verbose=0), rtol=0, atol=0)
    path = str(tmp_path / "shared.weights.h5")
    model.save_weights(path)
    clone = gn.Model.from_config(model.get_config())
    clone.load_weights(path)
    assert_close(clone.predict([x1, x2], verbose=0), model.predict([x1, x2], verbose=0), rtol=0, atol=0)


def test_a_shared_seeded_dropout_draws_one_mask_per_call():
    inputs = gn.Input((64,))
    drop = layers.Dropout(0.5, seed=3)
    model = gn.Model(inputs, layers.Add()([drop(inputs), drop(inputs)]))
    x = np.ones((2, 64), np.float32)
    y = np.asarray(model.forward(x, training=True))
    assert drop.random_state() == {"calls": 2}
    assert set(np.unique(y)) <= {0.0, 2.0, 4.0} and 0.0 in y and 2.0 in y   # two different masks
    dx = np.asarray(model.backward(np.ones_like(y)))
    assert_close(dx, y, rtol=0, atol=0)    # each call's gradient uses its own mask


def test_a_shared_layer_model_saves_to_h5_and_keras_format(tmp_path):
    inputs = gn.Input((3,))
    dense = layers.Dense(3, activation="tanh")
    model = gn.Model(inputs, dense(dense(inputs)))
    x = np.random.default_rng(3).standard_normal((2, 3)).astype(np.float32)
    for name in ("m.h5", "m.keras"):
        model.save(str(tmp_path / name))
        loaded = gn.models.load_model(str(tmp_path / name))
        assert len(loaded.weights) == 2 and len(loaded.layers) == 2
        assert_close(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=0)


def test_a_keras_file_with_a_shared_layer_loads_with_keras_predictions():
    """Keras 3.15 wrote it: Dense "shared" called on input a, on b and on its own second output."""
    fixtures = pathlib.Path(__file__).parent / "keras_fixtures"
    io = np.load(fixtures / "shared_layer.io.npz")
    model = gn.models.load_model(str(fixtures / "shared_layer.keras"))
    assert [layer.name for layer in model.layers].count("shared") == 1
    assert len(model.weights) == 4
    assert_close(model.predict([io["x"], io["z"]], verbose=0), io["y"], rtol=1e-5, atol=1e-6)
