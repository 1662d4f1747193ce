"""Dense, Activation, Flatten, Reshape, Dropout and the activation layers: shapes, gradients, configs, errors."""
import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, check_backward
from gpunet import layers
from gpunet.layers.activations import get_activation
from gpunet.primitives import dropout as dropout_ops


def check_layer_gradients(layer, x, rng):
    """Gradient check of a float64 layer: the input and every trainable weight, against central differences."""
    layer.ensure_built((None, *x.shape[1:]))
    weights = [rng.standard_normal(w.shape) for w in layer.get_weights()]

    def forward(x, *ws):
        if ws:
            layer.set_weights(list(ws))
        return layer.forward(x, training=True)

    def backward(dy):
        dx = layer.backward(dy)
        return [dx, *layer.grads]

    check_backward(forward, backward, [x, *weights])


# -- Dense ----------------------------------------------------------------------------------

@pytest.mark.parametrize("input_shape, units, output_shape", [
    ((None, 5), 3, (None, 3)),
    ((None, 2, 4), 6, (None, 2, 6)),
    ((None, 2, 3, 1), 1, (None, 2, 3, 1)),
])
def test_dense_shapes(input_shape, units, output_shape, rng):
    layer = layers.Dense(units)
    symbolic = layer(gn.Input(input_shape[1:]))
    assert symbolic.shape == output_shape == layer.compute_output_shape(input_shape)
    assert [w.shape for w in layer.get_weights()] == [(input_shape[-1], units), (units,)]
    assert layer.weight_names == ["kernel", "bias"]
    assert layer.count_params() == input_shape[-1] * units + units
    y = layer(rng.standard_normal((2, *input_shape[1:])).astype(np.float32))
    assert y.shape == (2, *output_shape[1:]) and y.dtype == np.float32


@pytest.mark.reference   # float64 gradient / value check: numpy backend
@pytest.mark.parametrize("activation", [None, "relu", "tanh", "softmax", "elu"])
@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4)])
def test_dense_gradients(activation, shape, rng):
    check_layer_gradients(layers.Dense(3, activation=activation, dtype="float64"), rng.standard_normal(shape), rng)


@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_dense_without_bias_gradients_and_values(rng):
    layer = layers.Dense(2, use_bias=False, dtype="float64")
    x = rng.standard_normal((4, 3))
    check_layer_gradients(layer, x, rng)
    assert len(layer.weights) == 1 and len(layer.grads) == 1
    assert_close(layer(x), x @ layer.get_weights()[0])


@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_dense_softmax_exposes_its_logits_for_fusion(rng):
    layer = layers.Dense(4, activation="softmax", dtype="float64")
    x = rng.standard_normal((5, 3))
    layer.ensure_built((None, 3))
    probs = layer.forward(x, training=True)
    kernel, bias = layer.get_weights()
    assert layer.fusable_softmax and not layers.Dense(4, activation="relu").fusable_softmax
    assert_close(layer.logits, x @ kernel + bias)
    assert_close(probs.sum(axis=-1), np.ones(5))
    dlogits = rng.standard_normal((5, 4))
    dx = layer.backward_logits(dlogits)
    assert_close(dx, dlogits @ kernel.T)
    assert_close(layer.grads[0], x.T @ dlogits)
    assert_close(layer.grads[1], dlogits.sum(axis=0))


def test_frozen_dense_has_no_gradients(rng):
    layer = layers.Dense(2, trainable=False)
    layer(np.ones((1, 3), np.float32))
    assert layer.backward(np.ones((1, 2), np.float32)).shape == (1, 3) and layer.grads == []


def test_dense_config_round_trips():
    layer = layers.Dense(7, activation=layers.LeakyReLU(0.1), use_bias=False, name="head",
                         kernel_initializer=gn.initializers.RandomNormal(stddev=0.3), bias_initializer="ones")
    config = layer.get_config()
    assert config["units"] == 7 and config["use_bias"] is False and config["name"] == "head"
    again = layers.Dense.from_config(config)
    assert again.get_config() == config
    assert isinstance(again._activation, layers.LeakyReLU) and again._activation.negative_slope == 0.1
    assert layers.Dense(2).get_config()["activation"] == "linear"
    assert layers.Dense(2, activation="relu").get_config()["activation"] == "relu"


def test_dense_rejects_bad_inputs_and_settings():
    layer = layers.Dense(3)
    layer(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"Dense 'dense' expects inputs of shape \(batch, \.\.\., 5\); "
                                         r"received shape \(2, 4\)\."):
        layer(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"Dense 'dense_1' expects an input of rank >= 2 .*received shape \(None,\)"):
        layers.Dense(3).build((None,))
    with pytest.raises(ValueError, match=r"units must be a positive int; received 0"):
        layers.Dense(0)
    with pytest.raises(ValueError, match=r"Unknown activation 'swishy'; expected one of None, 'linear', 'relu', "):
        layers.Dense(3, activation="swishy")
    with pytest.raises(ValueError, match=r"kernel_initializer: Unknown initializer 'glorot'"):
        layers.Dense(3, kernel_initializer="glorot")
    with pytest.raises(TypeError, match="unexpected argument"):
        layers.Dense(3, activaton="relu")


# -- activation layers ----------------------------------------------------------------------

ACTIVATION_LAYERS = [
    lambda: layers.ReLU(dtype="float64"),
    lambda: layers.ReLU(max_value=0.8, negative_slope=0.2, threshold=0.3, dtype="float64"),
    lambda: layers.LeakyReLU(dtype="float64"),
    lambda: layers.ELU(alpha=0.7, dtype="float64"),
    lambda: layers.Sigmoid(dtype="float64"),
    lambda: layers.Tanh(dtype="float64"),
    lambda: layers.Softmax(dtype="float64"),
    lambda: layers.Softmax(axis=1, dtype="float64"),
    lambda: layers.Activation("sigmoid", dtype="float64"),
]
IDS = ["relu", "relu_general", "leaky_relu", "elu", "sigmoid", "tanh", "softmax", "softmax_axis1", "activation"]


@pytest.mark.reference   # float64 gradient / value check: numpy backend
@pytest.mark.parametrize("make", ACTIVATION_LAYERS, ids=IDS)
def test_activation_layer_gradients(make, rng):
    check_layer_gradients(make(), rng.standard_normal((2, 3, 4)), rng)


@pytest.mark.reference   # float64 gradient / value check: numpy backend
@pytest.mark.parametrize("make", ACTIVATION_LAYERS, ids=IDS)
def test_activation_layer_config_round_trips(make, rng):
    layer = make()
    again = type(layer).from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    x = rng.standard_normal((2, 5))
    assert_close(again(x), layer(x))


@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_activation_layer_values():
    x = np.array([[-2.0, 0.5, 3.0]])
    assert_close(layers.ReLU()(x), [[0, 0.5, 3]])
    assert_close(layers.ReLU(max_value=1.0)(x), [[0, 0.5, 1]])
    assert_close(layers.LeakyReLU()(x), [[-0.6, 0.5, 3]])
    assert_close(layers.Activation("linear")(x), x)
    assert_close(layers.Softmax()(np.array([[0.0, np.log(3.0)]])), [[0.25, 0.75]])


@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_softmax_fusion_protocol(rng):
    layer = layers.Softmax()
    z = rng.standard_normal((3, 4))
    layer(z)
    assert layer.fusable_softmax and layer.logits is z
    d = rng.standard_normal((3, 4))
    assert layer.backward_logits(d) is d
    assert layers.Activation("softmax").fusable_softmax and not layers.Activation("relu").fusable_softmax
    last_axis = layers.Softmax(axis=2)
    last_axis(rng.standard_normal((2, 3, 4)))
    assert last_axis.fusable_softmax
    middle_axis = layers.Softmax(axis=1)
    middle_axis(rng.standard_normal((2, 3, 4)))
    assert not middle_axis.fusable_softmax
    with pytest.raises(AttributeError, match="has no softmax activation"):
        layers.Dense(2).logits


def test_get_activation():
    assert get_activation(None) is None and get_activation("linear") is None
    expected = {"relu": layers.ReLU, "leaky_relu": layers.LeakyReLU, "elu": layers.ELU, "sigmoid": layers.Sigmoid,
                "tanh": layers.Tanh, "softmax": layers.Softmax}
    for name, cls in expected.items():
        assert type(get_activation(name)) is cls
    layer = layers.ELU(alpha=0.5)
    copy = get_activation(layer)   # a copy: the activation keeps its backward's values per user
    assert copy is not layer and type(copy) is layers.ELU and copy.get_config() == layer.get_config()
    with pytest.raises(ValueError, match=r"Unknown activation 'gelux'.*'leaky_relu', 'elu', 'sigmoid', 'tanh', 'softmax'"):
        get_activation("gelux")
    # Activations inside Dense do not use up the automatic names of standalone layers.
    layers.Dense(2, activation="relu")
    assert layers.ReLU().name == "re_lu"


def test_activation_layer_settings_are_validated():
    with pytest.raises(ValueError, match=r"max_value must be None or >= 0; received -1"):
        layers.ReLU(max_value=-1)
    with pytest.raises(ValueError, match=r"negative_slope must be >= 0; received -0.1"):
        layers.LeakyReLU(negative_slope=-0.1)
    with pytest.raises(ValueError, match=r"ReLU threshold must be >= 0; received -0.5"):   # as Keras
        layers.ReLU(threshold=-0.5)
    with pytest.raises(ValueError, match=r"Softmax 'softmax' expects an input with an axis 3; received shape \(2, 3\)"):
        layers.Softmax(axis=3)(np.zeros((2, 3)))


# -- Flatten and Reshape --------------------------------------------------------------------

@pytest.mark.parametrize("shape, expected", [((2, 3, 4, 5), (2, 60)), ((1, 7), (1, 7)), ((3,), (3, 1))])
def test_flatten(shape, expected, rng):
    layer = layers.Flatten()
    x = rng.standard_normal(shape)
    y = layer(x)
    assert y.shape == expected and layer.compute_output_shape((None, *shape[1:])) == (None, *expected[1:])
    assert np.array_equal(y.reshape(shape), x)       # C order: the last axis (channels) fastest
    assert np.array_equal(layer.backward(y), x)
    assert layer.compute_output_shape((None, None, 4)) == (None, None)


@pytest.mark.parametrize("target, shape, expected", [
    ((6,), (2, 2, 3), (2, 6)),
    ((-1, 2), (2, 2, 3), (2, 3, 2)),
    ((3, 1, -1), (1, 12), (1, 3, 1, 4)),
])
def test_reshape(target, shape, expected, rng):
    layer = layers.Reshape(target)
    x = rng.standard_normal(shape)
    y = layer(x)
    assert y.shape == expected == (shape[0], *layer.compute_output_shape((None, *shape[1:]))[1:])
    assert np.array_equal(layer.backward(y), x)
    assert layers.Reshape.from_config(layer.get_config()).get_config() == layer.get_config()


def test_reshape_errors():
    with pytest.raises(ValueError, match=r"at most one -1; received \(-1, -1\)"):
        layers.Reshape((-1, -1))
    with pytest.raises(ValueError, match=r"positive ints and at most one -1; received \(0, 2\)"):
        layers.Reshape((0, 2))
    with pytest.raises(ValueError, match=r"Reshape 'reshape\w*' expects inputs with 6 values per sample to fit "
                                         r"target_shape \(2, 3\); received shape \(4, 5\)"):
        layers.Reshape((2, 3))(np.zeros((4, 5)))
    built = layers.Reshape((2, 3))
    built(np.zeros((1, 6)))
    with pytest.raises(ValueError, match=r"6 values per sample .*received shape \(4, 5\)"):
        built.forward(np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"a multiple of 4 values per sample .* received shape \(None, 6\)"):
        layers.Reshape((-1, 4))(gn.Input((6,)))


# -- Dropout --------------------------------------------------------------------------------

def test_dropout_is_the_identity_outside_training(rng):
    layer = layers.Dropout(0.5)
    x = rng.standard_normal((4, 5))
    assert layer(x) is x
    assert layer.backward(x) is x


def test_dropout_in_training_keeps_the_rate_and_backpropagates_through_the_mask(rng):
    layer = layers.Dropout(0.25)
    x = np.ones((100, 100), np.float32)
    y = layer(x, training=True)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02 and np.allclose(y[kept], 1 / 0.75)
    dy = rng.standard_normal((100, 100)).astype(np.float32)
    assert_close(layer.backward(dy), dy * kept / 0.75, rtol=1e-6)


@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_dropout_masks_are_reproducible_with_set_random_seed():
    x = np.ones((8, 8))
    gn.utils.set_random_seed(3)
    first = [layers.Dropout(0.5)(x, training=True) for _ in range(2)]
    gn.utils.set_random_seed(3)
    second = [layers.Dropout(0.5)(x, training=True) for _ in range(2)]
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(first[0], first[1])    # each call draws a fresh seed


@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_dropout_with_a_seed_uses_seed_plus_call_count(rng):
    layer = layers.Dropout(0.3, seed=41)
    x = rng.standard_normal((5, 6))
    layer(x, training=True)
    layer(x, training=False)                         # inference calls do not count
    y = layer(x, training=True)
    assert np.array_equal(y, dropout_ops.dropout_forward(x, 0.3, 42)[0])
    assert layers.Dropout.from_config(layer.get_config()).get_config() == layer.get_config()


def test_dropout_rejects_bad_settings():
    with pytest.raises(ValueError, match=r"rate must be a number in \[0, 1\); received 1.5"):
        layers.Dropout(1.5)
    with pytest.raises(ValueError, match=r"seed must be None or a non-negative int; received -3"):
        layers.Dropout(0.5, seed=-3)
