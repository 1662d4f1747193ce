"""Keras's layer.input / layer.output and model.input / model.output: models built from the
tensors of another model's graph share its layers (feature extraction, intermediate outputs)."""
import numpy as np
import pytest

import gpunet as gn
from gpunet import layers


def _sequential():
    gn.utils.set_random_seed(0)
    return gn.Sequential([gn.Input((8, 8, 1)), layers.Conv2D(4, 3, name="conv", activation="relu"),
                          layers.Flatten(), layers.Dense(3, name="head")])


def test_feature_extractor_over_every_layer_shares_weights():
    model = _sequential()
    assert model.input.shape == (None, 8, 8, 1) and model.output.shape == (None, 3)
    extractor = gn.Model(inputs=model.inputs, outputs=[layer.output for layer in model.layers])
    x = np.random.default_rng(1).random((3, 8, 8, 1)).astype(np.float32)
    features = extractor.predict(x, verbose=0)
    assert [f.shape for f in features] == [(3, 6, 6, 4), (3, 144), (3, 3)]
    assert np.array_equal(features[-1], model.predict(x, verbose=0))
    # one set of weights: training the model moves what the extractor computes
    model.compile(optimizer=gn.optimizers.SGD(0.1), loss="mse")
    model.fit(x, np.ones((3, 3), np.float32), epochs=1, verbose=0)
    assert np.array_equal(extractor.predict(x, verbose=0)[-1], model.predict(x, verbose=0))


def test_functional_intermediate_output_and_input_of_a_layer():
    inputs = gn.Input((8, 8, 1))
    hidden = layers.Conv2D(2, 3, name="conv")(inputs)
    outputs = layers.Dense(2)(layers.GlobalAveragePooling2D()(hidden))
    model = gn.Model(inputs, outputs)
    conv = model.get_layer("conv")
    assert conv.input is inputs and conv.output is hidden and model.layers[0].output is inputs
    both = gn.Model(model.input, [conv.output, model.output])
    a, b = both.predict(np.zeros((2, 8, 8, 1), np.float32), verbose=0)
    assert a.shape == (2, 6, 6, 2) and b.shape == (2, 2)


def test_output_of_a_layer_never_called_symbolically_is_a_clear_error():
    with pytest.raises(AttributeError, match="never been called"):
        layers.Dense(2).output
