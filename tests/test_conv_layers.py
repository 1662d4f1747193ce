"""Conv2D and Conv2DTranspose layers: output shapes per Keras's rules, gradients, config, errors."""
import re

import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, check_backward
from gpunet.layers import Conv2D, Conv2DTranspose
from gpunet.primitives import conv as conv_ops


# -- output shapes ---------------------------------------------------------------------------

@pytest.mark.parametrize("in_shape, kwargs, expected", [
    ((None, 28, 28, 1), dict(filters=8, kernel_size=3), (None, 26, 26, 8)),
    ((None, 28, 28, 1), dict(filters=8, kernel_size=3, padding="same"), (None, 28, 28, 8)),
    ((None, 7, 7, 2), dict(filters=4, kernel_size=3, strides=2, padding="same"), (None, 4, 4, 4)),
    ((None, 7, 8, 2), dict(filters=4, kernel_size=3, strides=2), (None, 3, 3, 4)),
    ((None, 9, 9, 2), dict(filters=4, kernel_size=3, dilation_rate=2), (None, 5, 5, 4)),
    ((None, 9, 10, 2), dict(filters=4, kernel_size=(3, 2), strides=(2, 3), padding="same"), (None, 5, 4, 4)),
    ((None, 9, 9, 2), dict(filters=4, kernel_size=3, strides=2, dilation_rate=2), (None, 3, 3, 4)),
    ((None, 5, 5, 2), dict(filters=4, kernel_size=3, padding=2), (None, 7, 7, 4)),
    ((None, 5, 5, 2), dict(filters=4, kernel_size=3, padding=(1, 0)), (None, 5, 3, 4)),
    ((None, 5, 6, 2), dict(filters=4, kernel_size=3, padding=((0, 2), (1, 0))), (None, 5, 5, 4)),
    ((None, None, 6, 2), dict(filters=4, kernel_size=3, padding="same", strides=2), (None, None, 3, 4)),
    ((3, 1, 1, 2), dict(filters=5, kernel_size=1), (3, 1, 1, 5)),
])
def test_conv2d_output_shape(rng, in_shape, kwargs, expected):
    layer = Conv2D(**kwargs)
    assert layer.compute_output_shape(in_shape) == expected
    if None not in in_shape[1:]:
        x = rng.standard_normal((2, *in_shape[1:])).astype(np.float32)
        assert layer(x).shape == (2, *expected[1:])


@pytest.mark.parametrize("in_hw, kwargs, expected_hw", [
    ((7, 7), dict(kernel_size=3, strides=2, padding="same"), (14, 14)),
    ((7, 7), dict(kernel_size=3, strides=2), (15, 15)),
    ((7, 5), dict(kernel_size=3, strides=2, padding="same", output_padding=1), (14, 10)),
    ((7, 7), dict(kernel_size=3, strides=2, padding="same", output_padding=0), (13, 13)),
    ((7, 7), dict(kernel_size=3, strides=2, output_padding=1), (16, 16)),
    ((4, 4), dict(kernel_size=4, strides=2, padding="same"), (8, 8)),
    ((5, 5), dict(kernel_size=2, strides=3), (15, 15)),
    ((5, 5), dict(kernel_size=3, dilation_rate=2), (9, 9)),
    ((5, 5), dict(kernel_size=3, padding="same", dilation_rate=2), (5, 5)),
    ((4, 3), dict(kernel_size=3, strides=2, dilation_rate=2, padding="same"), (8, 6)),
    ((7, 7), dict(kernel_size=3, strides=2, padding=1), (13, 13)),
    ((7, 7), dict(kernel_size=3, strides=2, padding=1, output_padding=1), (14, 14)),
    ((6, 6), dict(kernel_size=(3, 1), strides=(1, 2), padding=((0, 2), (0, 0))), (6, 11)),
    ((4, 4), dict(kernel_size=3, dilation_rate=2, output_padding=1), (9, 9)),
])
def test_conv2d_transpose_output_shape_follows_keras(rng, in_hw, kwargs, expected_hw):
    layer = Conv2DTranspose(3, **kwargs)
    assert layer.compute_output_shape((None, *in_hw, 2)) == (None, *expected_hw, 3)
    x = rng.standard_normal((1, *in_hw, 2)).astype(np.float32)
    assert layer(x).shape == (1, *expected_hw, 3)


def test_symbolic_input_gives_the_keras_shape():
    y = Conv2DTranspose(4, 3, strides=2, padding="same")(gn.Input((7, 7, 3)))
    assert y.shape == (None, 14, 14, 4)


@pytest.mark.parametrize("layer_class, kernel_shape", [(Conv2D, (3, 2, 5, 4)), (Conv2DTranspose, (3, 2, 4, 5))])
def test_weights_in_keras_layout_and_order(layer_class, kernel_shape):
    layer = layer_class(4, (3, 2), dtype="float64")
    layer.build((None, 8, 8, 5))
    assert layer.weight_names == ["kernel", "bias"]
    assert [w.shape for w in layer.get_weights()] == [kernel_shape, (4,)]
    assert layer.get_weights()[0].dtype == np.float64
    assert not layer.get_weights()[1].any()   # zeros bias
    no_bias = layer_class(4, (3, 2), use_bias=False)
    no_bias.build((None, 8, 8, 5))
    assert [w.shape for w in no_bias.get_weights()] == [kernel_shape]


# -- gradients through the layer (activation included) ---------------------------------------

LAYER_CASES = [
    (Conv2D, (2, 6, 5, 2), dict(kernel_size=3, strides=1, padding="valid")),
    (Conv2D, (1, 7, 7, 2), dict(kernel_size=3, strides=2, padding="same", activation="tanh")),
    (Conv2D, (1, 7, 8, 1), dict(kernel_size=2, strides=3, padding=((1, 0), (2, 1)))),
    (Conv2D, (1, 9, 7, 2), dict(kernel_size=3, strides=2, dilation_rate=2, padding="same")),
    (Conv2D, (2, 5, 5, 2), dict(kernel_size=3, padding=1, dilation_rate=(1, 2), use_bias=False)),
    (Conv2DTranspose, (1, 4, 4, 2), dict(kernel_size=3, strides=2, padding="same", activation="sigmoid")),
    (Conv2DTranspose, (2, 3, 3, 2), dict(kernel_size=3, strides=2)),
    (Conv2DTranspose, (1, 3, 4, 2), dict(kernel_size=3, strides=2, padding="same", output_padding=(0, 1))),
    (Conv2DTranspose, (1, 3, 3, 1), dict(kernel_size=2, strides=3, dilation_rate=2, padding="same")),
    (Conv2DTranspose, (1, 4, 4, 2), dict(kernel_size=3, strides=2, padding=1, output_padding=1)),
    (Conv2DTranspose, (1, 3, 3, 2), dict(kernel_size=3, dilation_rate=2, output_padding=1, use_bias=False)),
]


@pytest.mark.reference   # float64 gradient / value check: numpy backend
@pytest.mark.parametrize("layer_class, x_shape, kwargs", LAYER_CASES)
def test_layer_gradients(rng, layer_class, x_shape, kwargs):
    layer = layer_class(3, dtype="float64", **kwargs)
    layer.build((None, *x_shape[1:]))
    x = rng.standard_normal(x_shape)
    weights = [rng.standard_normal(w.shape) for w in layer.get_weights()]

    def forward(x, *weights):
        layer.set_weights(weights)
        return layer.forward(x, training=True)

    def backward(dy):
        dx = layer.backward(dy)
        return [dx, *layer.grads]

    check_backward(forward, backward, [x, *weights])


@pytest.mark.reference   # float64 gradient / value check: numpy backend
@pytest.mark.parametrize("layer_class, kwargs, backward_input, pads", [
    (Conv2D, dict(strides=2, padding="same"), conv_ops.conv2d_backward_input, ((1, 1), (0, 1))),
    (Conv2DTranspose, dict(strides=2, padding="same", output_padding=1),
     conv_ops.conv2d_transpose_backward_input, ((0, 1), (0, 1))),
])
def test_untrainable_layer_returns_the_ops_dx_and_no_grads(rng, layer_class, kwargs, backward_input, pads):
    layer = layer_class(2, 3, trainable=False, dtype="float64", **kwargs)
    x = rng.standard_normal((2, 5, 6, 3))
    layer.build(x.shape)
    for training in (True, False):
        y = layer.forward(x, training=training)
        dy = rng.standard_normal(y.shape)
        dx = layer.backward(dy)
        assert layer.grads == []
        # pads: what conv_geometry gives these settings for a 5 x 6 input (Keras's "same" split).
        expected = backward_input(dy, layer.get_weights()[0], x.shape, (2, 2), pads, (1, 1))
        assert_close(dx, expected, rtol=1e-12, atol=1e-12, what=f"{layer_class.__name__} dx")


@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_layer_matches_the_op_with_the_keras_same_split(rng):
    # "same" on an even size with stride 2 pads 0 on top and 1 at the bottom (Keras's split).
    layer = Conv2D(2, 3, strides=2, padding="same", dtype="float64")
    layer.build((None, 6, 6, 1))
    kernel, bias = rng.standard_normal((3, 3, 1, 2)), rng.standard_normal(2)
    layer.set_weights([kernel, bias])
    x = rng.standard_normal((1, 6, 6, 1))
    manual = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    expected = np.zeros((1, 3, 3, 2))
    for p in range(3):
        for q in range(3):
            expected[0, p, q] = np.einsum("hwc,hwco->o", manual[0, 2 * p:2 * p + 3, 2 * q:2 * q + 3], kernel)
    assert_close(layer(x), expected + bias, rtol=1e-12, atol=1e-12)


# -- config -----------------------------------------------------------------------------------

@pytest.mark.parametrize("layer_class, kwargs", [
    (Conv2D, dict(filters=4, kernel_size=(3, 2), strides=2, padding="same", dilation_rate=1,
                  activation="relu", use_bias=False, kernel_initializer="he_normal", bias_initializer="ones")),
    (Conv2D, dict(filters=2, kernel_size=3, padding=((1, 2), (0, 1)), dilation_rate=(2, 1), strides=2)),
    (Conv2DTranspose, dict(filters=3, kernel_size=3, strides=2, padding="same", output_padding=1,
                           activation="sigmoid")),
    (Conv2DTranspose, dict(filters=3, kernel_size=2, padding=1, output_padding=None,
                           kernel_initializer=gn.initializers.RandomNormal(0.0, 0.2))),
])
def test_get_config_round_trips(rng, layer_class, kwargs):
    layer = layer_class(**kwargs)
    config = layer.get_config()
    clone = layer_class.from_config(config)
    assert clone.get_config() == config
    x = rng.standard_normal((2, 7, 7, 3)).astype(np.float32)
    y = layer(x)
    clone.build((None, 7, 7, 3))
    clone.set_weights(layer.get_weights())
    assert_close(clone(x), y, rtol=0, atol=0)


# -- bad input and bad arguments --------------------------------------------------------------

def test_wrong_rank_names_layer_expected_and_received():
    Conv2D(8, 3)
    layer = Conv2D(8, 3)
    message = ("Conv2D 'conv2d_1' expects a 4-D input (batch, height, width, channels); "
               "received shape (32, 784).")
    with pytest.raises(ValueError, match=re.escape(message)):
        layer(np.zeros((32, 784), np.float32))
    with pytest.raises(ValueError, match=re.escape("received shape (None, 784)")):
        layer.compute_output_shape((None, 784))


def test_channel_count_differing_from_the_built_one():
    layer = Conv2DTranspose(4, 3, name="up")
    layer(np.zeros((1, 5, 5, 3), np.float32))
    message = ("Conv2DTranspose 'up' expects inputs with 3 channels (batch, height, width, 3), as it was "
               "built for; received shape (1, 5, 5, 2).")
    with pytest.raises(ValueError, match=re.escape(message)):
        layer(np.zeros((1, 5, 5, 2), np.float32))


@pytest.mark.parametrize("kwargs, shape, fragment", [
    (dict(kernel_size=5), (1, 4, 9, 1), "height of at least 5 after padding 'valid'"),
    (dict(kernel_size=3, dilation_rate=3), (1, 9, 6, 1), "width of at least 7 after padding 'valid'"),
    (dict(kernel_size=3, padding=((0, 0), (1, 0))), (1, 5, 1, 1), "padded, this one is 2"),
])
def test_kernel_larger_than_the_padded_input(kwargs, shape, fragment):
    layer = Conv2D(2, name="c", **kwargs)
    with pytest.raises(ValueError, match=re.escape(fragment)) as error:
        layer(np.zeros(shape, np.float32))
    assert str(error.value).startswith("Conv2D 'c' expects") and f"received shape {shape}" in str(error.value)


def test_transpose_output_under_one_pixel():
    layer = Conv2DTranspose(2, 3, padding=((3, 1), (0, 0)), name="t")
    message = ("Conv2DTranspose 't' expects an input giving an output height of at least 1; with padding "
               "((3, 1), (0, 0)) this one gives 0; received shape (None, 2, 2, 1).")
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.compute_output_shape((None, 2, 2, 1))


@pytest.mark.parametrize("layer_class, kwargs, fragment", [
    (Conv2D, dict(filters=0, kernel_size=3), "filters must be a positive int; received 0"),
    (Conv2D, dict(filters=2.5, kernel_size=3), "filters must be a positive int"),
    (Conv2D, dict(filters=2, kernel_size=(3, 0)), "kernel_size must be positive; received (3, 0)"),
    (Conv2D, dict(filters=2, kernel_size=(3, 3, 3)), "kernel_size must be an int or a tuple of 2 ints"),
    (Conv2D, dict(filters=2, kernel_size=3, strides=0), "strides must be positive"),
    (Conv2D, dict(filters=2, kernel_size=3, dilation_rate=-1), "dilation_rate must be positive"),
    (Conv2D, dict(filters=2, kernel_size=3, padding="full"), "Conv2D padding must be 'valid', 'same'"),
    (Conv2D, dict(filters=2, kernel_size=3, padding=-1), "received padding=-1"),
    (Conv2D, dict(filters=2, kernel_size=3, kernel_initializer="glorot"), "kernel_initializer: Unknown"),
    (Conv2D, dict(filters=2, kernel_size=3, activation="swishy"), "Unknown activation"),
    (Conv2DTranspose, dict(filters=2, kernel_size=3, strides=2, output_padding=2), "output_padding must be"),
    (Conv2DTranspose, dict(filters=2, kernel_size=3, output_padding=1), "strides=(1, 1), dilation_rate=(1, 1)"),
    (Conv2DTranspose, dict(filters=2, kernel_size=3, strides=2, output_padding=-1), "output_padding must be"),
])
def test_bad_arguments(layer_class, kwargs, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        layer_class(**kwargs)


def test_unknown_keyword_is_rejected():
    with pytest.raises(TypeError, match="data_fromat"):
        Conv2D(2, 3, data_fromat="channels_last")


def test_output_padding_below_dilation_is_allowed_at_stride_one():
    layer = Conv2DTranspose(2, 3, dilation_rate=2, output_padding=1)
    assert layer.compute_output_shape((None, 4, 4, 1)) == (None, 9, 9, 2)
