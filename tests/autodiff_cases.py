"""One table of gn.ops cases, written against a keras.ops-like namespace ``o`` so that the same
lambdas run on gn.ops (the tests) and on keras.ops under JAX (tests/autodiff_fixtures/make_jax.py,
which wrote the committed JAX gradients). Each case: name, function of (o, *inputs), and per
input a kind: "x" normal, "pos" in [0.5, 2], "prob" in [0.1, 0.9], "onehot" / "labels" (constants),
with its shape. Gradients are taken with respect to the "x", "pos" and "prob" inputs."""
import numpy as np

CASES = [
    ("add", lambda o, a, b: o.add(a, b), [("x", (3, 4)), ("x", (4,))]),
    ("subtract", lambda o, a, b: o.subtract(a, b), [("x", (2, 3)), ("x", (2, 1))]),
    ("multiply", lambda o, a, b: o.multiply(a, b), [("x", (2, 3, 4)), ("x", (3, 1))]),
    ("divide", lambda o, a, b: o.divide(a, b), [("x", (3, 4)), ("pos", (1, 4))]),
    ("power", lambda o, a, b: o.power(a, b), [("pos", (3, 4)), ("x", (3, 4))]),
    ("power_scalar", lambda o, a: o.power(a, 3.0), [("x", (5,))]),
    ("scalar_arithmetic", lambda o, a: o.subtract(1.0, o.divide(o.multiply(a, 2.0), 3.0)), [("x", (2, 3))]),
    ("negative", lambda o, a: o.negative(a), [("x", (2, 3))]),
    ("square", lambda o, a: o.square(a), [("x", (2, 3))]),
    ("sqrt", lambda o, a: o.sqrt(a), [("pos", (2, 3))]),
    ("exp", lambda o, a: o.exp(a), [("x", (2, 3))]),
    ("log", lambda o, a: o.log(a), [("pos", (2, 3))]),
    ("log1p", lambda o, a: o.log1p(a), [("pos", (2, 3))]),
    ("abs", lambda o, a: o.abs(a), [("x", (2, 3))]),
    ("erf", lambda o, a: o.erf(o.multiply(a, 1.5)), [("x", (3, 4))]),
    ("maximum", lambda o, a, b: o.maximum(a, b), [("x", (3, 4)), ("x", (4,))]),
    ("minimum", lambda o, a, b: o.minimum(a, b), [("x", (3, 1)), ("x", (3, 4))]),
    ("clip", lambda o, a: o.clip(a, -0.5, 0.5), [("x", (4, 5))]),
    ("where", lambda o, a, b: o.where(o.greater(a, 0.0), a, o.multiply(b, 2.0)), [("x", (3, 4)), ("x", (4,))]),
    ("sum", lambda o, a: o.sum(a, axis=1, keepdims=True), [("x", (2, 3, 4))]),
    ("mean", lambda o, a: o.mean(a, axis=(0, 2)), [("x", (2, 3, 4))]),
    ("max", lambda o, a: o.max(a, axis=-1), [("x", (3, 5))]),
    ("min", lambda o, a: o.min(a, axis=0), [("x", (4, 3))]),
    ("var", lambda o, a: o.var(a, axis=1), [("x", (3, 5))]),
    ("std", lambda o, a: o.std(a), [("x", (3, 5))]),
    ("logsumexp", lambda o, a: o.logsumexp(a, axis=-1), [("x", (3, 5))]),
    ("matmul", lambda o, a, b: o.matmul(a, b), [("x", (3, 4)), ("x", (4, 2))]),
    ("matmul_batched", lambda o, a, b: o.matmul(a, b), [("x", (2, 3, 4)), ("x", (4, 5))]),
    ("matmul_both_batched", lambda o, a, b: o.matmul(a, b), [("x", (2, 3, 4)), ("x", (2, 4, 2))]),
    ("matmul_broadcast_batch", lambda o, a, b: o.matmul(a, b), [("x", (2, 1, 3, 4)), ("x", (3, 4, 2))]),
    ("matmul_vector", lambda o, a, b: o.matmul(a, b), [("x", (4,)), ("x", (4, 3))]),
    ("reshape", lambda o, a: o.multiply(o.reshape(a, (3, -1)), o.reshape(a, (3, -1))), [("x", (2, 3, 2))]),
    ("transpose", lambda o, a: o.multiply(o.transpose(a, (2, 0, 1)), 1.5), [("x", (2, 3, 4))]),
    ("expand_squeeze", lambda o, a: o.squeeze(o.expand_dims(o.square(a), 1), axis=1), [("x", (3, 2))]),
    ("concatenate", lambda o, a, b: o.concatenate([a, o.square(b)], axis=1), [("x", (2, 3)), ("x", (2, 2))]),
    ("stack", lambda o, a, b: o.stack([a, o.exp(b)], axis=1), [("x", (2, 3)), ("x", (2, 3))]),
    ("split", lambda o, a: o.multiply(o.split(a, 2, axis=1)[0], o.split(a, 2, axis=1)[1]), [("x", (3, 4))]),
    ("slicing", lambda o, a: o.square(a[1:, ::2]), [("x", (3, 5))]),
    ("take", lambda o, a: o.take(a, np.array([2, 0, 2]), axis=1), [("x", (3, 4))]),
    ("cast", lambda o, a: o.multiply(o.cast(o.greater(a, 0.0), "float32"), a), [("x", (3, 4))]),
    ("relu", lambda o, a: o.relu(a), [("x", (3, 4))]),
    ("sigmoid", lambda o, a: o.sigmoid(a), [("x", (3, 4))]),
    ("tanh", lambda o, a: o.tanh(a), [("x", (3, 4))]),
    ("softmax", lambda o, a: o.softmax(a, axis=-1), [("x", (3, 4))]),
    ("softmax_axis0", lambda o, a: o.softmax(a, axis=0), [("x", (3, 4))]),
    ("log_softmax", lambda o, a: o.log_softmax(a, axis=-1), [("x", (3, 4))]),
    ("gelu", lambda o, a: o.gelu(a), [("x", (3, 4))]),
    ("gelu_exact", lambda o, a: o.gelu(a, approximate=False), [("x", (3, 4))]),
    ("silu", lambda o, a: o.silu(a), [("x", (3, 4))]),
    ("conv", lambda o, a, w: o.conv(a, w, strides=2, padding="same"), [("x", (1, 5, 5, 2)), ("x", (3, 3, 2, 3))]),
    ("conv_dilated", lambda o, a, w: o.conv(a, w, dilation_rate=2), [("x", (2, 6, 5, 1)), ("x", (2, 2, 1, 2))]),
    ("conv_transpose", lambda o, a, w: o.conv_transpose(a, w, strides=2, padding="same"),
     [("x", (1, 3, 3, 2)), ("x", (3, 3, 4, 2))]),
    ("max_pool", lambda o, a: o.max_pool(a, (2, 2), strides=(2, 2)), [("x", (2, 4, 5, 3))]),
    ("average_pool", lambda o, a: o.average_pool(a, (3, 3), strides=(2, 2), padding="same"), [("x", (1, 5, 5, 2))]),
    ("batch_normalization", lambda o, a, m, v, b, g: o.batch_normalization(a, m, v, axis=-1, offset=b, scale=g),
     [("x", (4, 3)), ("x", (3,)), ("pos", (3,)), ("x", (3,)), ("x", (3,))]),
    ("binary_crossentropy", lambda o, t, p: o.binary_crossentropy(t, p), [("onehot", (4, 3)), ("prob", (4, 3))]),
    ("binary_crossentropy_logits", lambda o, t, p: o.binary_crossentropy(t, p, from_logits=True),
     [("onehot", (4, 3)), ("x", (4, 3))]),
    ("categorical_crossentropy", lambda o, t, p: o.categorical_crossentropy(t, p),
     [("onehot", (4, 3)), ("prob", (4, 3))]),
    ("categorical_crossentropy_logits", lambda o, t, p: o.categorical_crossentropy(t, p, from_logits=True),
     [("onehot", (4, 3)), ("x", (4, 3))]),
    ("sparse_categorical_crossentropy", lambda o, t, p: o.sparse_categorical_crossentropy(t, p, from_logits=True),
     [("labels", (4, 3)), ("x", (4, 3))]),
]

DIFFERENTIABLE = ("x", "pos", "prob")


def make_inputs(name, specs, dtype=np.float64):
    """The case's inputs, the same on every run (seeded by the case name)."""
    rng = np.random.default_rng(sum(map(ord, name)))
    out = []
    for kind, shape in specs:
        if kind == "x":
            value = rng.standard_normal(shape)
        elif kind == "pos":
            value = rng.uniform(0.5, 2.0, shape)
        elif kind == "prob":
            value = rng.uniform(0.1, 0.9, shape)
        elif kind == "onehot":
            value = np.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])]
        else:   # labels for outputs of `shape`
            value = rng.integers(0, shape[-1], shape[:-1]).astype(np.int32)
        out.append(value.astype(dtype) if kind != "labels" else value)
    return out


def output_gradient(name, shape):
    return np.random.default_rng(sum(map(ord, name)) + 1).standard_normal(shape)
