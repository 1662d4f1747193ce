"""gpunet.saving: whole models, atomic writes, all-or-nothing loads, damaged files, backends, checkpoints."""
import os

import h5py
import numpy as np
import pytest

import gpunet as gn
from gpunet import backend, saving
from gpunet.layers import (Activation, Add, AveragePooling2D, BatchNormalization, Concatenate, Conv2D,
                           Conv2DTranspose, Dense, Dropout, ELU, Flatten, GlobalAveragePooling2D, Layer,
                           LeakyReLU, MaxPooling2D, ReLU, Reshape, Sigmoid, Softmax, Tanh, UpSampling2D,
                           ZeroPadding2D)

from checks import assert_close


def small_cnn(dtype="float32"):
    return gn.Sequential([gn.Input((6, 6, 2), dtype=dtype), Conv2D(3, 3, dtype=dtype),
                          BatchNormalization(dtype=dtype), Flatten(dtype=dtype), Dense(4, dtype=dtype)])


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6, 6, 2)).astype("float32"), rng.integers(0, 4, n)


def every_layer_model():
    """A functional graph holding every built-in layer class and a nested Sequential."""
    inputs = gn.Input((8, 8, 3))
    a = Conv2D(4, 3, padding="same", activation="relu")(inputs)
    b = BatchNormalization()(Conv2DTranspose(4, 3, strides=1, padding="same")(a))
    h = Concatenate()([a, Add()([a, b])])
    h = MaxPooling2D(2)(ZeroPadding2D(1)(h))
    h = AveragePooling2D(2, padding="same")(UpSampling2D(2)(h))
    h = gn.Sequential([Conv2D(4, 1), LeakyReLU(0.2), ELU()])(h)
    h = Tanh()(Sigmoid()(ReLU()(h)))
    pooled = GlobalAveragePooling2D()(h)
    flat = Flatten()(Reshape((-1, 4))(h))
    h = Concatenate()([Dense(6, activation="tanh")(Dropout(0.25)(flat)), pooled])
    outputs = Softmax()(Activation("linear")(Dense(3)(h)))
    return gn.Model(inputs, outputs)


def files_in(folder):
    return sorted(os.listdir(folder))


# -- whole models ---------------------------------------------------------------------------
def test_model_with_every_layer_round_trips(tmp_path):
    model = every_layer_model()
    model.compile(optimizer=gn.optimizers.Adam(0.005), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 8, 8, 3)).astype("float32"), rng.integers(0, 3, 8)
    model.fit(x, y, batch_size=4, verbose=0)
    path = str(tmp_path / "every.h5")
    saving.save_model(model, path)
    loaded = saving.load_model(path)
    assert type(loaded) is gn.Model
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.loss == "sparse_categorical_crossentropy"
    assert loaded.metrics_names == ["loss", "accuracy"]
    assert gn.optimizers.serialize(loaded.optimizer) == gn.optimizers.serialize(model.optimizer)
    saved_state, loaded_state = model.optimizer.get_state(), loaded.optimizer.get_state()
    assert sorted(loaded_state) == sorted(saved_state) and int(loaded_state["iterations"]) == 2
    for key in saved_state:
        np.testing.assert_array_equal(loaded_state[key], saved_state[key], err_msg=key)
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)


@pytest.mark.parametrize("optimizer, loss", [
    (gn.optimizers.SGD(0.1, momentum=0.9, nesterov=True), gn.losses.SparseCategoricalCrossentropy(from_logits=True)),
    (gn.optimizers.RMSprop(0.01, momentum=0.5, centered=True), "mse"),
    (gn.optimizers.AdamW(learning_rate=gn.optimizers.ExponentialDecay(0.01, 10, 0.5), amsgrad=True), "mae"),
])
def test_compile_settings_and_optimizer_state_round_trip(tmp_path, optimizer, loss):
    model = small_cnn()
    model.compile(optimizer=optimizer, loss=loss)
    x, labels = data()
    y = labels if not isinstance(loss, str) else np.eye(4, dtype="float32")[labels]
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    saving.save_model(model, tmp_path / "m.h5")
    loaded = saving.load_model(tmp_path / "m.h5")
    assert type(loaded.optimizer) is type(optimizer)
    assert loaded.optimizer.get_config() == optimizer.get_config()
    assert type(loaded.compiled_loss) is type(model.compiled_loss)
    assert loaded.compiled_loss.get_config() == model.compiled_loss.get_config()
    state, restored = optimizer.get_state(), loaded.optimizer.get_state()
    assert sorted(state) == sorted(restored) and int(restored["iterations"]) == 4
    for key in state:
        np.testing.assert_array_equal(restored[key], state[key], err_msg=key)
    model.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    loaded.fit(x, y, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_uncompiled_model_and_compile_false(tmp_path):
    model = small_cnn()
    saving.save_model(model, tmp_path / "plain.h5")
    assert saving.load_model(tmp_path / "plain.h5").optimizer is None
    model.compile(optimizer="adam", loss="mse")
    saving.save_model(model, tmp_path / "compiled.h5")
    saved_rng = gn.utils.get_rng_state()
    gn.utils.set_random_seed(7)
    loaded = saving.load_model(tmp_path / "compiled.h5", compile=False)
    assert loaded.optimizer is None and not loaded.compiled
    assert gn.utils.get_rng_state() != saved_rng     # only a training resume restores the generator
    assert saving.load_model(tmp_path / "compiled.h5").compiled
    assert gn.utils.get_rng_state() == saved_rng


class Scale(Layer):
    """A user layer: multiplies by a learned per-channel factor."""

    def __init__(self, start=2.0, **kwargs):
        super().__init__(**kwargs)
        self.start = start

    def build(self, input_shape):
        self.factor = self.add_weight("factor", (input_shape[-1],), gn.initializers.Constant(self.start))

    def forward(self, x, training=False):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "start": self.start}


def test_custom_layer_needs_custom_objects(tmp_path):
    model = gn.Sequential([gn.Input((3,)), Dense(2), Scale(3.0)])
    model.layers[1].set_weights([np.array([1.5, -2.0], dtype="float32")])
    saving.save_model(model, tmp_path / "custom.h5")
    with pytest.raises(ValueError, match=r"Unknown layer class 'Scale'.*custom_objects"):
        saving.load_model(tmp_path / "custom.h5")
    loaded = saving.load_model(tmp_path / "custom.h5", custom_objects={"Scale": Scale})
    assert isinstance(loaded.layers[1], Scale) and loaded.layers[1].start == 3.0
    np.testing.assert_array_equal(loaded.layers[1].get_weights()[0], [1.5, -2.0])


def test_model_file_holds_json_only(tmp_path):
    model = small_cnn()
    model.compile(optimizer="sgd", loss="mse")
    saving.save_model(model, tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        kinds = set()
        f.visititems(lambda name, obj: kinds.add(obj.dtype.kind) if isinstance(obj, h5py.Dataset) else None)
        assert kinds <= {"f", "i"}   # numbers only; text lives in JSON attributes
        for key in ("model_config", "training_config", "gpunet_rng_state"):
            assert f.attrs[key].startswith("{")


def test_load_model_of_a_weights_file_says_so(tmp_path):
    model = small_cnn()
    saving.save_weights(model, tmp_path / "m.weights.h5")
    with pytest.raises(ValueError, match=r"no model architecture.*load_weights"):
        saving.load_model(tmp_path / "m.weights.h5")


def test_float64_model_keeps_float64(tmp_path):
    model = small_cnn("float64")
    saving.save_weights(model, tmp_path / "m.weights.h5")
    with h5py.File(tmp_path / "m.weights.h5", "r") as f:
        assert f["layers/conv2d/vars/0"].dtype == np.float64
    fresh = small_cnn("float64")
    saving.load_weights(fresh, tmp_path / "m.weights.h5")
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        assert b.dtype == np.float64
        np.testing.assert_array_equal(a, b)


# -- safety: atomic writes ----------------------------------------------------------------
class _WriteFailure(Exception):
    pass


def _fail_after(monkeypatch, calls, exception=_WriteFailure):
    """Make h5py's create_dataset raise on its ``calls``-th use: a crash in the middle of a save."""
    original = h5py.Group.create_dataset
    count = [0]

    def failing(self, *args, **kwargs):
        count[0] += 1
        if count[0] >= calls:
            raise exception("simulated crash mid-write")
        return original(self, *args, **kwargs)
    monkeypatch.setattr(h5py.Group, "create_dataset", failing)


@pytest.mark.parametrize("name, save", [
    ("m.weights.h5", saving.save_weights),
    ("m.h5", saving.save_weights),
    ("model.h5", saving.save_model),
])
@pytest.mark.parametrize("exception", [_WriteFailure, KeyboardInterrupt])
def test_crash_mid_write_leaves_old_file_intact(tmp_path, monkeypatch, name, save, exception):
    model = small_cnn()
    model.compile(optimizer="adam", loss="mse")
    path = str(tmp_path / name)
    save(model, path)
    with open(path, "rb") as f:
        original = f.read()
    model.set_weights([w + 1 for w in model.get_weights()])
    _fail_after(monkeypatch, 3, exception)
    with pytest.raises(exception):
        save(model, path)
    monkeypatch.undo()
    with open(path, "rb") as f:
        assert f.read() == original
    assert files_in(tmp_path) == [name]   # no temporary file left behind
    fresh = small_cnn()
    saving.load_weights(fresh, path)
    assert not np.array_equal(fresh.get_weights()[0], model.get_weights()[0])


def test_overwrite_false_refuses_existing_file(tmp_path):
    model = small_cnn()
    path = tmp_path / "m.weights.h5"
    saving.save_weights(model, path)
    with pytest.raises(FileExistsError, match="overwrite=False"):
        saving.save_weights(model, path, overwrite=False)


@pytest.mark.parametrize("path, match", [("m.txt", r"must end in '\.weights\.h5'"),
                                         ("missing/m.weights.h5", r"folder .* does not exist")])
def test_bad_save_paths(tmp_path, path, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        saving.save_weights(small_cnn(), str(tmp_path / path))


def test_unbuilt_model_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match=r"'sequential' is not built"):
        saving.save_weights(gn.Sequential([Dense(2)]), tmp_path / "m.weights.h5")


# -- safety: all-or-nothing loads -------------------------------------------------------------
def _saved(tmp_path, model, name):
    path = str(tmp_path / name)
    saving.save_weights(model, path)
    return path


@pytest.mark.parametrize("name", ["m.weights.h5", "m.h5"])
def test_shape_mismatch_names_layer_and_shapes_and_loads_nothing(tmp_path, name):
    path = _saved(tmp_path, small_cnn(), name)
    other = gn.Sequential([gn.Input((6, 6, 2)), Conv2D(3, 3), BatchNormalization(), Flatten(), Dense(5)])
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"Layer 'dense_1'.*'kernel' has shape \(48, 5\).*shape \(48, 4\)"):
        saving.load_weights(other, path)
    for a, b in zip(before, other.get_weights()):
        np.testing.assert_array_equal(a, b)   # conv2d and BN fitted, yet nothing was assigned


@pytest.mark.parametrize("name", ["m.weights.h5", "m.h5"])
def test_count_mismatch_names_layer(tmp_path, name):
    path = _saved(tmp_path, small_cnn(), name)
    other = gn.Sequential([gn.Input((6, 6, 2)), Conv2D(3, 3), BatchNormalization(), Flatten(),
                           Dense(4, use_bias=False)])
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"Layer 'dense_1' \(Dense\) expects 1 weights \[\(48, 4\)\].*holds 2"):
        saving.load_weights(other, path)
    for a, b in zip(before, other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_legacy_layer_count_mismatch(tmp_path):
    path = _saved(tmp_path, small_cnn(), "m.h5")
    other = gn.Sequential([gn.Input((6, 6, 2)), Conv2D(3, 3), Flatten(), Dense(4)])
    with pytest.raises(ValueError, match=r"Layer count mismatch.*2 layers with weights.*3 layers"):
        saving.load_weights(other, path)


def test_dtype_mismatch_loads_nothing(tmp_path):
    model = small_cnn()
    path = _saved(tmp_path, model, "m.weights.h5")
    with h5py.File(path, "r+") as f:
        del f["layers/dense/vars/1"]
        f["layers/dense/vars"].create_dataset("1", data=np.arange(4, dtype=np.int32))
    fresh = small_cnn()
    before = fresh.get_weights()
    with pytest.raises(ValueError, match=r"'dense_1'.*'bias' has dtype float32 in the model.*dtype int32"):
        saving.load_weights(fresh, path)
    for a, b in zip(before, fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_missing_layer_group_is_an_error(tmp_path):
    path = _saved(tmp_path, small_cnn(), "m.weights.h5")
    with h5py.File(path, "r+") as f:
        del f["layers/dense"]
    with pytest.raises(ValueError, match=r"Layer 'dense_1' \(Dense\) expects 2 weights.*holds 0"):
        saving.load_weights(small_cnn(), path)


def test_skip_mismatch_loads_the_rest(tmp_path):
    model = small_cnn()
    model.set_weights([w + 1 for w in model.get_weights()])
    path = _saved(tmp_path, model, "m.weights.h5")
    other = gn.Sequential([gn.Input((6, 6, 2)), Conv2D(3, 3), BatchNormalization(), Flatten(), Dense(5)])
    dense_before = other.layers[-1].get_weights()
    with pytest.warns(UserWarning, match=r"'dense_1'.*Skipped"):
        saving.load_weights(other, path, skip_mismatch=True)
    for a, b in zip(model.get_weights()[:6], other.get_weights()[:6]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(dense_before, other.layers[-1].get_weights()):
        np.testing.assert_array_equal(a, b)


def test_optimizer_state_of_another_optimizer_is_skipped_with_a_warning(tmp_path):
    model = small_cnn()
    model.compile(optimizer="adam", loss="mse")
    x, labels = data()
    model.fit(x, np.eye(4, dtype="float32")[labels], batch_size=8, verbose=0)
    path = _saved(tmp_path, model, "m.weights.h5")
    other = small_cnn()
    other.compile(optimizer=gn.optimizers.SGD(momentum=0.9), loss="mse")
    with pytest.warns(UserWarning, match=r"Skipping the optimizer state.*has 8 variables.*holds 14"):
        saving.load_weights(other, path)
    np.testing.assert_array_equal(other.get_weights()[0], model.get_weights()[0])
    assert other.optimizer.iterations == 0


# -- damaged files ------------------------------------------------------------------------------
def _damaged_versions(path):
    """(label, bytes): truncated at several points, the header overwritten, and other files."""
    with open(path, "rb") as f:
        good = f.read()
    versions = [(f"truncated to {k}/8", good[:len(good) * k // 8]) for k in range(8)]
    header = bytearray(good)
    header[8:72] = bytes(64)
    versions.append(("zeroed superblock", bytes(header)))
    versions.append(("text", b"these are not weights\n" * 10))
    versions.append(("zip", b"PK\x03\x04" + bytes(100)))
    return versions


@pytest.mark.parametrize("name", ["m.weights.h5", "m.h5", "model.h5"])
def test_damaged_files_give_a_clear_error(tmp_path, name):
    model = small_cnn()
    path = str(tmp_path / name)
    saving.save_model(model, path) if name == "model.h5" else saving.save_weights(model, path)
    load = saving.load_model if name == "model.h5" else (lambda p: saving.load_weights(small_cnn(), p))
    for label, content in _damaged_versions(path):
        bad = str(tmp_path / f"bad-{name}")
        with open(bad, "wb") as f:
            f.write(content)
        with pytest.raises(saving.FileFormatError, match=r"Cannot read '.*bad-") as caught:
            load(bad)
        assert "not an HDF5 file" in str(caught.value) or "truncated or corrupt" in str(caught.value) \
            or "zip archive" in str(caught.value), label


def test_randomly_corrupted_bytes_never_escape_as_h5py_errors(tmp_path):
    """Flipped bytes either leave a loadable file (raw data carries no checksum) or give ValueError."""
    path = _saved(tmp_path, small_cnn(), "m.weights.h5")
    with open(path, "rb") as f:
        good = f.read()
    rng = np.random.default_rng(3)
    outcomes = set()
    for _ in range(30):
        damaged = bytearray(good)
        for position in rng.integers(0, len(good), 16):
            damaged[position] = int(rng.integers(0, 256))
        bad = str(tmp_path / "bad.weights.h5")
        with open(bad, "wb") as f:
            f.write(bytes(damaged))
        try:
            saving.load_weights(small_cnn(), bad)
            outcomes.add("loaded")
        except ValueError as error:   # FileFormatError, or a mismatch read from damaged metadata
            outcomes.add(type(error).__name__)
    assert "FileFormatError" in outcomes


def test_hdf5_file_of_another_kind(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(saving.FileFormatError, match=r"not a weights file.*\['data'\]"):
        saving.load_weights(small_cnn(), tmp_path / "other.h5")
    with pytest.raises(FileNotFoundError, match="No such file"):
        saving.load_weights(small_cnn(), tmp_path / "absent.h5")


# -- backends ---------------------------------------------------------------------------------
@pytest.mark.parametrize("writer, reader", [("numpy", "cudasim"), ("cudasim", "numpy")])
@pytest.mark.parametrize("name", ["m.weights.h5", "m.h5", "model.h5"])
def test_files_move_between_backends(tmp_path, writer, reader, name):
    path = str(tmp_path / name)
    x, _ = data(4)
    with backend.use(writer):
        model = small_cnn()
        model.set_weights([w + 0.25 for w in model.get_weights()])
        saving.save_model(model, path) if name == "model.h5" else saving.save_weights(model, path)
        expected, prediction = model.get_weights(), model.predict(x, verbose=0)
    with backend.use(reader):
        if name == "model.h5":
            loaded = saving.load_model(path)
        else:
            loaded = small_cnn()
            saving.load_weights(loaded, path)
        for a, b in zip(expected, loaded.get_weights()):
            np.testing.assert_array_equal(a, b)
        assert_close(loaded.predict(x, verbose=0), prediction, rtol=1e-5, atol=1e-5, what="prediction")


def test_long_name_lists_are_split_as_keras_splits_them(tmp_path):
    """Past HDF5's 64 KiB object-header limit a list attribute goes into name0, name1, ..."""
    from gpunet.saving.h5file import read_names, write_names
    names = [f"layer_with_a_long_name_{i}" for i in range(4500)]
    with h5py.File(tmp_path / "names.h5", "w") as f:
        write_names(f.attrs, "layer_names", names)
        assert "layer_names" not in f.attrs and "layer_names2" in f.attrs
        assert read_names(f.attrs, "layer_names") == names
