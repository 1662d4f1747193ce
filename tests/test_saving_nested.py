"""Weights of layers that hold layers in Keras 3's layout (gpunet/saving/nested.py): files Keras
3.15 wrote load here with Keras's predictions (tests/keras_fixtures/make_held_layer_fixtures.py),
gpunet writes the same groups, and files of the earlier flat layout still load."""
import pathlib

import h5py
import numpy as np
import pytest

import gpunet as gn
from gpunet import ops

FIXTURES = pathlib.Path(__file__).parent / "keras_fixtures"


class Gate(gn.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = gn.layers.Dense(3, activation="tanh")
        self.convs = [gn.layers.Dense(2), gn.layers.Dense(2)]

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(2,), initializer="random_normal", name="scale")

    def call(self, x):
        return self.convs[1](self.convs[0](self.dense(x))) * self.scale


class Sub(gn.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.g = Gate()
        self.head = gn.layers.Dense(1)

    def call(self, x):
        return self.head(self.g(x))


def _functional():
    inputs = gn.Input((4,))
    return gn.Model(inputs, gn.layers.Dense(1)(Gate()(inputs)))


def _subclassed():
    model = Sub()
    model.build((None, 4))
    return model


def _groups(path):
    found = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: found.append(name) if name.endswith("vars") else None)
    return sorted(found)


@pytest.mark.parametrize("make, file, key", [(_functional, "nested_layer.weights.h5", "functional"),
                                             (_subclassed, "subclassed.weights.h5", "subclassed")])
def test_keras_files_of_held_layers_load_with_keras_predictions(make, file, key):
    io = np.load(FIXTURES / "held_layers.io.npz")
    model = make()
    model.load_weights(FIXTURES / file)
    np.testing.assert_allclose(model.predict(io["x"], verbose=0), io[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make, file", [(_functional, "nested_layer.weights.h5"), (_subclassed, "subclassed.weights.h5")])
def test_gpunet_writes_the_groups_keras_writes(tmp_path, make, file):
    model = make()
    model.save_weights(tmp_path / "m.weights.h5")
    assert [g for g in _groups(tmp_path / "m.weights.h5") if not g.startswith("optimizer")] == _groups(FIXTURES / file)


def test_round_trip_and_the_earlier_flat_layout(tmp_path):
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    model = _functional()
    expected = model.predict(x, verbose=0)
    with h5py.File(tmp_path / "flat.weights.h5", "w") as f:    # gpunet 0.2: the gate's group held all 7
        f.create_group("vars")
        for key, layer in (("input_layer", model.layers[0]), ("gate", model.layers[1]), ("dense", model.layers[2])):
            group = f.create_group(f"layers/{key}/vars")
            for i, w in enumerate(layer.get_weights()):
                group.create_dataset(str(i), data=w)
    for file in ("flat.weights.h5", "new.weights.h5"):
        if file == "new.weights.h5":
            model.save_weights(tmp_path / file)
        again = _functional()
        again.load_weights(tmp_path / file)
        np.testing.assert_allclose(again.predict(x, verbose=0), expected, rtol=1e-6)


def test_a_missing_sublayer_group_is_a_clear_error(tmp_path):
    model = _subclassed()
    model.save_weights(tmp_path / "m.weights.h5")
    with h5py.File(tmp_path / "m.weights.h5", "a") as f:
        del f["g/convs/dense_1"]
    with pytest.raises(ValueError, match="g/convs/dense_1/vars"):
        _subclassed().load_weights(tmp_path / "m.weights.h5")
