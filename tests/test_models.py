"""Model graphs: building, shape propagation, forward/backward through skips and nesting, weights,
config round trips, summary. The graph mechanics are checked with tiny layers defined here (so a
failure points at the model code), then once more with gpunet's own layers."""
import numpy as np
import pytest

import gpunet as gn
from gpunet import layers
from gpunet.layers import Layer

from checks import assert_close, check_backward


# -- tiny layers whose maths is obvious ----------------------------------------------------
class Linear(Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), "glorot_uniform")
        self.bias = self.add_weight("bias", (self.units,), "random_normal")

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def forward(self, x, training=False):
        self.x = x
        return x @ self.kernel + self.bias

    def backward(self, dy):
        self.grads = [self.x.T @ dy, dy.sum(axis=0)]
        return dy @ self.kernel.T

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Tanh(Layer):
    def forward(self, x, training=False):
        self.y = np.tanh(x)
        return self.y

    def backward(self, dy):
        return dy * (1 - self.y ** 2)


class Mul(Layer):
    """Two inputs, two different gradients: checks that list gradients reach the right tensors."""

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def forward(self, xs, training=False):
        self.a, self.b = xs
        return self.a * self.b

    def backward(self, dy):
        return [dy * self.b, dy * self.a]


class Sum(Layer):
    def compute_output_shape(self, input_shapes):
        return input_shapes[0]

    def forward(self, xs, training=False):
        self.n = len(xs)
        return sum(xs)

    def backward(self, dy):
        return [dy] * self.n


F64 = {"dtype": "float64"}
CUSTOM = {"Linear": Linear, "Tanh": Tanh, "Mul": Mul, "Sum": Sum}


def loss_gradient_check(model, xs, seed=0):
    """Every weight gradient and the input gradient(s) of 0.5 * sum((model(x) - t)^2) against
    central differences of that loss (float64)."""
    many = isinstance(xs, list)
    xs = xs if many else [xs]
    n_in = len(xs)
    rng = np.random.default_rng(seed)
    target = rng.standard_normal((len(xs[0]), *model.output_shape[1:]))

    def forward(*arrays):
        model.set_weights(list(arrays[n_in:]))
        out = model.forward(list(arrays[:n_in]) if many else arrays[0], training=False)
        forward.residual = out - target
        return np.array(0.5 * np.sum(forward.residual ** 2))

    def backward(dloss):
        dx = model.backward(forward.residual * dloss)
        return [*(dx if many else [dx]), *model.grads]

    check_backward(forward, backward, [*xs, *model.get_weights()])
    assert len(model.grads) == len(model.trainable_weights) > 0


# -- building ---------------------------------------------------------------------------------
def _seq_from_input():
    return gn.Sequential([layers.Input((6,)), Linear(4), Tanh(), Linear(3)])


def _seq_by_add():
    model = gn.Sequential()
    model.add(layers.Input((6,)))
    for layer in (Linear(4), Tanh(), Linear(3)):
        model.add(layer)
    return model


def _seq_input_shape():
    return gn.Sequential([Linear(4, input_shape=(6,)), Tanh(), Linear(3)])


@pytest.mark.parametrize("make", [_seq_from_input, _seq_by_add, _seq_input_shape])
def test_sequential_builds_when_input_shape_is_known(make):
    model = make()
    assert model.built
    assert model.output_shape == (None, 3)
    assert [type(layer).__name__ for layer in model.layers] == ["Linear", "Tanh", "Linear"]
    assert [w.shape for w in model.weights] == [(6, 4), (4,), (4, 3), (3,)]
    assert model.count_params() == 6 * 4 + 4 + 4 * 3 + 3
    assert model.name == "sequential"


def test_sequential_without_input_builds_on_first_data():
    model = gn.Sequential([Linear(5), Tanh(), Linear(2)])
    assert not model.built and model.weights == []
    x = np.random.default_rng(0).standard_normal((7, 3)).astype(np.float32)
    y = model.predict(x, verbose=0)
    assert model.built and y.shape == (7, 2)
    assert model.input_shape == (None, 3)
    assert [w.shape for w in model.weights] == [(3, 5), (5,), (5, 2), (2,)]


def test_sequential_pop_and_add_rebuild_the_chain():
    model = _seq_from_input()
    removed = model.pop()
    assert isinstance(removed, Linear) and model.output_shape == (None, 4)
    model.add(Linear(9))
    assert model.output_shape == (None, 9) and len(model.layers) == 3


def test_functional_shapes_and_keras_layer_order():
    x = gn.Input((5,), name="x")
    q1 = Linear(3, name="q1")(x)
    p1 = Linear(4, name="p1")(x)
    p2 = Linear(3, name="p2")(p1)
    out = Sum(name="sum")([q1, p2])
    model = gn.Model(x, out)
    assert model.name == "functional"
    assert model.output_shape == (None, 3) and model.input_shape == (None, 5)
    # Keras lists layers by decreasing depth, ties in depth-first order: weight files depend on it.
    assert [layer.name for layer in model.layers] == ["x", "p1", "q1", "p2", "sum"]
    assert [w.shape for w in model.get_weights()] == [(5, 4), (4,), (5, 3), (3,), (4, 3), (3,)]


def test_functional_forward_matches_the_layers_by_hand(rng):
    inp = gn.Input((3,), **F64)
    h = Linear(4, **F64)(inp)
    out = Sum(**F64)([h, Tanh(**F64)(h)])
    model = gn.Model(inp, out)
    x = rng.standard_normal((5, 3))
    kernel, bias = model.get_weights()
    hand = x @ kernel + bias
    assert_close(model.predict(x, verbose=0), hand + np.tanh(hand), rtol=1e-12, atol=1e-12)


# -- gradients through the graph ---------------------------------------------------------------
@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_gradients_summed_at_fan_out_with_tiny_layers(rng):
    inp = gn.Input((3,), **F64)
    h = Linear(4, **F64)(inp)                      # h feeds Tanh, Sum and Mul
    skip = Sum(**F64)([h, Linear(4, **F64)(Tanh(**F64)(h))])
    gate = Mul(**F64)([skip, Linear(4, **F64)(inp)])   # the input fans out too
    out = Linear(2, **F64)(Sum(**F64)([gate, h]))
    loss_gradient_check(gn.Model(inp, out), rng.standard_normal((5, 3)))


@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_gradients_with_gpunet_layers_and_a_skip_connection(rng):
    inp = gn.Input((4,), **F64)
    a = layers.Dense(5, activation="tanh", **F64)(inp)
    b = layers.Dense(5, activation="sigmoid", **F64)(a)
    merged = layers.Concatenate(**F64)([layers.Add(**F64)([a, b]), inp])
    out = layers.Dense(3, **F64)(merged)
    loss_gradient_check(gn.Model(inp, out), rng.standard_normal((6, 4)))


@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_gradients_with_two_inputs_and_two_outputs(rng):
    left, right = gn.Input((3,), **F64), gn.Input((2,), **F64)
    h = Sum(**F64)([Linear(4, **F64)(left), Linear(4, **F64)(right)])
    out1, out2 = Linear(2, **F64)(h), Tanh(**F64)(h)
    model = gn.Model([left, right], [out1, out2])
    xs = [rng.standard_normal((5, 3)), rng.standard_normal((5, 2))]
    targets = [rng.standard_normal((5, 2)), rng.standard_normal((5, 4))]

    def forward(xl, xr, *weights):
        model.set_weights(list(weights))
        outs = model.forward([xl, xr])
        forward.res = [o - t for o, t in zip(outs, targets)]
        return np.array(sum(0.5 * np.sum(r ** 2) for r in forward.res))

    def backward(dloss):
        dxs = model.backward([r * dloss for r in forward.res])
        return [*dxs, *model.grads]

    check_backward(forward, backward, [*xs, *model.get_weights()])


@pytest.mark.reference   # float64 gradient / value check: numpy backend
def test_nested_sequential_inside_a_functional_model(rng):
    inner = gn.Sequential([Linear(4, **F64), Tanh(**F64)])
    inp = gn.Input((3,), **F64)
    out = Linear(2, **F64)(Sum(**F64)([inner(inp), Linear(4, **F64)(inp)]))
    model = gn.Model(inp, out)
    assert inner.built and inner.output_shape == (None, 4)
    assert inner in model.layers
    assert len(model.get_weights()) == 6 and model.count_params() == (12 + 4) + (12 + 4) + (8 + 2)
    loss_gradient_check(model, rng.standard_normal((5, 3)))


def test_frozen_layers_and_frozen_models_have_no_trainable_weights(rng):
    model = _seq_from_input()
    model.layers[0].trainable = False
    model.forward(rng.standard_normal((2, 6)).astype(np.float32))
    model.backward(np.ones((2, 3), np.float32))
    assert [w.shape for w in model.trainable_weights] == [(4, 3), (3,)]
    assert [g.shape for g in model.grads] == [(4, 3), (3,)]
    model.trainable = False
    assert model.trainable_weights == [] and len(model.non_trainable_weights) == 4


def test_freezing_a_model_freezes_its_layers_and_its_batch_norm_statistics(rng):
    """Keras's transfer-learning recipe: base.trainable = False, then train a head on top."""
    base = gn.Sequential([gn.Input((6, 6, 2)), layers.Conv2D(4, 3), layers.BatchNormalization()])
    base.trainable = False
    assert [layer.trainable for layer in base.layers] == [False, False]
    inp = gn.Input((6, 6, 2))
    model = gn.Model(inp, layers.Dense(3)(layers.Flatten()(base(inp))))
    model.compile("adam", "mse")
    frozen = base.get_weights()
    model.fit(rng.random((16, 6, 6, 2)).astype("float32"), rng.random((16, 3)).astype("float32"),
              epochs=2, verbose=0)
    for k, (after, before) in enumerate(zip(base.get_weights(), frozen)):
        np.testing.assert_array_equal(after, before, err_msg=f"frozen base weight {k} changed")
    assert len(model.trainable_weights) == 2
    base.trainable = True
    assert [layer.trainable for layer in base.layers] == [True, True]
    assert not gn.Sequential([gn.Input((3,)), layers.Dense(2)], trainable=False).layers[0].trainable


def test_one_activation_instance_given_to_two_layers_keeps_their_gradients_apart(rng):
    """Each layer gets its own copy: an activation keeps what its backward needs."""
    def model(first_activation, second_activation):
        gn.utils.set_random_seed(3)
        inp = gn.Input((4,))
        x = layers.Dense(5, activation=first_activation)(inp)
        return gn.Model(inp, layers.Dense(5, activation=second_activation)(x))
    shared = layers.ReLU(max_value=6.0)
    together = model(shared, shared)
    separate = model(layers.ReLU(max_value=6.0), layers.ReLU(max_value=6.0))
    x = rng.standard_normal((8, 4)).astype("float32")
    for m in (separate, together):
        m.forward(x, training=True)
        m.backward(np.ones((8, 5), np.float32))
    for k, (a, b) in enumerate(zip(together.grads, separate.grads)):
        np.testing.assert_array_equal(a, b, err_msg=f"gradient {k}")


# -- errors ---------------------------------------------------------------------------------------
def test_a_layer_used_twice_in_a_sequential_is_refused():
    # (a functional model shares it: tests/test_shared_layers.py)
    shared = Linear(3, name="shared")
    with pytest.raises(ValueError, match="already in the model"):
        gn.Sequential([layers.Input((3,)), shared, shared])


def test_an_input_missing_from_the_model_inputs_is_refused():
    a, b = gn.Input((3,), name="a"), gn.Input((3,), name="b")
    with pytest.raises(ValueError, match="depend on Input 'b'"):
        gn.Model(a, Sum()([a, b]))


def test_input_must_come_first_in_a_sequential():
    with pytest.raises(ValueError, match="first item"):
        gn.Sequential([Linear(2), layers.Input((3,))])


@pytest.mark.parametrize("shape", [(4, 5), (4, 6, 1), (4,)])
def test_wrong_input_shape_names_the_model_and_both_shapes(shape):
    model = _seq_from_input()
    x = np.zeros(shape, np.float32)
    expected = rf"Model 'sequential' expects input shape \(None, 6\); received shape {re_shape(shape)}"
    with pytest.raises(ValueError, match=expected):
        model.predict(x, verbose=0)
    with pytest.raises(ValueError, match=expected):
        model(x)


def re_shape(shape):
    return "\\(" + ", ".join(map(str, shape)) + (",\\)" if len(shape) == 1 else "\\)")


def test_wrong_number_of_inputs_is_refused():
    left, right = gn.Input((3,)), gn.Input((3,))
    model = gn.Model([left, right], Sum()([left, right]))
    with pytest.raises(ValueError, match=r"expects 2 inputs.*received 1"):
        model.predict(np.zeros((2, 3)), verbose=0)


# -- weights, config, summary ------------------------------------------------------------------
def test_get_and_set_weights_round_trip_in_layer_order(rng):
    model = _seq_from_input()
    values = [rng.standard_normal(w.shape).astype(np.float32) for w in model.weights]
    model.set_weights(values)
    for got, want in zip(model.get_weights(), values):
        assert_close(got, want, rtol=0, atol=0)
    assert_close(model.layers[2].get_weights()[0], values[2], rtol=0, atol=0)
    with pytest.raises(ValueError, match="expects 4 weight arrays"):
        model.set_weights(values[:3])


def test_sequential_config_round_trip(rng):
    model = gn.Sequential([layers.Input((6,)), layers.Dense(4, activation="relu"), layers.Dense(2)])
    clone = gn.Sequential.from_config(model.get_config())
    assert [type(l) for l in clone.layers] == [type(l) for l in model.layers]
    assert clone.output_shape == (None, 2) and clone.name == model.name
    clone.set_weights(model.get_weights())
    x = rng.standard_normal((3, 6)).astype(np.float32)
    assert_close(clone.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=0)


def test_functional_config_round_trip_with_skip_and_nesting(rng):
    inp = gn.Input((4,))
    inner = gn.Sequential([Linear(4), Tanh()])
    skip = layers.Add()([inner(inp), layers.Dense(4)(inp)])
    model = gn.Model(inp, layers.Dense(2, activation="softmax")(skip), name="net")
    config = model.get_config()
    assert [e["inbound"] for e in config["layers"]][-2:] == [[inner.name, model.layers[2].name], "add"]
    clone = gn.Model.from_config(config, custom_objects=CUSTOM)
    assert [l.name for l in clone.layers] == [l.name for l in model.layers] and clone.name == "net"
    clone.set_weights(model.get_weights())
    x = rng.standard_normal((3, 4)).astype(np.float32)
    assert_close(clone.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=0)
    with pytest.raises(ValueError, match="Unknown layer class 'Linear'.*custom_objects"):
        gn.Model.from_config(config)


def test_summary_counts_parameters_by_hand(monkeypatch):
    monkeypatch.setenv("COLUMNS", "140")   # rich, hence Keras, cuts lines at the terminal's width
    model = gn.Sequential([layers.Input((6,)), layers.Dense(4), layers.BatchNormalization(), layers.Dense(3)])
    calls = []
    model.summary(print_fn=calls.append, line_length=100)
    assert len(calls) == 1   # Keras hands print_fn the whole text at once
    lines = calls[0].splitlines()
    # Dense 6*4+4 = 28; BatchNormalization 4 gamma + 4 beta (trainable) + 8 moving stats; Dense 4*3+3 = 15.
    assert lines[0] == 'Model: "sequential"'
    cells = [[c.strip() for c in l.strip("│").split("│")] for l in lines if l.startswith("│")]
    assert {c[0].split()[0]: c[2] for c in cells} == {"dense": "28", "batch_normalization": "16", "dense_1": "15"}
    assert ["(None, 4)", "(None, 4)", "(None, 3)"] == [c[1] for c in cells]
    assert " Total params: 59 (236.00 B)" in lines
    assert " Trainable params: 51 (204.00 B)" in lines
    assert " Non-trainable params: 8 (32.00 B)" in lines


def test_summary_of_a_functional_model_shows_connections_and_nested_totals(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "140")
    inp = gn.Input((3,), name="x")
    inner = gn.Sequential([Linear(4), Tanh()], name="block")
    gn.Model(inp, Sum(name="join")([inner(inp), Linear(4, name="side")(inp)])).summary()
    text = capsys.readouterr().out
    assert "Connected to" in text
    cells = [[c.strip() for c in l.strip("│").split("│")] for l in text.splitlines() if l.startswith("│")]
    assert ["block (Sequential)", "(None, 4)", "16", "x[0][0]"] in cells
    assert ["join (Sum)", "(None, 4)", "0", "block[0][0], side[0][0]"] in cells
    assert " Total params: 32 (128.00 B)" in text.splitlines()


def test_summary_of_an_unbuilt_sequential_says_so():
    calls = []
    gn.Sequential([Linear(3), Tanh()]).summary(print_fn=calls.append)
    assert calls[0].count("0 (unbuilt)") == 2 and " Total params: 0 (0.00 B)" in calls[0].splitlines()


def test_sequential_nested_in_a_sequential(rng):
    inner = gn.Sequential([Linear(4), Tanh()])
    model = gn.Sequential([layers.Input((3,)), inner, Linear(2)])
    x = rng.standard_normal((5, 3)).astype(np.float32)
    k1, b1, k2, b2 = model.get_weights()
    assert_close(model.predict(x, verbose=0), np.tanh(x @ k1 + b1) @ k2 + b2, rtol=1e-5, atol=1e-6)
    assert model.layers == [inner, model.layers[1]] and inner.input_shape == (None, 3)


def test_two_outputs_predict_as_a_list(rng):
    inp = gn.Input((3,))
    model = gn.Model(inp, [Linear(2)(inp), Tanh()(inp)])
    out = model.predict(rng.standard_normal((7, 3)), batch_size=3, verbose=0)
    assert [o.shape for o in out] == [(7, 2), (7, 3)]
