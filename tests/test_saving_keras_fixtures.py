"""gpunet reads the weight files real Keras 3.15 wrote, and writes files with Keras's exact layout.

The fixtures in tests/keras_fixtures were made by Keras itself (see make_keras_fixtures.py and
LAYOUT.md): each model's outputs on fixed inputs are in <name>.io.npz, so loading a file into
the same architecture built with gpunet must reproduce Keras's numbers.
"""
import json
import os

import h5py
import numpy as np
import pytest

import gpunet as gn
from gpunet import saving
from gpunet.layers import (Add, BatchNormalization, Concatenate, Conv2D, Conv2DTranspose, Dense, ELU,
                           Flatten, GlobalAveragePooling2D, LeakyReLU, MaxPooling2D, Softmax, UpSampling2D,
                           ZeroPadding2D)

from checks import assert_close

FIXTURES = os.path.join(os.path.dirname(__file__), "keras_fixtures")


# -- the four fixture architectures, as make_keras_fixtures.py builds them in Keras -----------
def cnn_model():
    return gn.Sequential([
        gn.Input((8, 8, 1)),
        Conv2D(4, 3, padding="same", activation="relu"),
        BatchNormalization(),
        MaxPooling2D(2),
        Conv2D(6, 3, strides=2, padding="valid"),
        Flatten(),
        Dense(5),
        Softmax(),
    ])


def convt_model():
    return gn.Sequential([
        gn.Input((5, 5, 3)),
        Conv2DTranspose(4, 3, strides=2, padding="same"),
        ELU(),
        Conv2DTranspose(2, 3, strides=2, padding="valid", output_padding=1),
        Conv2D(2, 3, dilation_rate=2, padding="same"),
        LeakyReLU(),
        Conv2D(3, 1),
        Dense(2),
    ])


def skip_model():
    inputs = gn.Input((6, 6, 2))
    a = Conv2D(4, 3, padding="same")(inputs)
    b = Conv2D(4, 3, padding="same")(a)
    merged = Concatenate()([a, Add()([a, b])])
    h = Conv2D(2, 3)(ZeroPadding2D(1)(UpSampling2D()(merged)))
    outputs = Dense(3, name="head")(GlobalAveragePooling2D()(h))
    return gn.Model(inputs, outputs, name="functional")


def nested_model():
    inner = gn.Sequential([Conv2D(3, 3, padding="same"), BatchNormalization()])
    inputs = gn.Input((4, 4, 1))
    outputs = Dense(2)(Flatten()(inner(inputs)))
    return gn.Model(inputs, outputs, name="functional_1")


BUILDERS = {"cnn": cnn_model, "convt": convt_model, "skip": skip_model, "nested": nested_model}
FILES = ["weights.h5", "legacy_weights.h5", "legacy.h5"]


def fixture(name, suffix):
    return os.path.join(FIXTURES, f"{name}.{suffix}")


def keras_io(name):
    with np.load(fixture(name, "io.npz")) as data:
        weights = [data[k] for k in sorted(k for k in data.files if k.startswith("w"))]
        return data["x"], data["y"], weights


def train_cnn_like_keras(model):
    """Compile and take 4 Adam steps, as the Keras fixture did, so the optimizer has 18 variables."""
    model.compile(optimizer=gn.optimizers.Adam(0.01), loss="categorical_crossentropy")
    rng = np.random.default_rng(100)
    x = rng.standard_normal((32, 8, 8, 1)).astype("float32")
    y = np.eye(5, dtype="float32")[rng.integers(0, 5, 32)]
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)


# -- reading Keras's files ----------------------------------------------------------------
@pytest.mark.parametrize("suffix", FILES)
@pytest.mark.parametrize("name", list(BUILDERS))
def test_keras_file_reproduces_keras_outputs(name, suffix):
    x, y, keras_weights = keras_io(name)
    model = BUILDERS[name]()
    saving.load_weights(model, fixture(name, suffix))
    loaded = model.get_weights()
    assert len(loaded) == len(keras_weights)
    for k, (got, want) in enumerate(zip(loaded, keras_weights)):
        np.testing.assert_array_equal(got, want, err_msg=f"weight {k} of {name} from {suffix}")
    assert_close(model.predict(x, verbose=0), y, rtol=1e-5, atol=1e-5, what=f"{name} predictions from {suffix}")


def test_fixture_layer_records_match_gpunet_models():
    """The architectures above are the ones Keras saved: same classes, names and weight shapes."""
    for name, build in BUILDERS.items():
        with open(fixture(name, "layers.json")) as f:
            records = json.load(f)
        gn.layers.clear_session()
        model = build()
        assert [r["class"] for r in records] == [type(layer).__name__ for layer in model.layers], name
        assert [r["name"] for r in records] == [layer.name for layer in model.layers], name
        for record, layer in zip(records, model.layers):
            assert [tuple(shape) for _, shape in record["weights"]] == [tuple(w.shape) for w in layer.weights]


def test_keras_optimizer_state_loads_into_compiled_model():
    """cnn.weights.h5 holds Adam after 4 steps: iteration, learning rate and 16 slots, interleaved."""
    model = cnn_model()
    model.compile(optimizer=gn.optimizers.Adam(0.01), loss="categorical_crossentropy")
    saving.load_weights(model, fixture("cnn", "weights.h5"))
    state = model.optimizer.get_state()
    with h5py.File(fixture("cnn", "weights.h5"), "r") as f:
        saved = [f[f"optimizer/vars/{i}"][()] for i in range(len(f["optimizer/vars"]))]
    assert int(state["iterations"]) == 4 == int(saved[0])
    assert float(state["learning_rate"]) == 0.01     # float32 0.01 in the file: the exact rate is kept
    for i in range(6):   # conv2d kernel, bias, BN gamma, beta, conv2d_1 kernel, bias, dense kernel, bias
        np.testing.assert_array_equal(state[f"momentum_{i}"], saved[2 + 2 * i])
        np.testing.assert_array_equal(state[f"velocity_{i}"], saved[3 + 2 * i])
    assert np.abs(state["velocity_7"]).max() > 0


@pytest.mark.parametrize("name", list(BUILDERS))
def test_keras_written_full_model_h5_loads_with_its_architecture(name):
    """A legacy .h5 written by Keras holds Keras's config: read as the .keras format reads it."""
    x, y, _ = keras_io(name)
    model = saving.load_model(fixture(name, "legacy.h5"))
    assert_close(model.predict(x, verbose=0), y, rtol=1e-5, atol=1e-5)
    if name == "cnn":   # compiled and trained in Keras: the optimizer comes back with its state
        assert isinstance(model.optimizer, gn.optimizers.Adam) and model.optimizer.iterations == 4


def _keras2_style_copy(source, target, with_colon, as_bytes):
    """The legacy weights file rewritten as Keras 2 wrote it: ':0' names, bytes attributes,
    no top_level_model_weights, and the datasets under <layer>/<weight name>."""
    def names(values):
        return np.array([v.encode() for v in values], dtype="S") if as_bytes else values
    with h5py.File(source, "r") as src, h5py.File(target, "w") as dst:
        layer_names = [str(n) for n in src.attrs["layer_names"]]
        dst.attrs["layer_names"] = names(layer_names)
        dst.attrs["keras_version"] = b"2.4.0" if as_bytes else "2.4.0"
        for layer in layer_names:
            weight_names = [str(n) for n in src[layer].attrs["weight_names"]]
            renamed = [f"{layer}/{n.rsplit('/', 1)[1]}{':0' if with_colon else ''}" for n in weight_names]
            group = dst.create_group(layer)
            group.attrs["weight_names"] = names(renamed) if renamed else np.zeros((0,))
            for old, new in zip(weight_names, renamed):
                group.create_dataset(new, data=src[layer][old][()])


@pytest.mark.parametrize("with_colon, as_bytes", [(True, True), (False, True), (True, False)])
def test_keras2_style_weights_file(tmp_path, with_colon, as_bytes):
    target = str(tmp_path / "keras2.h5")
    _keras2_style_copy(fixture("skip", "legacy_weights.h5"), target, with_colon, as_bytes)
    x, y, _ = keras_io("skip")
    model = skip_model()
    saving.load_weights(model, target)
    assert_close(model.predict(x, verbose=0), y, rtol=1e-5, atol=1e-5, what="skip from a Keras 2 style file")


# -- writing Keras's layout -------------------------------------------------------------------
def h5_tree(path):
    """{path: description} of every group, dataset and attribute, attribute strings decoded."""
    def attrs(obj):
        out = {}
        for key, value in obj.attrs.items():
            if isinstance(value, np.ndarray):
                value = [str(v) for v in value] if value.dtype == object else (value.dtype.name, value.tolist())
            out[key] = value
        return out
    with h5py.File(path, "r") as f:
        tree = {"/": ("group", attrs(f))}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                tree[name] = ("dataset", obj.shape, obj.dtype.str, obj.chunks, obj.compression, attrs(obj))
            else:
                tree[name] = ("group", attrs(obj))
        f.visititems(visit)
    return tree


def attrs_without_backend(attrs):
    return {k: v for k, v in attrs.items() if k != "backend"}


def differences(ours, keras, where):
    """Entries that differ, the writer's backend name aside (Keras writes 'jax', gpunet 'gpunet')."""
    found = []
    for key in sorted(set(ours) | set(keras)):
        a, b = ours.get(key), keras.get(key)
        if a is not None and b is not None and a[0] == b[0] == "group":
            a, b = (a[0], attrs_without_backend(a[1])), (b[0], attrs_without_backend(b[1]))
        if a != b:
            found.append(f"{where}: {key}: gpunet {a} vs keras {b}")
    return found


@pytest.mark.parametrize("suffix", ["weights.h5", "legacy_weights.h5"])
@pytest.mark.parametrize("name", list(BUILDERS))
def test_written_file_has_keras_layout(tmp_path, name, suffix):
    """Same groups, datasets (names, order, shapes, dtypes, no chunking) and attributes as Keras's file."""
    model = BUILDERS[name]()
    if name == "cnn":
        train_cnn_like_keras(model)   # the Keras file has optimizer/vars
    path = str(tmp_path / ("m.weights.h5" if suffix == "weights.h5" else "m.h5"))
    saving.save_weights(model, path)
    assert differences(h5_tree(path), h5_tree(fixture(name, suffix)), name) == []


def test_full_model_file_has_keras_weight_and_optimizer_groups(tmp_path):
    model = cnn_model()
    train_cnn_like_keras(model)
    path = str(tmp_path / "cnn.h5")
    saving.save_model(model, path)
    ours, keras = h5_tree(path), h5_tree(fixture("cnn", "legacy.h5"))
    keep = ("model_weights", "optimizer_weights")
    ours = {k: v for k, v in ours.items() if k.startswith(keep)}
    keras = {k: v for k, v in keras.items() if k.startswith(keep)}
    assert differences(ours, keras, "cnn.h5") == []


@pytest.mark.parametrize("suffix", ["weights.h5", "h5"])
@pytest.mark.parametrize("name", list(BUILDERS))
def test_gpunet_round_trip_of_keras_weights(tmp_path, name, suffix):
    """Keras's weights loaded, written by gpunet, loaded into a fresh model: Keras's outputs again."""
    x, y, _ = keras_io(name)
    model = BUILDERS[name]()
    saving.load_weights(model, fixture(name, "weights.h5"))
    path = str(tmp_path / f"m.{suffix}")
    saving.save_weights(model, path)
    gn.layers.clear_session()
    fresh = BUILDERS[name]()
    saving.load_weights(fresh, path)
    assert_close(fresh.predict(x, verbose=0), y, rtol=1e-5, atol=1e-5, what=f"{name} via gpunet's .{suffix}")


def test_nested_model_legacy_order_is_trainable_first(tmp_path):
    """A sub-model [BN, Conv2D] is one legacy layer: gamma, beta, kernel, bias, then the moving stats."""
    inner = gn.Sequential([BatchNormalization(), Conv2D(2, 1)], name="inner")
    inputs = gn.Input((3, 3, 2))
    model = gn.Model(inputs, inner(inputs))
    rng = np.random.default_rng(1)
    model.set_weights([rng.uniform(0.5, 2, w.shape).astype("float32") for w in model.get_weights()])
    saving.save_weights(model, tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        names = [str(n).rsplit("/", 1)[1] for n in f["inner"].attrs["weight_names"]]
    assert names == ["gamma", "beta", "kernel", "bias", "moving_mean", "moving_variance"]
    fresh_inputs = gn.Input((3, 3, 2))
    fresh = gn.Model(fresh_inputs, gn.Sequential([BatchNormalization(), Conv2D(2, 1)])(fresh_inputs))
    saving.load_weights(fresh, tmp_path / "m.h5")
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_frozen_layer_round_trips_in_both_layouts(tmp_path):
    model = cnn_model()
    model.layers[0].trainable = False
    model.set_weights([w + 0.5 for w in model.get_weights()])
    for name in ("m.weights.h5", "m.h5"):
        saving.save_weights(model, tmp_path / name)
        fresh = cnn_model()
        fresh.layers[0].trainable = False
        saving.load_weights(fresh, tmp_path / name)
        for a, b in zip(model.get_weights(), fresh.get_weights()):
            np.testing.assert_array_equal(a, b)
