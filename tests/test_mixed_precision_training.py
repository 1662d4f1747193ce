"""Mixed precision end to end on the numpy backend (issue 11): a small CNN trained under
mixed_bfloat16 / mixed_float16 reaches float32's loss; weights files are float32 whatever the
policy and load across policies; .keras / .h5 model files record each layer's policy and reload
it; a Keras 3.15 mixed_bfloat16 .keras (tests/keras_fixtures/make_mixed_precision_fixtures.py)
loads with its policies and predicts as Keras did."""
import os

import h5py
import ml_dtypes
import numpy as np
import pytest
from sklearn.datasets import load_digits

import gpunet as gn
from gpunet import layers, mixed_precision

from checks import assert_close

BF16 = np.dtype(ml_dtypes.bfloat16)
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keras_fixtures")
pytestmark = pytest.mark.reference   # the policies' numpy reference (cudasim end to end: the kernel families)


def _digits(n=384):
    digits = load_digits()
    return (digits.images[:n] / 16.0).astype(np.float32)[..., None], digits.target[:n]


def _digits_cnn():
    return gn.Sequential([
        gn.Input((8, 8, 1)),
        layers.Conv2D(8, 3, padding="same", activation="relu"), layers.BatchNormalization(),
        layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10, activation="softmax")])


def _train(policy, x, y):
    mixed_precision.set_global_policy(policy)
    gn.utils.set_random_seed(7)
    model = _digits_cnn()
    mixed_precision.set_global_policy("float32")
    model.compile(optimizer=gn.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=3, batch_size=32, shuffle=False, verbose=0).history["loss"]
    return model, history


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_a_cnn_trained_under_a_mixed_policy_reaches_float32s_loss(policy):
    x, y = _digits()
    _, reference = _train("float32", x, y)
    model, history = _train(policy, x, y)
    assert model.layers[0].compute_dtype == policy.split("_")[1]
    assert all(w.dtype == np.float32 for w in model.weights)
    assert history[-1] < 0.5 * history[0]                       # it learns...
    assert abs(history[-1] - reference[-1]) < 0.1 * reference[-1] + 0.02, (history, reference)   # ...as float32
    xb, yb = model._to_backend([x[:32]]), model._targets_to_backend(y[:32])
    assert model._train_step(xb, yb).dtype == np.float32          # the loss is computed in float32


def _mixed_and_float32_models():
    mixed_precision.set_global_policy("mixed_bfloat16")
    mixed = _digits_cnn()
    mixed_precision.set_global_policy("float32")
    plain = _digits_cnn()
    return mixed, plain


def _datasets(path):
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: found.__setitem__(name, item.dtype) if isinstance(item, h5py.Dataset) else None)
    return found


@pytest.mark.parametrize("source", ["mixed", "float32"])
def test_weights_files_are_float32_and_load_across_policies(tmp_path, source):
    mixed, plain = _mixed_and_float32_models()
    x, _ = _digits(16)
    rng = np.random.default_rng(3)
    writer, reader = (mixed, plain) if source == "mixed" else (plain, mixed)
    writer.set_weights([(w + rng.uniform(0, 0.1, w.shape)).astype(np.float32) for w in writer.get_weights()])
    writer.save_weights(tmp_path / "m.weights.h5")
    assert set(_datasets(tmp_path / "m.weights.h5").values()) == {np.dtype(np.float32)}
    reader.load_weights(tmp_path / "m.weights.h5")
    for got, want in zip(reader.get_weights(), writer.get_weights(), strict=True):
        assert got.dtype == np.float32 and np.array_equal(got, want)
    assert_close(mixed.predict(x, verbose=0).astype(np.float32), plain.predict(x, verbose=0), rtol=0.05, atol=0.02)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_model_files_record_each_layers_policy_and_reload_it(tmp_path, suffix):
    mixed_precision.set_global_policy("mixed_float16")
    model = gn.Sequential([gn.Input((8, 8, 1)), layers.Conv2D(3, 3, activation="relu"), layers.Flatten(),
                           layers.Dense(4), layers.Activation("softmax", dtype="float32")])
    mixed_precision.set_global_policy("float32")
    model.save(tmp_path / f"m{suffix}")
    loaded = gn.models.load_model(tmp_path / f"m{suffix}")
    assert [layer.dtype_policy.name for layer in loaded.layers] == ["mixed_float16"] * 3 + ["float32"]
    x, _ = _digits(8)
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_keras_mixed_bfloat16_file_loads_with_its_policies_and_predicts_as_keras():
    recorded = np.load(os.path.join(FIXTURES, "mixed.io.npz"))
    model = gn.models.load_model(os.path.join(FIXTURES, "mixed.keras"))
    assert [layer.dtype_policy.name for layer in model.layers] == ["mixed_bfloat16"] * 5 + ["float32"]
    weights = [recorded[f"w{i:02d}"] for i in range(len(model.get_weights()))]
    for got, want in zip(model.get_weights(), weights, strict=True):
        assert got.dtype == np.float32 and np.array_equal(got, want)
    y = model.predict(recorded["x"], verbose=0)
    assert y.dtype == np.float32
    # Keras (JAX) and gpunet round to bf16 at different places inside conv / BN: a few bf16 ulps apart.
    assert_close(y, recorded["y"], rtol=0.03, atol=0.01)


def test_compile_wraps_the_optimizer_in_a_loss_scaler_under_mixed_float16():
    mixed_precision.set_global_policy("mixed_float16")
    scaled, given = _digits_cnn(), _digits_cnn()
    mixed_precision.set_global_policy("mixed_bfloat16")
    unscaled = _digits_cnn()
    scaled.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert isinstance(scaled.optimizer, gn.optimizers.LossScaleOptimizer)
    assert isinstance(scaled.optimizer.inner_optimizer, gn.optimizers.Adam)
    own = gn.optimizers.LossScaleOptimizer(gn.optimizers.SGD())
    given.compile(optimizer=own, loss="sparse_categorical_crossentropy")
    assert given.optimizer is own                          # not wrapped twice
    unscaled.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert isinstance(unscaled.optimizer, gn.optimizers.Adam)   # bf16 needs no loss scaling
    x, y = _digits(64)
    history = scaled.fit(x, y, epochs=2, batch_size=32, verbose=0).history["loss"]
    assert np.isfinite(history).all() and history[-1] < history[0]


def test_a_bfloat16_policys_weights_file_holds_float32_and_loads_both_ways(tmp_path):
    mixed_precision.set_global_policy("bfloat16")
    pure = gn.Sequential([gn.Input((4,)), layers.Dense(3)])
    mixed_precision.set_global_policy("float32")
    plain = gn.Sequential([gn.Input((4,)), layers.Dense(3)])
    assert [w.dtype for w in pure.weights] == [BF16, BF16]
    pure.save_weights(tmp_path / "pure.weights.h5")          # HDF5 has no bfloat16: widened, exactly
    assert set(_datasets(tmp_path / "pure.weights.h5").values()) == {np.dtype(np.float32)}
    plain.load_weights(tmp_path / "pure.weights.h5")
    assert all(np.array_equal(a, b.astype(np.float32)) for a, b in zip(plain.get_weights(), pure.get_weights()))
    plain.set_weights([w + 0.25 for w in plain.get_weights()])
    plain.save_weights(tmp_path / "plain.weights.h5")
    pure.load_weights(tmp_path / "plain.weights.h5")          # float32 -> bfloat16, rounded once
    assert all(np.array_equal(a, b.astype(BF16)) for a, b in zip(pure.get_weights(), plain.get_weights()))
