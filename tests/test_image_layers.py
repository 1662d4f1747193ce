"""Preprocessing and augmentation layers: the numpy references against Keras 3 (fixtures from
tests/keras_fixtures/make_image_fixtures.py), the kernels of kernels/image.cu against numpy,
inference identity, seeded and resumable draws, one transform for an image and its mask."""
import os

import numpy as np
import pytest

import gpunet as gn
from gpunet import layers
from gpunet.primitives import image as ops

from checks import assert_close, compare_with_numpy, run_on_backend

F = np.load(os.path.join(os.path.dirname(__file__), "keras_fixtures", "image_ops.npz"))


def test_resize_and_affine_references_equal_keras():
    for key in F.files:
        if key.startswith("resize_"):
            _, interpolation, size, crop = key.split("_")
            got = ops.resize_reference(F["x"], tuple(map(int, size.split("x"))), interpolation, crop == "1")
        elif key.startswith("affine_"):
            _, interpolation, mode = key.split("_")
            got = ops.affine_reference(F["x"], F["transforms"], interpolation, mode, 0.5)
        else:
            continue
        assert_close(got, F[key], rtol=1e-5, atol=1e-6, what=key)


# -- kernels ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("size,crop,window", [((4, 5), False, None), ((10, 13), False, None), ((5, 5), True, None),
                                              ((3, 4), False, (2, 3, 3, 4))])
def test_resize_kernels(kernel_backend, rng, interpolation, size, crop, window):
    x = rng.standard_normal((2, 7, 9, 3)).astype(np.float32)
    compare_with_numpy(kernel_backend, lambda: ops.resize_forward(x, size, interpolation, crop, window),
                       ["resize_" + interpolation])


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("mode", ops.FILL_MODES)
def test_affine_kernel(kernel_backend, interpolation, mode):
    compare_with_numpy(kernel_backend, lambda: ops.affine_forward(F["x"], F["transforms"], interpolation, mode, 0.5),
                       ["affine_transform"])


def test_intensity_kernels(kernel_backend, rng):
    x = rng.uniform(0, 255, (3, 5, 6, 2)).astype(np.float32)
    factor, delta = rng.uniform(0.5, 1.5, 3), rng.uniform(-30, 30, 3)
    compare_with_numpy(kernel_backend, lambda: ops.channel_means(x), ["channel_means"])
    compare_with_numpy(kernel_backend, lambda: ops.intensity_forward(x, factor, delta, ops.channel_means(x),
                                                                     (0.0, 255.0)), ["channel_means", "intensity"])
    compare_with_numpy(kernel_backend, lambda: ops.intensity_forward(x, factor, delta), ["intensity"])


# -- layers ----------------------------------------------------------------------------------------
RANDOM = [lambda: layers.RandomFlip(seed=1), lambda: layers.RandomTranslation(0.2, (-0.3, 0.1), seed=2),
          lambda: layers.RandomRotation(0.1, fill_mode="constant", seed=3), lambda: layers.RandomZoom(0.3, seed=4),
          lambda: layers.RandomContrast(0.5, seed=5), lambda: layers.RandomBrightness(0.2, seed=6)]


@pytest.mark.parametrize("make", RANDOM, ids=["flip", "translation", "rotation", "zoom", "contrast", "brightness"])
def test_random_layers_are_identity_in_inference_seeded_and_resumable(make, rng):
    x = rng.uniform(0, 255, (4, 8, 10, 3)).astype(np.float32)
    layer = make()
    assert_close(layer(x, training=False), x, rtol=0, atol=0)
    first, second = np.asarray(layer(x)), np.asarray(layer(x))   # eager calls augment (training=True)
    assert np.abs(first - x).max() > 1 and np.abs(first - second).max() > 1
    again = type(layer).from_config(layer.get_config())
    again.set_random_state({"calls": 1})
    assert_close(again(x), second, rtol=0, atol=0)   # call 1's draw, as the stopped run had it


def test_flip_crop_and_rescaling_values(rng):
    x = rng.uniform(0, 255, (6, 8, 10, 1)).astype(np.float32)
    flipped = np.asarray(layers.RandomFlip("horizontal", seed=0)(x))
    for k in range(6):
        assert np.array_equal(flipped[k], x[k]) or np.array_equal(flipped[k], x[k, :, ::-1])
    crop = np.asarray(layers.RandomCrop(5, 6, seed=0)(x))
    assert crop.shape == (6, 5, 6, 1)
    offsets = [(i, j) for i in range(4) for j in range(5) if np.array_equal(crop, x[:, i:i + 5, j:j + 6])]
    assert len(offsets) == 1   # one window for the whole batch, as Keras 3
    assert_close(layers.RandomCrop(6, 6, seed=0)(x, training=False), x[:, 1:7, 2:8], rtol=0, atol=0)
    assert_close(layers.CenterCrop(4, 4)(x), x[:, 2:6, 3:7], rtol=0, atol=0)
    assert_close(layers.Rescaling(1 / 127.5, offset=-1)(x), x / 127.5 - 1, rtol=1e-6, atol=1e-6)
    assert layers.Resizing(3, 4)(x).shape == (6, 3, 4, 1)


def test_an_image_and_its_mask_get_one_transform(rng):
    images = rng.uniform(0, 255, (5, 8, 8, 3)).astype(np.float32)
    masks = (images[..., 0] > 128).astype(np.int32)          # the mask is a function of the image...
    for layer in (layers.RandomFlip(seed=2), layers.RandomRotation(0.25, fill_mode="constant", seed=3),
                  layers.RandomZoom(0.4, seed=4), layers.RandomCrop(6, 6, seed=5)):
        out = layer({"images": images, "segmentation_masks": masks})
        assert out["segmentation_masks"].dtype == np.int32 and out["segmentation_masks"].shape == out["images"].shape[:3]
        nearest = type(layer).from_config({**layer.get_config(), "interpolation": "nearest"}) \
            if "interpolation" in layer.get_config() else type(layer).from_config(layer.get_config())
        moved = np.asarray(nearest(images))
        # ...so with nearest sampling the moved mask is the same function of the moved image.
        expected = (moved[..., 0] > 128).astype(np.int32)
        inside = moved[..., 0] != 0    # constant fill: 0 in both
        assert np.array_equal(out["segmentation_masks"][inside], expected[inside]), type(layer).__name__


@pytest.mark.reference
def test_rescaling_gradient_and_the_layers_that_give_none():
    x = np.random.default_rng(0).standard_normal((2, 3, 3, 2))
    layer = layers.Rescaling(0.5, offset=2.0, dtype="float64")
    layer(x)
    assert_close(layer.backward(np.ones_like(x)), np.full_like(x, 0.5), rtol=0, atol=0)
    flip = layers.RandomFlip(seed=0)
    flip(x)
    with pytest.raises(NotImplementedError, match=r"RandomFlip '.*' passes no gradient to its input"):
        flip.backward(np.ones_like(x))
    flip(x, training=False)
    assert_close(flip.backward(np.ones_like(x)), np.ones_like(x), rtol=0, atol=0)   # identity in inference


def test_a_model_with_augmentation_trains_and_saves_its_random_state(tmp_path, rng):
    model = gn.Sequential([layers.Input((8, 8, 3)), layers.Rescaling(1 / 255), layers.RandomFlip(seed=1),
                           layers.RandomRotation(0.05, seed=2), layers.Conv2D(4, 3, activation="relu"),
                           layers.Flatten(), layers.Dense(2), layers.Softmax()])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.uniform(0, 255, (16, 8, 8, 3)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 127).astype(np.int64)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert model.layers[1].random_state() == {"calls": 4}
    assert_close(model.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=0)   # no randomness
    path = str(tmp_path / "aug.h5")
    model.save(path)
    loaded = gn.models.load_model(path)
    assert loaded.layers[1].random_state() == {"calls": 4}
    assert_close(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=0)


def test_bad_settings_name_the_layer():
    with pytest.raises(ValueError, match=r"RandomFlip mode must be one of"):
        layers.RandomFlip("diagonal")
    with pytest.raises(ValueError, match=r"RandomRotation fill_mode must be one of"):
        layers.RandomRotation(0.1, fill_mode="smear")
    with pytest.raises(ValueError, match=r"Resizing height must be a positive int; received 0"):
        layers.Resizing(0, 4)
    with pytest.raises(ValueError, match=r"RandomContrast factor must be in \[0, 1\]"):
        layers.RandomContrast(1.5)
    with pytest.raises(ValueError, match=r"RandomFlip '.*' expects images of rank 4"):
        layers.RandomFlip()(np.zeros((2, 3), np.float32))
