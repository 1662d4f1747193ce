"""The .keras format: gpunet reads the zips Keras 3.15 wrote (tests/keras_fixtures/*.keras, made by
make_keras_zip_fixtures.py) and writes zips with Keras's structure, config and weights layout."""
import io
import json
import os
import zipfile

import h5py
import numpy as np
import pytest

import gpunet as gn
from gpunet.saving import FileFormatError

from checks import assert_close
from test_saving_keras_fixtures import BUILDERS, fixture, keras_io

NAMES = list(BUILDERS)


def read_zip(path):
    with zipfile.ZipFile(path) as archive:
        return (json.loads(archive.read("config.json")), json.loads(archive.read("metadata.json")),
                archive.read("model.weights.h5"), archive.namelist())


def write_zip(path, config, metadata, weights):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights)


def h5_layout(data):
    """``{dataset path: shape}`` of an HDF5 file held in bytes."""
    found = {}
    with h5py.File(io.BytesIO(data), "r") as f:
        f.visititems(lambda name, item: found.__setitem__(name, item.shape)
                     if isinstance(item, h5py.Dataset) else None)
    return found


# -- reading what Keras wrote ---------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_keras_written_zip_loads_and_predicts_as_keras(name):
    x, y, weights = keras_io(name)
    model = gn.models.load_model(fixture(name, "keras"))
    assert type(model).__name__ == {"cnn": "Sequential", "convt": "Sequential"}.get(name, "Model")
    assert_close(model.predict(x, verbose=0), y, rtol=1e-5, atol=1e-5)
    for got, want in zip(model.get_weights(), weights, strict=True):
        # The cnn was trained again by the zip script: JAX's CPU sums differ in the last bit.
        assert_close(got, want, rtol=1e-5, atol=1e-6)
    with open(fixture(name, "layers.json")) as f:
        records = json.load(f)
    assert [layer.name for layer in model.layers] == [r["name"] for r in records]


def test_keras_written_compiled_zip_restores_optimizer_and_compile_settings():
    model = gn.saving.load_model(fixture("cnn", "keras"))
    assert isinstance(model.optimizer, gn.optimizers.Adam)
    state = model.optimizer.get_state()
    assert state["iterations"] == 4   # make_keras_fixtures fit 4 steps
    assert state["learning_rate"] == pytest.approx(0.01)
    assert model.loss == "categorical_crossentropy"
    assert not np.allclose(state["momentum_0"], 0)
    uncompiled = gn.saving.load_model(fixture("cnn", "keras"), compile=False)
    assert uncompiled.optimizer is None


def test_lambda_layer_is_refused_naming_it_and_the_file():
    with pytest.raises(FileFormatError, match=r"lambda\.keras.*Lambda layer \('lambda'\)"):
        gn.models.load_model(fixture("lambda", "keras"))


def _edited(tmp_path, name, edit):
    config, metadata, weights, _ = read_zip(fixture(name, "keras"))
    edit(config)
    path = str(tmp_path / f"edited_{name}.keras")
    write_zip(path, config, metadata, weights)
    return path


def test_unknown_layer_class_is_refused_before_anything_is_built(tmp_path):
    def rename(config):
        config["config"]["layers"][-1]["class_name"] = "FancyNewLayer"
    path = _edited(tmp_path, "skip", rename)
    gn.layers.clear_session()
    with pytest.raises(FileFormatError, match=r"edited_skip\.keras.*'FancyNewLayer' \('head'\)"):
        gn.models.load_model(path)
    # Nothing was made: no layer took an automatic name.
    assert gn.layers.Dense(1).name == "dense"


def test_keras_setting_gpunet_lacks_is_refused_naming_the_layer(tmp_path):
    def channels_first(config):
        config["config"]["layers"][1]["config"]["data_format"] = "channels_first"
    path = _edited(tmp_path, "skip", channels_first)
    with pytest.raises(FileFormatError, match=r"layer 'conv2d' \(Conv2D\).*data_format='channels_first'"):
        gn.models.load_model(path)


def test_a_zip_without_a_model_is_a_clear_error(tmp_path):
    path = str(tmp_path / "notes.keras")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(FileFormatError, match=r"lacks \['config.json', 'model.weights.h5'\]"):
        gn.models.load_model(path)


# -- writing what Keras reads ---------------------------------------------------------------
def _canonical(entry, positions):
    """A layer entry reduced to what both writers must agree on."""
    config = entry["config"]
    if entry["class_name"] in ("Sequential", "Functional"):
        inner = {e.get("name", e["config"].get("name")): i for i, e in enumerate(config["layers"])}
        body = [_canonical(e, inner) for e in config["layers"]]
    else:
        body = {}
        for key, value in config.items():
            if key == "name":
                continue
            if isinstance(value, dict):   # dtype policy, initializer: the class and its name
                value = (value["class_name"], value["config"].get("name"))
            body[key] = value
    inbound = [[positions[t["config"]["keras_history"][0]] for t in (a if isinstance(a, list) else [a])]
               for node in entry.get("inbound_nodes", []) for a in node["args"]]
    return entry["module"], entry["class_name"], body, inbound


@pytest.mark.parametrize("name", NAMES)
def test_gpunet_written_zip_has_keras_structure_config_and_weights_layout(tmp_path, name):
    gn.layers.clear_session()
    model = BUILDERS[name]()
    keras_config, _, keras_weights, keras_files = read_zip(fixture(name, "keras"))
    if name == "cnn":   # Keras's fixture is compiled and trained: so is the twin
        model.compile(optimizer=gn.optimizers.Adam(0.01), loss="categorical_crossentropy")
        x, _, _ = keras_io(name)
        model.train_on_batch(x, np.eye(5, dtype="float32")[[0, 1]])
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    config, metadata, weights, files = read_zip(path)
    assert sorted(files) == sorted(keras_files)
    assert metadata["keras_version"] == "3.15.1" and "date_saved" in metadata
    assert sorted(config) == sorted(keras_config)
    assert config["class_name"] == keras_config["class_name"]
    assert config["module"] == keras_config["module"]
    ours, theirs = config["config"]["layers"], keras_config["config"]["layers"]
    assert len(ours) == len(theirs)
    positions = {e.get("name", e["config"].get("name")): i for i, e in enumerate(ours)}
    keras_positions = {e.get("name", e["config"].get("name")): i for i, e in enumerate(theirs)}
    for mine, keras_entry in zip(ours, theirs):
        module, class_name, body, inbound = _canonical(mine, positions)
        k_module, k_class, k_body, k_inbound = _canonical(keras_entry, keras_positions)
        assert (module, class_name, inbound) == (k_module, k_class, k_inbound)
        if isinstance(body, dict):   # every setting gpunet writes, Keras wrote with the same value
            assert {k: k_body.get(k, "<missing>") for k in body} == body, class_name
    if keras_config["compile_config"]:
        assert config["compile_config"]["optimizer"]["class_name"] == "Adam"
        assert config["compile_config"]["loss"] == keras_config["compile_config"]["loss"]
    assert h5_layout(weights) == h5_layout(keras_weights)


def test_gpunet_zip_round_trip_resumes_training_exactly(tmp_path):
    gn.utils.set_random_seed(3)
    model = BUILDERS["cnn"]()
    model.compile(optimizer=gn.optimizers.Adam(0.01), loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 8, 8, 1)).astype("float32")
    y = np.eye(5, dtype="float32")[rng.integers(0, 5, 16)]
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    continued = model.fit(x, y, batch_size=8, epochs=1, verbose=0).history["loss"]
    loaded = gn.models.load_model(path)
    resumed = loaded.fit(x, y, batch_size=8, epochs=1, verbose=0).history["loss"]
    assert resumed == continued
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_explicit_padding_has_no_keras_form():
    model = gn.Sequential([gn.Input((5, 5, 1)), gn.layers.Conv2D(2, 3, padding=((1, 0), (0, 1)))])
    with pytest.raises(ValueError, match=r"Conv2D.*\.keras format.*padding="):
        model.save("unused.keras")
    assert not os.path.exists("unused.keras")


def test_model_checkpoint_writes_keras_zip(tmp_path):
    model = BUILDERS["skip"]()
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((4, 6, 6, 2), "float32")
    y = np.zeros((4, 3), "float32")
    path = str(tmp_path / "ckpt-{epoch}.keras")
    model.fit(x, y, epochs=2, verbose=0, callbacks=[gn.callbacks.ModelCheckpoint(path, monitor="loss")])
    loaded = gn.models.load_model(str(tmp_path / "ckpt-2.keras"))
    assert_close(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=0)


def test_keras_written_zip_with_the_other_layers_regularizers_and_constraints():
    """misc.keras: Activation, ReLU(max_value, threshold), AveragePooling2D, Dropout, Reshape, and
    Keras's regularizer / constraint configs, written by Keras 3.15 (make_keras_zip_fixtures.py)."""
    with np.load(fixture("misc", "io.npz")) as data:
        x, y = data["x"], data["y"]
    model = gn.models.load_model(fixture("misc", "keras"))
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D", "Activation", "ReLU", "AveragePooling2D", "Dropout", "Reshape", "Flatten", "Dense"]
    assert_close(model.predict(x, verbose=0), y, rtol=1e-5, atol=1e-6)
    conv, dense = model.layers[0], model.layers[-1]
    assert conv.kernel_constraint.get_config() == {"max_value": 1.5, "axis": [0, 1, 2]}
    assert conv.kernel_regularizer.get_config() == {"l2": pytest.approx(0.01)}
    assert dense.bias_regularizer.get_config() == {"l1": pytest.approx(0.01), "l2": pytest.approx(0.02)}
