"""DepthwiseConv2D, SeparableConv2D, Conv2D(groups=), Conv1D and Conv1DTranspose: the layers
against values real Keras computed (weights read from the .weights.h5 files Keras wrote), the
depthwise kernels (kernels/depthwise.cu) against the numpy reference on cudasim, the reference
against float64 central differences, and Keras's refusals."""
import numpy as np
import pytest

import gpunet as gn
from checks import check_backward, compare_with_numpy
from gpunet import layers
from gpunet.primitives import conv_grouped, depthwise
from keras_layers import check_against_keras

CASES = {
    "depthwise_conv2d": lambda: layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
    "depthwise_conv2d_strided": lambda: layers.DepthwiseConv2D((3, 2), strides=2, activation="relu"),
    "depthwise_conv2d_dilated": lambda: layers.DepthwiseConv2D(3, dilation_rate=2, padding="same"),
    "separable_conv2d": lambda: layers.SeparableConv2D(5, 3, padding="same", depth_multiplier=2),
    "separable_conv2d_strided": lambda: layers.SeparableConv2D(4, 3, strides=2, use_bias=False),
    "conv2d_groups": lambda: layers.Conv2D(6, 3, groups=2, padding="same"),
    "conv2d_groups_3": lambda: layers.Conv2D(3, 2, groups=3, strides=2),
    "conv1d": lambda: layers.Conv1D(4, 3, padding="same"),
    "conv1d_causal": lambda: layers.Conv1D(3, 3, padding="causal", dilation_rate=2),
    "conv1d_strided": lambda: layers.Conv1D(3, 2, strides=2, activation="tanh"),
    "conv1d_transpose": lambda: layers.Conv1DTranspose(3, 3, strides=2, padding="same"),
    "conv1d_transpose_valid": lambda: layers.Conv1DTranspose(2, 3, strides=2, output_padding=1),
}


@pytest.mark.parametrize("name", list(CASES))
def test_layer_matches_keras_with_weights_from_keras_file(name):
    check_against_keras(CASES[name](), name, from_file=True)


@pytest.mark.parametrize("name", ["depthwise_conv2d", "depthwise_conv2d_strided", "separable_conv2d",
                                  "conv2d_groups_3", "conv1d_causal", "conv1d_transpose_valid"])
def test_layer_matches_keras_on_kernels(kernel_backend, name):
    check_against_keras(CASES[name](), name, kernel_backend)


@pytest.mark.parametrize("name", list(CASES))
def test_config_matches_keras(name):
    from keras_layers import keras_case
    keras_config = keras_case(name)["config"]
    ours = CASES[name]().get_config()
    for key, value in ours.items():
        if key in ("name", "trainable", "dtype") or key.endswith("initializer"):
            continue
        want = keras_config[key]
        got = list(value) if isinstance(value, tuple) else value
        assert got == (list(want) if isinstance(want, (list, tuple)) else want), (name, key, got, want)


DEPTHWISE = [   # x shape, kernel, multiplier, strides, padding, dilation
    ((2, 6, 5, 3), (3, 3), 2, (1, 1), ((1, 1), (1, 1)), (1, 1)),
    ((1, 7, 6, 2), (3, 2), 1, (2, 2), ((0, 0), (0, 0)), (1, 1)),
    ((2, 7, 6, 5), (3, 3), 3, (2, 1), ((2, 2), (1, 2)), (2, 2)),
    ((1, 9, 9, 40), (3, 3), 1, (1, 1), ((1, 1), (1, 1)), (1, 1)),   # 40 channels: two channel blocks
]


@pytest.mark.parametrize("shape, k, mult, strides, pads, dilation", DEPTHWISE)
def test_depthwise_kernels_match_numpy(kernel_backend, rng, shape, k, mult, strides, pads, dilation):
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((*k, shape[3], mult)).astype(np.float32)
    b = rng.standard_normal(shape[3] * mult).astype(np.float32)
    geometry = (strides, pads, dilation)
    y, = compare_with_numpy(kernel_backend, lambda: depthwise.depthwise_conv2d_forward(x, w, b, *geometry),
                            ["depthwise_conv2d_forward"])
    dy = rng.standard_normal(y.shape).astype(np.float32)
    compare_with_numpy(kernel_backend, lambda: depthwise.depthwise_conv2d_backward_input(dy, w, x.shape, *geometry),
                       ["depthwise_conv2d_backward_input"])
    compare_with_numpy(kernel_backend,
                       lambda: depthwise.depthwise_conv2d_backward_filter(dy, x, w.shape, *geometry),
                       ["depthwise_conv2d_backward_filter", "bias_backward"])


def test_depthwise_filter_gradient_splits_pixels(kernel_backend, rng, monkeypatch):
    from gpunet.primitives import conv
    monkeypatch.setattr(conv, "_SPLIT_MIN_PIXELS", 16)   # 2*9*9 = 162 pixels in several splits
    x = rng.standard_normal((2, 9, 9, 3)).astype(np.float32)
    dy = rng.standard_normal((2, 9, 9, 6)).astype(np.float32)
    compare_with_numpy(kernel_backend, lambda: depthwise.depthwise_conv2d_backward_filter(
        dy, x, (3, 3, 3, 2), (1, 1), ((1, 1), (1, 1)), (1, 1)),
        ["depthwise_conv2d_backward_filter", "sum_splits", "bias_backward"])


@pytest.mark.reference
@pytest.mark.parametrize("shape, k, mult, strides, pads, dilation", DEPTHWISE[:3])
def test_depthwise_gradients_match_finite_differences(rng, shape, k, mult, strides, pads, dilation):
    x = rng.standard_normal(shape)
    w = rng.standard_normal((*k, shape[3], mult))
    b = rng.standard_normal(shape[3] * mult)
    geometry = (strides, pads, dilation)
    check_backward(lambda *a: depthwise.depthwise_conv2d_forward(*a, *geometry),
                   lambda dy: [depthwise.depthwise_conv2d_backward_input(dy, w, x.shape, *geometry),
                               *depthwise.depthwise_conv2d_backward_filter(dy, x, w.shape, *geometry)], [x, w, b])


@pytest.mark.reference
def test_grouped_conv_gradients_match_finite_differences(rng):
    x, w, b = rng.standard_normal((1, 5, 4, 6)), rng.standard_normal((2, 2, 2, 6)), rng.standard_normal(6)
    geometry = ((1, 2), ((1, 0), (0, 1)), (1, 1))
    check_backward(lambda *a: conv_grouped.grouped_conv2d_forward(*a, *geometry, groups=3),
                   lambda dy: [conv_grouped.grouped_conv2d_backward_input(dy, w, x.shape, *geometry, groups=3),
                               *conv_grouped.grouped_conv2d_backward_filter(dy, x, w.shape, *geometry, groups=3)],
                   [x, w, b])


@pytest.mark.reference
@pytest.mark.parametrize("make, shape", [
    (lambda: layers.SeparableConv2D(3, 3, padding="same", depth_multiplier=2, activation="tanh"), (1, 4, 5, 2)),
    (lambda: layers.Conv1D(2, 3, padding="causal", dilation_rate=2), (2, 7, 2)),
    (lambda: layers.Conv1DTranspose(2, 3, strides=2, padding="same"), (1, 4, 3)),
])
def test_layer_gradients_match_finite_differences(rng, make, shape):
    layer = make()
    layer.dtype = np.dtype("float64")
    x = rng.standard_normal(shape)
    layer.build((None, *shape[1:]))
    weights = [rng.standard_normal(w.shape) for w in layer.get_weights()]

    def forward(x_, *ws):
        layer.set_weights(ws)
        return layer.forward(x_)

    def backward(dy):
        dx = layer.backward(dy)
        return [dx, *layer.grads]
    check_backward(forward, backward, [x, *weights])


def test_keras_refusals_and_shapes():
    with pytest.raises(ValueError, match=r"The number of filters must be evenly divisible by the number of groups\. "
                                         r"Received: groups=4, filters=6\."):
        layers.Conv2D(6, 3, groups=4)
    with pytest.raises(ValueError, match=r"The number of input channels must be evenly divisible by the number of "
                                         r"groups\. Received groups=2, but the input has 3 channels"):
        layers.Conv2D(4, 3, groups=2)(gn.Input((5, 5, 3)))
    with pytest.raises(ValueError, match=r"The number of groups must be a positive integer"):
        layers.Conv2D(4, 3, groups=0)
    with pytest.raises(ValueError, match=r"Invalid value for argument `depth_multiplier`"):
        layers.DepthwiseConv2D(3, depth_multiplier=0)
    with pytest.raises(ValueError, match=r"Conv1D padding must be 'valid', 'same' or 'causal'"):
        layers.Conv1D(2, 3, padding=1)
    with pytest.raises(ValueError, match=r"Conv1D 'c' expects a 3-D input \(batch, steps, channels\)"):
        layers.Conv1D(2, 3, name="c")(gn.Input((5, 5, 3)))
    assert layers.DepthwiseConv2D(3, depth_multiplier=3)(gn.Input((7, 7, 2))).shape == (None, 5, 5, 6)
    assert layers.SeparableConv2D(4, 3, strides=2, padding="same")(gn.Input((7, 7, 2))).shape == (None, 4, 4, 4)
    assert layers.Conv1D(4, 3, padding="causal")(gn.Input((9, 2))).shape == (None, 9, 4)
    assert layers.Conv1DTranspose(4, 3, strides=2, padding="same")(gn.Input((5, 2))).shape == (None, 10, 4)
    sep = layers.SeparableConv2D(4, 3)
    sep(gn.Input((7, 7, 2)))
    assert sep.weight_names == ["depthwise_kernel", "pointwise_kernel", "bias"]


def _separable_block():
    inputs = gn.Input((8, 8, 3))
    h = layers.SeparableConv2D(8, 3, padding="same", activation="relu")(inputs)
    h = layers.DepthwiseConv2D(3, padding="same")(h)
    h = layers.Conv2D(8, 1, groups=2)(h)
    seq = layers.Reshape((64, 8))(h)
    seq = layers.Conv1D(4, 3, padding="causal")(seq)
    return gn.Model(inputs, layers.Dense(1)(layers.GlobalAveragePooling1D()(seq)))


def test_separable_block_trains_and_round_trips(tmp_path, rng):
    model = _separable_block()
    model.compile(optimizer="adam", loss="mse")
    x, y = rng.standard_normal((16, 8, 8, 3)).astype(np.float32), rng.standard_normal((16, 1)).astype(np.float32)
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=6, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before
    expected = model.predict(x, verbose=0)
    model.save(str(tmp_path / "m.h5"))
    np.testing.assert_allclose(gn.models.load_model(str(tmp_path / "m.h5")).predict(x, verbose=0), expected,
                               rtol=1e-5, atol=1e-6)
    model.save_weights(str(tmp_path / "m.weights.h5"))
    fresh = _separable_block()
    fresh.load_weights(str(tmp_path / "m.weights.h5"))
    np.testing.assert_allclose(fresh.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_keras_zip_with_every_new_layer_loads_and_saves_back(tmp_path):
    """issue14_model.keras was written by Keras 3.15 (make_layer_fixtures.py): SeparableConv2D,
    DepthwiseConv2D, grouped Conv2D, GroupNormalization, PReLU, SpatialDropout2D, the croppings,
    global pools, merges, Conv1D(causal), Conv1DTranspose, LayerNormalization, new activations."""
    import os
    from keras_layers import LAYER_FIXTURES
    model = gn.models.load_model(os.path.join(LAYER_FIXTURES, "issue14_model.keras"))
    with np.load(os.path.join(LAYER_FIXTURES, "issue14_model.io.npz")) as data:
        x, y = data["x"], data["y"]
    np.testing.assert_allclose(model.predict(x, verbose=0), y, rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "back.keras")
    model.save(path)
    np.testing.assert_allclose(gn.models.load_model(path).predict(x, verbose=0), y, rtol=1e-5, atol=1e-6)
