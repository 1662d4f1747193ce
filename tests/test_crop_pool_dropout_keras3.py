"""Cropping2D / Cropping1D, GlobalMaxPooling2D and the 1-D global pools, SpatialDropout2D: the
layers on both backends against values real Keras computed, their ops on cudasim against numpy,
finite differences on numpy, Keras's refusals."""
import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, check_backward, compare_with_numpy
from gpunet import layers
from gpunet.primitives import dropout
from keras_layers import check_against_keras

CASES = {
    "cropping2d": lambda: layers.Cropping2D(((1, 2), (0, 1))),
    "cropping1d": lambda: layers.Cropping1D((2, 1)),
    "global_max_pooling2d": layers.GlobalMaxPooling2D,
    "global_max_pooling2d_keepdims": lambda: layers.GlobalMaxPooling2D(keepdims=True),
    "global_average_pooling1d": layers.GlobalAveragePooling1D,
    "global_max_pooling1d_keepdims": lambda: layers.GlobalMaxPooling1D(keepdims=True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_layer_matches_keras(name):
    check_against_keras(CASES[name](), name)


@pytest.mark.parametrize("name", list(CASES))
def test_layer_matches_keras_on_kernels(kernel_backend, name):
    check_against_keras(CASES[name](), name, kernel_backend)


@pytest.mark.parametrize("make, shape", [
    (lambda: layers.Cropping2D(((0, 1), (2, 0))), (1, 4, 5, 2)),
    (lambda: layers.Cropping1D(1), (2, 5, 3)),
    (layers.GlobalMaxPooling2D, (2, 3, 4, 2)),
    (lambda: layers.GlobalMaxPooling1D(keepdims=True), (1, 5, 3)),
    (lambda: layers.GlobalAveragePooling1D(keepdims=True), (2, 4, 3)),
])
@pytest.mark.reference
def test_gradients_match_finite_differences(rng, make, shape):
    layer = make()
    layer.dtype = np.dtype("float64")
    x = rng.standard_normal(shape)
    check_backward(lambda v: layer.forward(v), lambda dy: layer.backward(dy), [x])


def test_output_shapes_and_keras_refusals():
    assert layers.Cropping2D(1)(gn.Input((5, 6, 2))).shape == (None, 3, 4, 2)
    assert layers.Cropping2D((1, 2))(gn.Input((5, 6, 2))).shape == (None, 3, 2, 2)
    assert layers.GlobalMaxPooling1D()(gn.Input((7, 3))).shape == (None, 3)
    assert layers.GlobalAvgPool1D(keepdims=True)(gn.Input((7, 3))).shape == (None, 1, 3)
    with pytest.raises(ValueError, match=r"Values in `cropping` argument should be smaller .* cropping=\(\(2, 3\)"):
        layers.Cropping2D(((2, 3), (0, 0)))(gn.Input((5, 6, 2)))
    with pytest.raises(ValueError, match=r"`cropping` parameter of `Cropping1D` layer must be smaller"):
        layers.Cropping1D((3, 4))(gn.Input((7, 2)))
    with pytest.raises(ValueError, match=r"`cropping` cannot be negative"):
        layers.Cropping2D(-1)
    with pytest.raises(ValueError, match=r"`cropping` should have two elements"):
        layers.Cropping2D((1, 2, 3))
    with pytest.raises(ValueError, match=r"GlobalMaxPooling1D 'p' expects a 3-D input"):
        layers.GlobalMaxPooling1D(name="p")(gn.Input((4, 4, 2)))
    with pytest.raises(ValueError, match="channels_last"):
        layers.SpatialDropout2D(0.5, data_format="channels_first")


def test_spatial_dropout_kernels_match_numpy(kernel_backend, rng):
    x = rng.standard_normal((3, 4, 5, 7)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    y, mask = compare_with_numpy(kernel_backend, lambda: dropout.spatial_dropout2d_forward(x, 0.4, 77),
                                 ["dropout_mask", "channel_mask_multiply"])
    compare_with_numpy(kernel_backend, lambda: dropout.spatial_dropout2d_backward(dy, mask), ["channel_mask_multiply"])
    # Whole channels: each (image, channel) map is all kept (scaled) or all zero.
    kept = np.abs(y).sum(axis=(1, 2)) > 0
    assert np.array_equal(kept, mask > 0) and 0 < kept.sum() < kept.size
    assert_close(y[:, :, :, :][mask[:, None, None, :].repeat(4, 1).repeat(5, 2) > 0] / (1 / 0.6),
                 x[mask[:, None, None, :].repeat(4, 1).repeat(5, 2) > 0])


def test_spatial_dropout_layer_is_seeded_like_dropout(rng):
    x = rng.standard_normal((4, 3, 3, 50)).astype(np.float32)
    layer = layers.SpatialDropout2D(0.3, seed=5)
    first, second = layer(x, training=True), layer(x, training=True)
    flat_keep = dropout.dropout_keep(4 * 50, 0.3, 5).reshape(4, 50)
    assert np.array_equal(np.abs(first).sum(axis=(1, 2)) > 0, flat_keep)
    assert not np.array_equal(first, second)                       # call 1 uses seed 6
    assert np.array_equal(layers.SpatialDropout2D(0.3, seed=5)(x, training=True), first)
    third = layer(x, training=True)
    dx = layer.backward(np.ones_like(x))
    assert np.array_equal(dx != 0, third != 0)
    assert np.array_equal(layer(x, training=False), x)
    assert layer.get_config()["seed"] == 5 and layer.get_config()["rate"] == 0.3


def test_model_with_new_layers_trains(rng):
    model = gn.Sequential([gn.Input((8, 8, 2)), layers.Conv2D(4, 3, activation="gelu"), layers.Cropping2D(1),
                           layers.SpatialDropout2D(0.2, seed=1), layers.GlobalMaxPooling2D(), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x, y = rng.standard_normal((16, 8, 8, 2)).astype(np.float32), rng.standard_normal((16, 1)).astype(np.float32)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=8, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before
