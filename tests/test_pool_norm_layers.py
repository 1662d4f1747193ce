"""Pooling and BatchNormalization layers: shapes, configs, semantics, gradients, bad input."""
import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, check_backward
from gpunet import backend, layers

# (layer arguments, input shape without batch, output shape without batch), by Keras's rules.
POOL_SHAPES = [
    (dict(pool_size=2), (8, 8, 3), (4, 4, 3)),
    (dict(pool_size=2), (7, 5, 1), (3, 2, 1)),
    (dict(pool_size=2, padding="same"), (7, 5, 1), (4, 3, 1)),
    (dict(pool_size=3, strides=2), (7, 7, 2), (3, 3, 2)),
    (dict(pool_size=3, strides=1, padding="same"), (5, 6, 2), (5, 6, 2)),
    (dict(pool_size=(2, 3), strides=(1, 3), padding="valid"), (4, 9, 1), (3, 3, 1)),
    (dict(pool_size=3, strides=3, padding="SAME"), (4, 4, 1), (2, 2, 1)),
    (dict(pool_size=2), (None, None, 4), (None, None, 4)),
]


@pytest.mark.parametrize("cls", [layers.MaxPooling2D, layers.AveragePooling2D])
@pytest.mark.parametrize("kwargs, in_shape, out_shape", POOL_SHAPES)
def test_pool_output_shapes(cls, kwargs, in_shape, out_shape):
    layer = cls(**kwargs)
    assert layer.compute_output_shape((None, *in_shape)) == (None, *out_shape)
    if None not in in_shape:
        assert layer(gn.Input(in_shape)).shape == (None, *out_shape)
        assert layer(np.zeros((2, *in_shape), np.float32)).shape == (2, *out_shape)


def test_aliases_and_names():
    assert layers.MaxPool2D is layers.MaxPooling2D
    assert layers.AvgPool2D is layers.AveragePooling2D
    assert layers.GlobalAvgPool2D is layers.GlobalAveragePooling2D
    names = [layers.MaxPool2D().name, layers.MaxPooling2D().name, layers.AveragePooling2D().name,
             layers.GlobalAveragePooling2D().name, layers.BatchNormalization().name]
    assert names == ["max_pooling2d", "max_pooling2d_1", "average_pooling2d",
                     "global_average_pooling2d", "batch_normalization"]


def test_pool_defaults_and_config_round_trip():
    layer = layers.MaxPooling2D()
    assert (layer.pool_size, layer.strides, layer.padding) == ((2, 2), (2, 2), "valid")
    for cls, kwargs in [(layers.MaxPooling2D, dict(pool_size=(3, 2), strides=1, padding="same")),
                        (layers.AveragePooling2D, dict(pool_size=3, strides=(2, 1))),
                        (layers.GlobalAveragePooling2D, dict(keepdims=True))]:
        config = cls(**kwargs, name="p", dtype="float64").get_config()
        clone = cls.from_config(config)
        assert clone.get_config() == config and clone.name == "p"
    assert layers.AveragePooling2D.from_config(layers.AveragePooling2D(3, 2).get_config()).strides == (2, 2)


@pytest.mark.reference   # float64 gradient / value check: numpy backend
@pytest.mark.parametrize("cls", [layers.MaxPooling2D, layers.AveragePooling2D])
@pytest.mark.parametrize("kwargs, in_shape", [(dict(pool_size=2, strides=2), (2, 5, 4, 2)),
                                              (dict(pool_size=3, strides=2, padding="same"), (1, 5, 6, 1)),
                                              (dict(pool_size=2, strides=1), (1, 3, 3, 2))])
def test_pool_layer_gradient(rng, cls, kwargs, in_shape):
    layer = cls(**kwargs, dtype="float64")
    check_backward(lambda x: layer.forward(x, training=True), layer.backward, [rng.standard_normal(in_shape)])
    assert layer.grads == []


@pytest.mark.reference   # float64 gradient / value check: numpy backend
@pytest.mark.parametrize("keepdims, out_shape", [(False, (2, 3)), (True, (2, 1, 1, 3))])
def test_global_average_pooling(rng, keepdims, out_shape):
    layer = layers.GlobalAveragePooling2D(keepdims=keepdims, dtype="float64")
    x = rng.standard_normal((2, 4, 5, 3))
    y = layer(x)
    assert y.shape == out_shape
    assert_close(y.reshape(2, 3), x.mean(axis=(1, 2)), rtol=1e-12, atol=1e-12)
    assert layer(gn.Input((4, 5, 3))).shape == (None, *out_shape[1:])
    check_backward(lambda a: layer.forward(a), layer.backward, [x])


@pytest.mark.parametrize("cls", [layers.MaxPooling2D, layers.AveragePooling2D, layers.GlobalAveragePooling2D])
@pytest.mark.parametrize("shape", [(2, 8, 8), (2, 4, 4, 4, 1), (32, 784)])
def test_pool_wrong_rank_names_layer_and_shapes(cls, shape):
    layer = cls()
    message = rf"{cls.__name__} '{layer.name}' expects a 4-D input \(batch, height, width, channels\); " \
              rf"received shape \({shape[0]}, "
    with pytest.raises(ValueError, match=message):
        layer(np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match="expects a 4-D input"):
        cls()(gn.Input(shape[1:]))


@pytest.mark.parametrize("cls", [layers.MaxPooling2D, layers.AveragePooling2D])
@pytest.mark.parametrize("in_shape, pool_size", [((2, 2, 1), 3), ((5, 2, 3), (2, 3)), ((1, 8, 1), 2)])
def test_pool_larger_than_input_raises(cls, in_shape, pool_size):
    layer = cls(pool_size)
    with pytest.raises(ValueError, match=rf"'{layer.name}' expects height and width of at least the pool "
                                         rf"size .* received shape \(None, {in_shape[0]}, {in_shape[1]}"):
        layer(gn.Input(in_shape))
    with pytest.raises(ValueError, match=r"received shape \(4, "):
        cls(pool_size)(np.zeros((4, *in_shape), np.float32))


@pytest.mark.parametrize("kwargs, message", [
    (dict(pool_size=0), "pool_size must be positive"),
    (dict(pool_size=(2, 2, 2)), "pool_size must be an int or a tuple of 2 ints"),
    (dict(strides=(1, -1)), "strides must be positive"),
    (dict(padding="causal"), "padding must be 'valid' or 'same'"),
    (dict(padding=1), "padding must be 'valid' or 'same'"),
])
def test_pool_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        layers.MaxPooling2D(**kwargs)


# -- BatchNormalization ---------------------------------------------------------------------

def test_batch_norm_weights_in_keras_order():
    bn = layers.BatchNormalization()
    bn.build((None, 5, 5, 3))
    assert bn.weight_names == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.shape for w in bn.weights] == [(3,)] * 4
    assert [w.tolist() for w in bn.get_weights()] == [[1, 1, 1], [0, 0, 0], [0, 0, 0], [1, 1, 1]]
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2
    assert bn.count_params() == 12
    no_affine = layers.BatchNormalization(center=False, scale=False)
    no_affine.build((None, 4))
    assert no_affine.weight_names == ["moving_mean", "moving_variance"]
    only_scale = layers.BatchNormalization(center=False)
    only_scale.build((None, 4))
    assert only_scale.weight_names == ["gamma", "moving_mean", "moving_variance"]


def test_batch_norm_training_step_real_numbers():
    bn = layers.BatchNormalization(momentum=0.9, epsilon=1e-3)
    x = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 14.0], [4.0, 14.0]], dtype=np.float32)
    bn.build((None, 2))
    bn.set_weights([np.array([2.0, 1.0]), np.array([0.0, 1.0]), np.array([0.0, 0.0]), np.array([1.0, 1.0])])
    y = bn.forward(x, training=True)
    # batch: mean (2.5, 12), biased variance (1.25, 4)
    expected = np.stack([2 * (x[:, 0] - 2.5) / np.sqrt(1.251), (x[:, 1] - 12) / np.sqrt(4.001) + 1], axis=1)
    assert_close(y, expected, rtol=1e-5, atol=1e-6)
    _, _, moving_mean, moving_var = bn.get_weights()
    assert_close(moving_mean, [0.25, 1.2], rtol=1e-6)
    assert_close(moving_var, [0.9 + 0.125, 0.9 + 0.4], rtol=1e-6)
    bn.forward(x + 1, training=True)
    _, _, moving_mean, moving_var = bn.get_weights()
    assert_close(moving_mean, [0.9 * 0.25 + 0.35, 0.9 * 1.2 + 1.3], rtol=1e-6)
    assert_close(moving_var, [0.9 * 1.025 + 0.125, 0.9 * 1.3 + 0.4], rtol=1e-6)


@pytest.mark.parametrize("std", [1e-4, 1e-3])
def test_batch_norm_moving_variance_is_the_batch_variance_below_epsilon(kernel_backend, rng, std):
    # A variance far below epsilon must reach moving_variance intact (Keras stores the batch
    # variance itself); rebuilt from 1 / sqrt(var + epsilon) it was 1.7% off at std 1e-4.
    x = (0.5 + std * rng.standard_normal((4, 5, 7, 3))).astype(np.float32)
    expected = x.astype(np.float64).reshape(-1, 3).var(axis=0)
    for name in ("numpy", kernel_backend):
        with backend.use(name) as be:
            bn = layers.BatchNormalization(momentum=0.0, epsilon=1e-3)
            bn.forward(be.asarray(x, np.float32), training=True)
            assert_close(bn.get_weights()[3], expected, rtol=1e-5, atol=0, what=f"moving variance on {name}")


def test_batch_norm_inference_uses_moving_stats_and_leaves_them(rng):
    bn = layers.BatchNormalization(epsilon=0.01)
    x = rng.standard_normal((2, 3, 3, 2)).astype(np.float32)
    bn.build((None, 3, 3, 2))
    gamma, beta, mean, var = [np.array(v, np.float32) for v in ([1.5, -2.0], [0.5, 0.0], [0.2, -1.0], [4.0, 0.25])]
    bn.set_weights([gamma, beta, mean, var])
    y = bn(x)   # eager call: training=False
    assert_close(y, gamma * (x - mean) / np.sqrt(var + 0.01) + beta, rtol=1e-5, atol=1e-6)
    assert_close(bn.get_weights()[2], mean, rtol=0, atol=0)
    assert_close(bn.get_weights()[3], var, rtol=0, atol=0)


@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_frozen_batch_norm_runs_in_inference_mode(rng):
    bn = layers.BatchNormalization(trainable=False, dtype="float64")
    x = rng.standard_normal((4, 3)) * 5 + 2
    bn.build((None, 3))
    bn.set_weights([np.ones(3), np.zeros(3), np.full(3, 1.0), np.full(3, 4.0)])
    y = bn.forward(x, training=True)
    assert_close(y, (x - 1.0) / np.sqrt(4.001), rtol=1e-12, atol=1e-12)
    assert_close(bn.get_weights()[2], np.ones(3), rtol=0, atol=0)
    bn.backward(np.ones_like(x))
    assert bn.grads == [] and bn.trainable_weights == []


@pytest.mark.reference   # float64 gradient / value check: numpy backend
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4, 2), (1, 4, 3, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_layer_gradient(rng, shape, training):
    bn = layers.BatchNormalization(momentum=0.5, dtype="float64")
    bn.build((None, *shape[1:]))
    channels = shape[-1]
    bn.set_weights([np.ones(channels), np.zeros(channels), rng.standard_normal(channels),
                    rng.uniform(0.5, 2, channels)])

    def forward(x, gamma, beta):
        bn.gamma[...], bn.beta[...] = gamma, beta
        return bn.forward(x, training=training)

    def backward(dy):
        return [bn.backward(dy), *bn.grads]

    inputs = [rng.standard_normal(shape) * 2 + 1, rng.standard_normal(channels), rng.standard_normal(channels)]
    check_backward(forward, backward, inputs, rtol=1e-4, atol=1e-6)


def test_batch_norm_config_round_trip():
    bn = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, center=False, gamma_initializer="zeros",
                                   moving_variance_initializer=gn.initializers.Constant(2.0), name="bn")
    config = bn.get_config()
    assert config["moving_variance_initializer"] == {"class_name": "Constant", "config": {"value": 2.0}}
    clone = layers.BatchNormalization.from_config(config)
    assert clone.get_config() == config
    clone.build((None, 3))
    assert clone.weight_names == ["gamma", "moving_mean", "moving_variance"]
    assert [w.tolist() for w in clone.get_weights()] == [[0, 0, 0], [0, 0, 0], [2, 2, 2]]


@pytest.mark.parametrize("shape, message", [
    ((4,), r"expects an input of at least 2 dimensions \(batch, \.\.\., channels\); received shape \(4,\)"),
    ((4, 2), r"expects inputs with 3 channels in the last axis, as when built; received shape \(4, 2\)"),
    ((1, 2, 2, 5), r"expects inputs with 3 channels .* received shape \(1, 2, 2, 5\)"),
])
def test_batch_norm_bad_input_shapes(shape, message):
    bn = layers.BatchNormalization()
    bn.build((None, 3))
    with pytest.raises(ValueError, match=rf"BatchNormalization '{bn.name}' " + message):
        bn.forward(np.zeros(shape, np.float32), training=True)


@pytest.mark.parametrize("kwargs, message", [
    (dict(axis=1), "normalises the last axis only"),
    (dict(momentum=1.5), "momentum must be in"),
    (dict(epsilon=0), "epsilon must be positive"),
    (dict(gamma_initializer="twos"), "gamma_initializer: Unknown initializer 'twos'"),
    (dict(axis=(1, 2)), "axis must be an int"),
])
def test_batch_norm_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        layers.BatchNormalization(**kwargs)(gn.Input((4, 4, 3)))


def test_batch_norm_axis_naming_last_axis_explicitly_works():
    bn = layers.BatchNormalization(axis=3)
    y = bn(gn.Input((4, 4, 3)))
    assert y.shape == (None, 4, 4, 3) and bn.weights[0].shape == (3,)
