"""The tape with several outputs per node (call() layers and fused layers returning lists) and
subclassed models whose call() takes a list of inputs."""
import numpy as np
import pytest

import gpunet as gn
from gpunet import ops


class SplitHalves(gn.layers.Layer):
    """call() returning two tensors: the first half of the features scaled by w, the second half squared."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1] // 2,), initializer="ones", name="w")

    def call(self, inputs):
        half = inputs.shape[-1] // 2
        return [inputs[:, :half] * self.w, ops.square(inputs[:, half:])]


class FusedSplit(gn.layers.Layer):
    """A layer with a hand-written forward / backward that returns two arrays: x * 3 and x + 1."""

    def forward(self, x, training=False):
        return [x * 3.0, x + 1.0]

    def backward(self, dy):
        self.grads = []
        return dy[0] * 3.0 + dy[1]


def _x(shape=(3, 4), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_call_layer_with_two_outputs_on_a_tape():
    x = _x()
    layer = SplitHalves()
    layer(x)
    layer.set_weights([np.array([2.0, -1.0], np.float32)])
    with gn.GradientTape() as tape:
        tx = ops.convert_to_tensor(x)
        tape.watch(tx)
        a, b = layer(tx)
        loss = ops.sum(a) + 0.5 * ops.sum(b)
    dx, dw = tape.gradient(loss, [tx, layer.w])
    # d/dx: w on the first half, x on the second (0.5 * 2x); d/dw: the column sums of the first half
    expected = np.concatenate([np.broadcast_to([2.0, -1.0], (3, 2)), x[:, 2:]], axis=1)
    np.testing.assert_allclose(ops.convert_to_numpy(dx), expected, rtol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(dw), x[:, :2].sum(axis=0), rtol=1e-6)


def test_an_unused_output_gets_zero_gradient():
    x = _x()
    layer = SplitHalves()
    with gn.GradientTape() as tape:
        tx = ops.convert_to_tensor(x)
        tape.watch(tx)
        _, b = layer(tx)
        loss = ops.sum(b)
    dx = ops.convert_to_numpy(tape.gradient(loss, tx))
    np.testing.assert_allclose(dx[:, :2], 0.0)
    np.testing.assert_allclose(dx[:, 2:], 2 * x[:, 2:], rtol=1e-6)


def test_fused_layer_with_two_outputs_on_a_tape():
    x = _x()
    with gn.GradientTape() as tape:
        tx = ops.convert_to_tensor(x)
        tape.watch(tx)
        a, b = FusedSplit()(tx)
        loss = ops.sum(a * a) + ops.sum(b)
    dx = ops.convert_to_numpy(tape.gradient(loss, tx))
    np.testing.assert_allclose(dx, 3.0 * (2 * 3.0 * x) + 1.0, rtol=1e-5)


def test_layer_forward_backward_contract_with_two_outputs():
    """forward(training=True) keeps a record; backward takes one gradient per output."""
    x = _x()
    layer = SplitHalves()
    layer.build(x.shape)
    a, b = layer.forward(x, training=True)
    dx = layer.backward([np.ones_like(a), np.ones_like(b)])
    np.testing.assert_allclose(dx, np.concatenate([np.ones((3, 2)), 2 * x[:, 2:]], axis=1), rtol=1e-6)
    np.testing.assert_allclose(layer.grads[0], x[:, :2].sum(axis=0), rtol=1e-6)
    layer.forward(x, training=True)
    with pytest.raises(ValueError, match="one gradient per output \\(2\\)"):
        layer.backward([np.ones_like(a)])


class TwoInputs(gn.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.left = gn.layers.Dense(8, activation="relu")
        self.right = gn.layers.Dense(8, activation="relu")
        self.halves = SplitHalves()
        self.head = gn.layers.Dense(1)

    def call(self, inputs):
        x, z = inputs
        a, b = self.halves(ops.concatenate([self.left(x), self.right(z)], axis=-1))
        return self.head(ops.concatenate([a, b], axis=-1))


def _two_input_data(n=64):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 5)).astype(np.float32)
    z = rng.standard_normal((n, 3)).astype(np.float32)
    return x, z, (x[:, :1] * 2 - z[:, 1:2]).astype(np.float32)


def test_subclassed_model_with_two_inputs_fits_predicts_and_reloads(tmp_path):
    x, z, y = _two_input_data()
    model = TwoInputs()
    model.compile(optimizer=gn.optimizers.Adam(0.02), loss="mse")
    history = model.fit([x, z], y, epochs=12, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]
    assert model.input_shape == [(None, 5), (None, 3)] and model.output_shape == (None, 1)
    predicted = model.predict([x, z], verbose=0)
    assert predicted.shape == (64, 1)
    model.save_weights(tmp_path / "two.weights.h5")
    again = TwoInputs()
    again.build([(None, 5), (None, 3)])
    again.load_weights(tmp_path / "two.weights.h5")
    np.testing.assert_allclose(again.predict([x, z], verbose=0), predicted, rtol=1e-5, atol=1e-6)


def test_subclassed_model_refuses_a_different_input_count():
    x, z, y = _two_input_data(8)
    model = TwoInputs()
    model.predict([x, z], verbose=0)
    with pytest.raises(ValueError, match="takes 2 input"):
        model.predict([x, z, z], verbose=0)


class Holder(gn.layers.Layer):
    """A call() layer whose only weights are a held Dense's, with a regularizer and a constraint."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = gn.layers.Dense(3, kernel_regularizer=gn.regularizers.L2(0.1), activity_regularizer="l1",
                                     kernel_constraint=gn.constraints.NonNeg())

    def call(self, inputs):
        return self.inner(inputs)


def test_held_layers_regularizers_and_constraints_count_as_in_a_plain_model():
    x = _x((8, 4), seed=1)
    y = _x((8, 3), seed=2)
    inputs = gn.Input((4,))
    held = gn.Model(inputs, Holder()(inputs))
    inputs = gn.Input((4,))
    plain = gn.Model(inputs, gn.layers.Dense(3, kernel_regularizer=gn.regularizers.L2(0.1), activity_regularizer="l1",
                                             kernel_constraint=gn.constraints.NonNeg())(inputs))
    plain.set_weights(held.get_weights())
    losses = {}
    for name, model in (("held", held), ("plain", plain)):
        model.compile(optimizer=gn.optimizers.SGD(0.1), loss="mse")
        losses[name] = [model.train_on_batch(x, y) for _ in range(3)]
    np.testing.assert_allclose(losses["held"], losses["plain"], rtol=1e-5)
    penalty_free = float(held.evaluate(x, y, verbose=0)) - float(gn.ops.convert_to_numpy(gn.ops.sum(held.losses)))
    assert penalty_free > 0 and len(held.losses) == 2        # the kernel's L2 and the output's L1
    np.testing.assert_allclose(held.get_weights()[0], plain.get_weights()[0], rtol=1e-5, atol=1e-7)
    assert held.get_weights()[0].min() >= 0.0       # NonNeg applied to the held kernel after each step


def test_bfloat16_tensors_are_floats_in_gn_ops():
    """ml_dtypes' bfloat16 has NumPy kind "V": gn.ops must still keep it (x * 2.0, exp, mean) and
    promote bfloat16 with float16 to float32, as Keras does."""
    import ml_dtypes
    bf16 = np.dtype(ml_dtypes.bfloat16)
    x = ops.convert_to_tensor(np.array([1.0, 2.0, 3.0], bf16))
    half = ops.convert_to_tensor(np.array([1.0, 2.0, 3.0], np.float16))
    assert (x * 2.0).dtype == bf16 and ops.exp(x).dtype == bf16 and ops.mean(x).dtype == bf16
    assert (x + half).dtype == np.float32
    with gn.GradientTape() as tape:
        tape.watch(x)
        loss = ops.sum(ops.square(x))
    grad = tape.gradient(loss, x)
    assert grad.dtype == bf16
    np.testing.assert_array_equal(ops.convert_to_numpy(grad).astype(np.float32), [2.0, 4.0, 6.0])
