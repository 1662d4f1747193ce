"""Write the Keras 3 weight files in this folder, with real Keras, once.

The files here are ground truth for gpunet's HDF5 compatibility (``gpunet/saving.py``):
they were written by Keras itself, so a test that loads them proves gpunet reads what
Keras writes, and Keras's own outputs (``*.io.npz``) prove the numbers line up.

This script is NOT run in CI and NOT collected by pytest: gpunet does not depend on
Keras. It was run once, outside the project's environment, as::

    python -m venv /tmp/kerasenv
    /tmp/kerasenv/bin/pip install keras==3.15.1 jax==0.10.2 jaxlib==0.10.2 h5py==3.16.0
    cd tests/keras_fixtures
    KERAS_BACKEND=jax /tmp/kerasenv/bin/python make_keras_fixtures.py

(Keras 3.15.1, JAX 0.10.2 CPU backend, h5py 3.16.0, NumPy 2.4.6, Python 3.11.)
Re-running it rewrites every fixture; weights and inputs come from fixed seeds.

Per model ``<name>`` it writes:

- ``<name>.weights.h5``        ``model.save_weights`` (Keras 3 format, ``saving_lib``)
- ``<name>.legacy.h5``         ``model.save("<name>.legacy.h5")``: the legacy full-model HDF5
- ``<name>.legacy_weights.h5`` a Keras-2-style weights-only HDF5. Keras 3's ``save_weights``
                               refuses any name but ``*.weights.h5``, so this is written by
                               ``keras.src.legacy.saving.legacy_h5_format.save_weights_to_hdf5_group``
                               on the file root, the function Keras 2 used for it; Keras 3's
                               ``load_weights("x.h5")`` reads it back (checked below).
- ``<name>.io.npz``            ``x`` (batch 2, fixed seed), ``y`` = ``model.predict(x)``, and
                               ``w00, w01, ...`` = ``model.get_weights()`` in order
- ``<name>.layers.json``       ``[{"class", "name", "weights": [[path, shape], ...], "config"}]``
                               in ``model.layers`` order

Every file is loaded back into a fresh Keras model here and must reproduce ``y``.
``dump_tree(path)`` prints the HDF5 trees that ``LAYOUT.md`` quotes.
"""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402
from keras.src.legacy.saving import legacy_h5_format  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def cnn_architecture():
    """Conv -> BN -> pool -> strided conv -> dense -> softmax, untrained."""
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(2),
        layers.Conv2D(6, 3, strides=2, padding="valid", dilation_rate=1),
        layers.Flatten(),
        layers.Dense(5),
        layers.Softmax(),
    ])


def build_cnn():
    """The cnn, compiled and trained four Adam steps so that its files hold optimizer state.

    Its biases and BN parameters are then overwritten by ``make_weights_nontrivial``.
    """
    model = cnn_architecture()
    rng = np.random.default_rng(100)
    x_train = rng.standard_normal((32, 8, 8, 1)).astype("float32")
    y_train = keras.utils.to_categorical(rng.integers(0, 5, 32), 5)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="categorical_crossentropy")
    model.fit(x_train, y_train, batch_size=8, epochs=1, shuffle=False, verbose=0)
    return model


def build_convt():
    """Two transposed convs (same / valid + output_padding), a dilated conv, activations, Dense on channels."""
    return keras.Sequential([
        keras.Input((5, 5, 3)),
        layers.Conv2DTranspose(4, 3, strides=2, padding="same"),
        layers.ELU(),
        layers.Conv2DTranspose(2, 3, strides=2, padding="valid", output_padding=1),
        layers.Conv2D(2, 3, dilation_rate=2, padding="same"),
        layers.LeakyReLU(),
        layers.Conv2D(3, 1),
        layers.Dense(2),
    ])


def build_skip():
    """Functional graph with a residual Add, a Concatenate, upsampling and padding."""
    inputs = keras.Input((6, 6, 2))
    a = layers.Conv2D(4, 3, padding="same")(inputs)
    b = layers.Conv2D(4, 3, padding="same")(a)
    added = layers.Add()([a, b])
    merged = layers.Concatenate()([a, added])
    h = layers.UpSampling2D()(merged)
    h = layers.ZeroPadding2D(1)(h)
    h = layers.Conv2D(2, 3)(h)
    h = layers.GlobalAveragePooling2D()(h)
    # A user-chosen name: the .weights.h5 path stays class-derived ("dense"), legacy uses "head".
    outputs = layers.Dense(3, name="head")(h)
    return keras.Model(inputs, outputs)


def build_nested():
    """A Sequential (Conv2D, BN) used as one layer of a functional model."""
    inner = keras.Sequential([layers.Conv2D(3, 3, padding="same"), layers.BatchNormalization()])
    inputs = keras.Input((4, 4, 1))
    h = inner(inputs)
    h = layers.Flatten()(h)
    outputs = layers.Dense(2)(h)
    return keras.Model(inputs, outputs)


MODELS = {"cnn": build_cnn, "convt": build_convt, "skip": build_skip, "nested": build_nested}
# Loading needs the architecture only: no compile, no fit.
MODELS_FRESH = {"cnn": cnn_architecture, "convt": build_convt, "skip": build_skip, "nested": build_nested}
INPUT_SHAPES = {"cnn": (8, 8, 1), "convt": (5, 5, 3), "skip": (6, 6, 2), "nested": (4, 4, 1)}


def make_weights_nontrivial(model, rng):
    """Give biases and BN parameters values that a loader cannot get right by accident.

    Fresh biases are zeros and fresh BN stats are (0, 1): a loader that skipped them, or
    swapped gamma with moving_variance, would still pass. Kernels keep Keras's init.
    """
    for v in model.weights:
        leaf = v.path.rsplit("/", 1)[-1]
        shape = tuple(v.shape)
        if leaf in ("bias", "beta", "moving_mean"):
            v.assign(rng.normal(0.0, 0.3, shape).astype("float32"))
        elif leaf in ("gamma", "moving_variance"):
            v.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))


def layer_records(model):
    """``model.layers`` as JSON-able dicts: class, name, weight paths and shapes, config.

    A nested model also gets ``"layers"``: its own ``model.layers`` records, recursively.
    """
    records = []
    for layer in model.layers:
        record = {
            "class": layer.__class__.__name__,
            "name": layer.name,
            "weights": [[v.path, list(v.shape)] for v in layer.weights],
            "config": layer.get_config(),
        }
        if isinstance(layer, keras.Model):
            record["layers"] = layer_records(layer)
        records.append(record)
    return records


def save_legacy_weights_only(model, path):
    """What Keras 2's ``model.save_weights("x.h5")`` wrote: layer groups at the file root."""
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def check_round_trip(name, x, y):
    """Load every written file into a fresh model and require Keras's own prediction back."""
    for suffix in ("weights.h5", "legacy_weights.h5"):
        keras.utils.set_random_seed(999)
        fresh = MODELS_FRESH[name]()
        fresh.load_weights(os.path.join(HERE, f"{name}.{suffix}"))
        np.testing.assert_allclose(fresh.predict(x, verbose=0), y, rtol=1e-5, atol=1e-6)
    loaded = keras.saving.load_model(os.path.join(HERE, f"{name}.legacy.h5"), compile=False)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), y, rtol=1e-5, atol=1e-6)


def make_fixture(name, seed):
    """Build, perturb, save in all three formats, record inputs/outputs, verify."""
    keras.backend.clear_session()  # layer names restart at conv2d, conv2d_1, ...
    keras.utils.set_random_seed(seed)
    model = MODELS[name]()
    make_weights_nontrivial(model, np.random.default_rng(seed + 1))
    x = np.random.default_rng(seed + 2).standard_normal((2, *INPUT_SHAPES[name])).astype("float32")
    y = model.predict(x, verbose=0)

    model.save_weights(os.path.join(HERE, f"{name}.weights.h5"))
    model.save(os.path.join(HERE, f"{name}.legacy.h5"))
    save_legacy_weights_only(model, os.path.join(HERE, f"{name}.legacy_weights.h5"))
    weights = {f"w{i:02d}": w for i, w in enumerate(model.get_weights())}
    np.savez(os.path.join(HERE, f"{name}.io.npz"), x=x, y=y, **weights)
    with open(os.path.join(HERE, f"{name}.layers.json"), "w") as f:
        json.dump(layer_records(model), f, indent=1, default=str)
        f.write("\n")
    check_round_trip(name, x, y)
    print(f"{name}: x {x.shape} -> y {y.shape}, {len(weights)} weight arrays, round trip ok")


def dump_tree(path):
    """The HDF5 tree of ``path`` as text: groups, datasets (shape, dtype), attributes with types."""
    lines = [path]

    def attrs_of(obj, indent):
        for key, value in obj.attrs.items():
            h5type = obj.attrs.get_id(key).get_type()
            kind = "vlen str" if h5type.get_class() == h5py.h5t.STRING and h5type.is_variable_str() else ""
            if not kind and h5type.get_class() == h5py.h5t.STRING:
                kind = f"fixed str {h5type.get_size()} bytes"
            text = repr(value)
            text = text if len(text) < 110 else text[:100] + f"... ({len(text)} chars)"
            lines.append(f"{indent}@{key} = {text}  [{type(value).__name__}{', ' + kind if kind else ''}]")

    def visit(name, obj):
        depth = name.count("/") + 1
        indent = "  " * depth
        leaf = name.rsplit("/", 1)[-1]
        if isinstance(obj, h5py.Dataset):
            lines.append(f"{indent}{leaf}  dataset {obj.shape} {obj.dtype}")
        else:
            lines.append(f"{indent}{leaf}/" + ("  (empty)" if len(obj) == 0 and not obj.attrs else ""))
        attrs_of(obj, indent + "  ")

    with h5py.File(path, "r") as f:
        attrs_of(f, "  ")
        f.visititems(visit)
    return "\n".join(lines)


if __name__ == "__main__":
    print("keras", keras.__version__, "backend", keras.backend.backend(), "h5py", h5py.__version__)
    for index, model_name in enumerate(MODELS):
        make_fixture(model_name, seed=10 * (index + 1))
