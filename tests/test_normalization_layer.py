"""Normalization (Keras 3's preprocessing layer): adapt against Keras 3.15's statistics, a Keras
.keras file with an adapted layer, given statistics, invert, axis=None, errors."""
import os

import numpy as np
import pytest

import gpunet as gn
from checks import assert_close

HERE = os.path.join(os.path.dirname(__file__), "keras_fixtures")
KERAS = np.load(os.path.join(HERE, "normalization.io.npz"))


def test_adapt_matches_keras_and_batches_combine_exactly():
    x = KERAS["x"]
    whole, batched = gn.layers.Normalization(), gn.layers.Normalization()
    whole.adapt(x)
    batched.adapt([x[:10], x[10:17], x[17:]])   # pooled means and variances of three batches
    for layer in (whole, batched):
        mean, variance, count = layer.get_weights()
        # Keras sums in float32, gpunet in float64: a few float32 ulps apart
        assert_close(mean, KERAS["mean"].reshape(-1), rtol=1e-6, atol=1e-6)
        assert_close(variance, KERAS["variance"].reshape(-1), rtol=1e-5, atol=1e-6)
        assert count.shape == () and count == KERAS["count"]
    assert_close(np.asarray(gn.ops.convert_to_numpy(whole(x))), KERAS["normalized"], rtol=1e-5, atol=1e-5)
    everything = gn.layers.Normalization(axis=None)
    everything.adapt(x)
    assert_close(everything.get_weights()[0], KERAS["mean_all"].reshape(()), rtol=1e-6, atol=1e-6)
    assert_close(everything.get_weights()[1], KERAS["variance_all"].reshape(()), rtol=1e-5, atol=1e-6)


def test_keras_file_with_adapted_layer_loads_and_predicts_as_keras():
    model = gn.models.load_model(os.path.join(HERE, "normalization.keras"))
    assert type(model.layers[0]).__name__ == "Normalization"
    assert_close(model.predict(KERAS["x"], verbose=0), KERAS["y"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("invert", [False, True])
def test_given_statistics_and_invert(invert):
    x = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)
    mean, variance = np.arange(4, dtype=np.float32), np.array([1, 4, 9, 0], np.float32)
    layer = gn.layers.Normalization(mean=mean, variance=variance, invert=invert)
    y = np.asarray(gn.ops.convert_to_numpy(layer(x)))
    std = np.maximum(np.sqrt(variance), 1e-7)   # a zero variance divides by Keras's epsilon
    expected = mean + x * std if invert else (x - mean) / std
    assert_close(y, expected, rtol=1e-6, atol=1e-6)


def test_adapted_layer_trains_inside_a_model_and_keeps_its_statistics():
    x = np.random.default_rng(1).normal(5, 3, (16, 6)).astype(np.float32)
    norm = gn.layers.Normalization()
    norm.adapt(x)
    before = [w.copy() for w in norm.get_weights()]
    model = gn.Sequential([gn.Input((6,)), norm, gn.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, x[:, :1], epochs=2, batch_size=8, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, norm.get_weights()))
    assert not norm.trainable_weights


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="both mean and variance"):
        gn.layers.Normalization(mean=1.0)
    with pytest.raises(ValueError, match="replace them"):
        gn.layers.Normalization(mean=0.0, variance=1.0).adapt(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="differ after the batch axis"):
        gn.layers.Normalization().adapt([np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32)])
    with pytest.raises(ValueError, match="no batches"):
        gn.layers.Normalization().adapt([])
