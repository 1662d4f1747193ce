"""Keras's ways of extending, on the tape: Layer.call() with build / add_weight, sublayers,
Lambda, subclassed models, Python-function losses and metrics, add_loss, custom training loops,
saving, summary; and the tape's errors."""
import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, check_backward
from gpunet import ops


class Scale(gn.layers.Layer):
    """y = x * scale + shift, per channel."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")
        self.shift = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="shift")

    def call(self, inputs):
        return inputs * self.scale + self.shift


class Gate(gn.layers.Layer):
    """A sublayer inside call(): x * sigmoid(dense(x)), then the mean over the last axis (shape changes)."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = gn.layers.Dense(units, dtype=self.dtype_policy)

    def call(self, inputs, training=None):
        return ops.mean(inputs * ops.sigmoid(self.dense(inputs)), axis=-1, keepdims=True)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _data(n=32, features=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    return x, (x @ rng.standard_normal((features, 1))).astype(np.float32)


def test_call_layer_gradients_match_finite_differences():
    with gn.backend.use("numpy"):
        layer = Gate(3, dtype="float64")
        x = np.random.default_rng(1).standard_normal((2, 3))
        layer(x)    # the sublayer builds on the first call, as in Keras
        weights = layer.get_weights()

        def forward(x, kernel, bias):
            layer.set_weights([kernel, bias])
            return layer.forward(x, training=True)

        def backward(dy):
            return [layer.backward(dy), *layer.grads]
        check_backward(forward, backward, [x, *weights])


def test_call_layers_in_sequential_fit_and_summary():
    x, y = _data()
    model = gn.Sequential([gn.Input((4,)), Scale(), Gate(4), gn.layers.Dense(1)])
    assert model.layers[1].compute_output_shape((None, 4)) == (None, 1)
    lines = []
    model.summary(print_fn=lines.append)
    assert any("gate (Gate)" in line and "(None, 1)" in line and "20" in line for line in lines)
    model.compile(optimizer=gn.optimizers.Adam(0.05), loss="mse")
    history = model.fit(x, y, epochs=10, batch_size=8, verbose=0).history["loss"]
    assert history[-1] < 0.9 * history[0]
    assert model.layers[0].get_weights()[0].tolist() != [1.0] * 4   # the tape layer's weights moved


def test_functional_model_mixes_tape_and_fused_layers_and_reloads(tmp_path):
    inputs = gn.Input((4,))
    hidden = gn.layers.Dense(6, activation="relu")(inputs)
    outputs = gn.layers.Add()([Scale()(gn.layers.Dense(1)(hidden)), Gate(6)(hidden)])
    model = gn.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "mixed.h5"
    model.save(path)
    loaded = gn.models.load_model(path, custom_objects={"Scale": Scale, "Gate": Gate})
    assert_close(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_registered_layer_loads_without_custom_objects(tmp_path):
    @gn.saving.register_keras_serializable(package="tests")
    class Doubler(gn.layers.Layer):
        def call(self, inputs):
            return inputs * 2.0
    model = gn.Sequential([gn.Input((3,)), Doubler(), gn.layers.Dense(2)])
    model.save(tmp_path / "doubler.h5")
    loaded = gn.models.load_model(tmp_path / "doubler.h5")
    x = np.ones((2, 3), np.float32)
    assert isinstance(loaded.layers[0], Doubler)
    assert_close(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


class TwoBranch(gn.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.encode = gn.layers.Dense(8, activation="relu")
        self.gate = Gate(8)
        self.heads = [gn.layers.Dense(1), gn.layers.Dense(1)]

    def call(self, inputs, training=None):
        h = self.encode(inputs)
        return self.heads[0](h) + self.heads[1](h) * self.gate(h)


def test_subclassed_model_trains_and_saves_weights(tmp_path):
    x, y = _data()
    model = TwoBranch()
    model.compile(optimizer=gn.optimizers.Adam(0.02), loss="mse")
    history = model.fit(x, y, epochs=6, batch_size=8, verbose=0).history["loss"]
    assert history[-1] < 0.8 * history[0]
    assert [layer.name for layer in model.layers] == ["dense", "gate", "dense_2", "dense_3"]
    assert len(model.trainable_weights) == 2 + 2 + 2 + 2
    model.save_weights(tmp_path / "two.weights.h5")
    other = TwoBranch()
    other.build((None, 4))
    other.load_weights(tmp_path / "two.weights.h5")
    assert_close(other.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_custom_training_loop_with_gradient_tape():
    x, y = _data()
    model = TwoBranch()
    optimizer = gn.optimizers.SGD(0.05)
    losses = []
    for _ in range(10):
        with gn.GradientTape() as tape:
            loss = ops.mean(ops.square(model(x, training=True) - y))
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(zip(grads, model.trainable_weights))
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0]


def test_function_loss_and_metric_match_the_built_in():
    def my_mse(y_true, y_pred):
        return ops.mean(ops.square(y_pred - y_true), axis=-1)
    x, y = _data()
    pred = np.random.default_rng(3).standard_normal(y.shape).astype(np.float32)
    custom, built_in = gn.losses.get(my_mse), gn.losses.get("mse")
    value, grad = custom.compute(y, gn.backend.current().asarray(pred))
    expected_value, expected_grad = built_in.compute(y, gn.backend.current().asarray(pred))
    assert abs(value - expected_value) < 1e-5
    assert_close(gn.backend.current().to_numpy(grad), gn.backend.current().to_numpy(expected_grad))
    model = gn.Sequential([gn.Input((4,)), gn.layers.Dense(1)])
    model.compile(optimizer="sgd", loss=my_mse, metrics=[my_mse, "mae"])
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert abs(logs["loss"] - logs["my_mse"]) < 1e-5


def test_function_loss_with_sample_weight_matches_the_built_in():
    """A weighted function loss reduces as Keras does: sum(w * values) / values.size."""
    def my_mse(y_true, y_pred):
        return ops.mean(ops.square(y_pred - y_true), axis=-1)
    x, y = _data()
    pred = gn.backend.current().asarray(np.random.default_rng(4).standard_normal(y.shape).astype(np.float32))
    weights = np.random.default_rng(5).uniform(0.0, 2.0, len(y)).astype(np.float32)
    value, grad = gn.losses.get(my_mse).compute(y, pred, weights)
    expected_value, expected_grad = gn.losses.get("mse").compute(y, pred, weights)
    assert abs(value - expected_value) < 1e-5 * max(1.0, abs(expected_value))
    assert_close(gn.backend.current().to_numpy(grad), gn.backend.current().to_numpy(expected_grad))
    model = gn.Sequential([gn.Input((4,)), gn.layers.Dense(1)])
    model.compile(optimizer="sgd", loss=my_mse)
    weighted = model.evaluate(x, y, sample_weight=weights, verbose=0)
    model.compile(optimizer="sgd", loss="mse")
    assert abs(weighted - model.evaluate(x, y, sample_weight=weights, verbose=0)) < 1e-5


def test_add_loss_joins_the_training_loss():
    class Penalised(gn.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 1), initializer="ones", name="w")

        def call(self, inputs):
            self.add_loss(ops.sum(ops.square(self.w)) * 10.0)
            return ops.matmul(inputs, self.w)
    x, y = _data()
    model = gn.Sequential([gn.Input((4,)), Penalised()])
    model.compile(optimizer=gn.optimizers.SGD(0.01), loss="mse")
    plain = gn.losses.get("mse")(y, model.predict(x, verbose=0))
    first = model.train_on_batch(x, y)
    assert abs(first - (plain + 40.0)) < 1e-3      # 10 * sum(ones(4)^2) added
    for _ in range(20):
        model.train_on_batch(x, y)
    assert np.abs(model.get_weights()[0]).max() < 0.2   # the penalty pulls the weights to 0


def test_lambda_layer_in_a_model():
    model = gn.Sequential([gn.Input((3,)), gn.layers.Lambda(lambda t: ops.concatenate([t, ops.square(t)], axis=-1)),
                           gn.layers.Dense(1)])
    assert model.layers[0].compute_output_shape((None, 3)) == (None, 6)
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    assert np.isfinite(model.train_on_batch(x, np.ones((8, 1), np.float32)))


# -- errors ---------------------------------------------------------------------------------------

def test_gradient_for_a_tensor_not_on_the_tape():
    outside = ops.ones((3,))
    with gn.GradientTape() as tape:
        x = ops.convert_to_tensor(np.arange(3.0), dtype="float32")
        tape.watch(x)
        y = ops.sum(x * x)
    with pytest.raises(ValueError, match="source 1 .* is not on this tape"):
        tape.gradient(y, [x, outside])


def test_non_differentiable_op_on_the_gradient_path_is_named():
    x = ops.convert_to_tensor(np.array([[1.0, 3.0, 2.0]]), dtype="float32")
    with gn.GradientTape() as tape:
        tape.watch(x)
        y = ops.sum(ops.cast(ops.argmax(x, axis=-1), "float32") * ops.sum(x))
    with pytest.raises(ValueError, match="goes through 'argmax', which is not differentiable"):
        tape.gradient(y, x)


def test_in_place_write_to_a_saved_tensor_is_detected():
    x = ops.convert_to_tensor(np.array([1.0, 2.0]), dtype="float32")
    with gn.GradientTape() as tape:
        tape.watch(x)
        y = ops.sum(ops.square(x))
    x[0] = 5.0
    with pytest.raises(RuntimeError, match="'square' saved .* modified in place"):
        tape.gradient(y, x)


def test_tensors_of_two_backends_do_not_mix():
    with gn.backend.use("numpy"):
        a = ops.ones((2,))
    with gn.backend.use("cudasim"):
        with pytest.raises(ValueError, match="add: received a tensor of the 'numpy' backend while the 'cudasim'"):
            ops.add(a, 1.0)


def test_non_persistent_tape_gives_one_gradient_and_persistent_more():
    x = ops.convert_to_tensor(np.array([1.0, 2.0]), dtype="float32")
    with gn.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y = ops.sum(x * x)
    assert_close(tape.gradient(y, x).numpy(), [2.0, 4.0])
    assert_close(tape.gradient(y, x).numpy(), [2.0, 4.0])
    with gn.GradientTape() as once:
        once.watch(x)
        z = ops.sum(x * x)
    once.gradient(z, x)
    with pytest.raises(RuntimeError, match="one gradient call"):
        once.gradient(z, x)


def test_a_fused_layer_called_twice_in_one_tape_is_refused():
    dense = gn.layers.Dense(2)
    x = ops.ones((1, 3))
    with gn.GradientTape() as tape:
        y = ops.sum(dense(x)) + ops.sum(dense(x * 2.0))
    with pytest.raises(RuntimeError, match="layer 'dense' was called again"):
        tape.gradient(y, dense.trainable_weights)
