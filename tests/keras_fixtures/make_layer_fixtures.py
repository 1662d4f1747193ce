"""Write Keras's outputs and gradients for single layers (issue 14's layers), once, with real Keras.

Not run in CI, not collected by pytest (gpunet does not depend on Keras). Run from the repository
root as::

    KERAS_BACKEND=jax python tests/keras_fixtures/make_layer_fixtures.py

(Keras 3.15, JAX CPU backend.) For each case ``<name>`` it writes into ``layers/``:

- ``<name>.npz``: ``x0, x1, ...`` the inputs (fixed seeds), ``dy`` a random upstream gradient,
  ``y`` = the layer's output, ``dx0, ...`` = d(sum(y * dy)) / d(inputs), ``w0, ...`` =
  ``layer.get_weights()`` (non-trivial values), ``g0, ...`` = the gradients of the trainable
  weights, in ``layer.trainable_weights`` order; and ``config`` = the layer's ``get_config()``
  as JSON.
- ``<name>.weights.h5`` for a case with weights: ``model.save_weights`` of the one-layer
  Sequential, so that gpunet reads the file Keras writes for that layer.

And ``issue14_model.keras`` (``model.save``) with ``issue14_model.io.npz`` (``x``, ``y =
model.predict(x)``): one functional model using every layer and several activations above, so
that gpunet's ``load_model`` is checked on Keras's own configs of them. (The reverse, Keras
loading the file gpunet writes back, was checked by hand with Keras 3.15.1: identical outputs.)
"""
import functools
import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "layers")

ACTIVATIONS = ["gelu", "silu", "swish", "softplus", "softsign", "hard_sigmoid", "hard_silu", "hard_swish",
               "mish", "relu6", "selu", "exponential"]

# name -> (layer factory, per-sample input shapes)
CASES = {f"act_{a}": (functools.partial(layers.Activation, a), [(3, 5, 4)]) for a in ACTIVATIONS}
CASES.update({
    "act_gelu_approximate": (lambda: layers.Activation(functools.partial(keras.activations.gelu, approximate=True)),
                             [(3, 5, 4)]),
    "dense_gelu": (lambda: layers.Dense(3, activation="gelu"), [(4,)]),
    "multiply": (layers.Multiply, [(3, 4, 2)] * 3),
    "subtract": (layers.Subtract, [(3, 4, 2)] * 2),
    "average": (layers.Average, [(3, 4, 2)] * 3),
    "maximum": (layers.Maximum, [(3, 4, 2)] * 3),
    "minimum": (layers.Minimum, [(3, 4, 2)] * 2),
    "cropping2d": (lambda: layers.Cropping2D(((1, 2), (0, 1))), [(6, 5, 3)]),
    "cropping1d": (lambda: layers.Cropping1D((2, 1)), [(7, 3)]),
    "global_max_pooling2d": (layers.GlobalMaxPooling2D, [(4, 5, 3)]),
    "global_max_pooling2d_keepdims": (lambda: layers.GlobalMaxPooling2D(keepdims=True), [(4, 5, 3)]),
    "global_average_pooling1d": (layers.GlobalAveragePooling1D, [(6, 3)]),
    "global_max_pooling1d_keepdims": (lambda: layers.GlobalMaxPooling1D(keepdims=True), [(6, 3)]),
    "depthwise_conv2d": (lambda: layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), [(6, 5, 3)]),
    "depthwise_conv2d_strided": (lambda: layers.DepthwiseConv2D((3, 2), strides=2, activation="relu"), [(7, 6, 2)]),
    "depthwise_conv2d_dilated": (lambda: layers.DepthwiseConv2D(3, dilation_rate=2, padding="same"), [(7, 6, 2)]),
    "separable_conv2d": (lambda: layers.SeparableConv2D(5, 3, padding="same", depth_multiplier=2), [(6, 5, 3)]),
    "separable_conv2d_strided": (lambda: layers.SeparableConv2D(4, 3, strides=2, use_bias=False), [(7, 7, 2)]),
    "conv2d_groups": (lambda: layers.Conv2D(6, 3, groups=2, padding="same"), [(5, 5, 4)]),
    "conv2d_groups_3": (lambda: layers.Conv2D(3, 2, groups=3, strides=2), [(6, 7, 6)]),
    "conv1d": (lambda: layers.Conv1D(4, 3, padding="same"), [(9, 3)]),
    "conv1d_causal": (lambda: layers.Conv1D(3, 3, padding="causal", dilation_rate=2), [(9, 2)]),
    "conv1d_strided": (lambda: layers.Conv1D(3, 2, strides=2, activation="tanh"), [(9, 2)]),
    "conv1d_transpose": (lambda: layers.Conv1DTranspose(3, 3, strides=2, padding="same"), [(5, 2)]),
    "conv1d_transpose_valid": (lambda: layers.Conv1DTranspose(2, 3, strides=2, output_padding=1), [(4, 3)]),
    "layer_normalization": (layers.LayerNormalization, [(3, 4, 6)]),
    "layer_normalization_rms": (lambda: layers.LayerNormalization(rms_scaling=True), [(3, 6)]),
    "layer_normalization_nocenter": (lambda: layers.LayerNormalization(center=False, epsilon=1e-5), [(5,)]),
    "group_normalization": (lambda: layers.GroupNormalization(groups=2), [(3, 4, 6)]),
    "group_normalization_default": (lambda: layers.GroupNormalization(), [(2, 3, 32)]),
    "prelu": (layers.PReLU, [(3, 4, 2)]),
    "prelu_shared": (lambda: layers.PReLU(shared_axes=[1, 2]), [(3, 4, 2)]),
})


def nontrivial(layer, rng):
    """Every weight random: fresh zeros (bias, PReLU alpha, beta) would hide a swapped weight."""
    layer.set_weights([rng.normal(0.0, 0.5, w.shape).astype("float32") for w in layer.get_weights()])


def make_case(name, seed):
    factory, shapes = CASES[name]
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    inputs = [keras.Input(s) for s in shapes]
    layer = factory()
    out = layer(inputs if len(inputs) > 1 else inputs[0])
    model = keras.Model(inputs, out)
    nontrivial(layer, rng)
    xs = [(rng.standard_normal((2, *s)) * 2).astype("float32") for s in shapes]
    y = np.asarray(model(xs if len(xs) > 1 else xs[0]))
    dy = rng.standard_normal(y.shape).astype("float32")
    trainable = [v.value for v in model.trainable_variables]
    fixed = [v.value for v in model.non_trainable_variables]

    def loss(tv, xs_):
        y_, _ = model.stateless_call(tv, fixed, xs_ if len(xs_) > 1 else xs_[0])
        return jnp.sum(y_ * dy)

    gw, gx = jax.grad(loss, argnums=(0, 1))(trainable, [jnp.asarray(x) for x in xs])
    arrays = {f"x{i}": x for i, x in enumerate(xs)}
    arrays.update({f"dx{i}": np.asarray(g) for i, g in enumerate(gx)})
    arrays.update({f"w{i}": w for i, w in enumerate(layer.get_weights())})
    arrays.update({f"g{i}": np.asarray(g) for i, g in enumerate(gw)})
    try:
        config = layer.get_config()
    except TypeError:   # Keras cannot serialize functools.partial(gelu, approximate=True)
        config = {}
    np.savez(os.path.join(OUT, f"{name}.npz"), y=y, dy=dy, config=json.dumps(config, default=str), **arrays)
    if layer.weights:
        seq = keras.Sequential([keras.Input(shapes[0]), layer])
        seq.save_weights(os.path.join(OUT, f"{name}.weights.h5"))
    print(name, [x.shape for x in xs], "->", y.shape, len(layer.weights), "weights")


def make_issue14_model():
    keras.backend.clear_session()
    keras.utils.set_random_seed(5)
    inp = keras.Input((8, 8, 3))
    h = layers.SeparableConv2D(6, 3, padding="same", activation="gelu")(inp)
    h = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="swish")(h)
    h = layers.Conv2D(6, 1, groups=3)(h)
    h = layers.GroupNormalization(groups=3)(h)
    h = layers.PReLU(shared_axes=[1, 2])(h)
    h = layers.SpatialDropout2D(0.2)(h)
    h = layers.Cropping2D(1)(h)
    a, b = layers.GlobalMaxPooling2D()(h), layers.GlobalAveragePooling2D()(h)
    h = layers.concatenate([layers.maximum([a, b]), layers.subtract([a, b]), layers.multiply([a, b]),
                            layers.average([a, b]), layers.minimum([a, b])])
    h = layers.Reshape((30, 1))(h)
    h = layers.Conv1D(4, 3, padding="causal", activation="mish")(h)
    h = layers.Conv1DTranspose(2, 3, strides=2, padding="same")(h)
    h = layers.Cropping1D((1, 1))(h)
    h = layers.LayerNormalization()(h)
    h = layers.GlobalMaxPooling1D()(h)
    model = keras.Model(inp, layers.Dense(2, activation="selu")(h))
    for v in model.weights:
        shift = 1.0 if "gamma" in v.path else 0.0
        v.assign(np.random.default_rng(1).normal(0, 0.3, v.shape).astype("float32") + shift)
    x = np.random.default_rng(2).standard_normal((2, 8, 8, 3)).astype("float32")
    model.save(os.path.join(OUT, "issue14_model.keras"))
    np.savez(os.path.join(OUT, "issue14_model.io.npz"), x=x, y=model.predict(x, verbose=0))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    print("keras", keras.__version__, "backend", keras.backend.backend())
    for index, case in enumerate(CASES):
        make_case(case, seed=1000 + index)
    make_issue14_model()
