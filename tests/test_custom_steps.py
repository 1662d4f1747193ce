"""Custom training code as Keras writes it: built-in loss objects under a GradientTape,
optimizer.apply(grads, variables), and (below) train_step / test_step overrides run by fit."""
import numpy as np
import pytest

import gpunet as gn
from checks import assert_close


def _model(activation, units=3, seed=0):
    gn.utils.set_random_seed(seed)
    return gn.Sequential([gn.Input((4,)), gn.layers.Dense(5, activation="tanh"),
                          gn.layers.Dense(units, activation=activation)])


def _targets(kind, rng, rows=6, units=3):
    if kind == "sparse":
        return rng.integers(0, units, rows).astype(np.int32)
    if kind == "onehot":
        return np.eye(units, dtype=np.float32)[rng.integers(0, units, rows)]
    return rng.random((rows, units)).astype(np.float32)


@pytest.mark.parametrize("loss, activation, kind", [
    (lambda: gn.losses.CategoricalCrossentropy(), "softmax", "onehot"),
    (lambda: gn.losses.SparseCategoricalCrossentropy(from_logits=True), None, "sparse"),
    (lambda: gn.losses.BinaryCrossentropy(from_logits=True), None, "unit"),
    (lambda: gn.losses.MeanSquaredError(), None, "unit"),
])
@pytest.mark.parametrize("weighted", [False, True])
def test_builtin_loss_on_the_tape_gives_fits_gradients(loss, activation, kind, weighted):
    """A loss object called on tensors inside a GradientTape is one node whose gradient is the
    fused one fit uses: tape.gradient equals loss.compute + model.backward, bit for bit."""
    rng = np.random.default_rng(1)
    model, loss_fn = _model(activation), loss()
    x = rng.standard_normal((6, 4)).astype(np.float32)
    y = _targets(kind, rng)
    w = rng.random(6).astype(np.float32) + 0.5 if weighted else None
    with gn.GradientTape() as tape:
        value = loss_fn(y, model(x, training=True), sample_weight=w)
    assert isinstance(value, gn.Tensor) and value.shape == ()
    grads = tape.gradient(value, model.trainable_variables)
    be = gn.backend.current()
    expected, dy = loss_fn.device_compute(be.asarray(y), model.forward(be.asarray(x), training=True),
                                          None if w is None else be.asarray(w))
    model.backward(dy)
    assert float(gn.ops.convert_to_numpy(value)) == float(be.to_numpy(expected))
    for got, want in zip(grads, model.grads):
        assert np.array_equal(gn.ops.convert_to_numpy(got), be.to_numpy(want))


def test_custom_loop_with_builtin_loss_and_keras_apply_learns():
    """Keras's custom training loop, written as the Keras guide writes it."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1).astype(np.int32)
    model = _model(None)
    loss_fn = gn.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = gn.optimizers.Adam(0.05)
    first = last = None
    for step in range(30):
        batch = slice(16 * (step % 4), 16 * (step % 4) + 16)
        with gn.GradientTape() as tape:
            logits = model(x[batch], training=True)
            loss_value = loss_fn(y[batch], logits)
        grads = tape.gradient(loss_value, model.trainable_weights)
        optimizer.apply(grads, model.trainable_weights)
        value = float(gn.ops.convert_to_numpy(loss_value))
        first = value if first is None else first
        last = value
    assert optimizer.iterations == 30
    assert last < 0.6 * first, (first, last)


def test_a_scaled_builtin_loss_scales_its_gradient():
    """The loss node's backward multiplies by the incoming gradient (here 3)."""
    rng = np.random.default_rng(2)
    model = _model(None)
    x, y = rng.standard_normal((6, 4)).astype(np.float32), rng.random((6, 3)).astype(np.float32)
    with gn.GradientTape(persistent=True) as tape:
        value = gn.losses.MeanSquaredError()(y, model(x, training=True))
        tripled = value * 3.0
    once = tape.gradient(value, model.trainable_variables)
    thrice = tape.gradient(tripled, model.trainable_variables)
    for a, b in zip(once, thrice):
        assert_close(gn.ops.convert_to_numpy(b), 3 * gn.ops.convert_to_numpy(a), rtol=1e-6, atol=1e-7)


# -- fit / evaluate / predict through overridden steps (gpunet.custom_steps) -----------------------

def _digits_like(n=48, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = (x[:, 0] - x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 0.5).astype(np.int32)
    return x, y


class SameLoss(gn.Sequential):
    """Overrides compute_loss with the default: fit steps on the tape instead of the fused path."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return super().compute_loss(x, y, y_pred, sample_weight, training)


def _pair():
    layers = lambda: [gn.Input((4,)), gn.layers.Dense(6, activation="relu"), gn.layers.Dense(3)]  # noqa: E731
    gn.utils.set_random_seed(5)
    fused = gn.Sequential(layers())
    gn.utils.set_random_seed(5)
    taped = SameLoss(layers())
    for model in (fused, taped):
        model.compile(optimizer=gn.optimizers.Adam(0.01), metrics=["accuracy"],
                      loss=gn.losses.SparseCategoricalCrossentropy(from_logits=True))
    return fused, taped


def test_tape_step_trains_as_the_fused_step():
    """Keras's default train_step on the tape gives fit's weights and logs (same kernels, same order)."""
    x, y = _digits_like()
    fused, taped = _pair()
    assert taped._steps_on_tape("train") and not fused._steps_on_tape("train")
    gn.utils.set_random_seed(9)   # the same shuffles
    h1 = fused.fit(x, y, batch_size=16, epochs=2, verbose=0).history
    gn.utils.set_random_seed(9)
    h2 = taped.fit(x, y, batch_size=16, epochs=2, verbose=0).history
    for a, b in zip(fused.get_weights(), taped.get_weights()):
        assert np.array_equal(a, b)
    assert h2["loss"] == pytest.approx(h1["loss"], rel=1e-5)
    assert h2["accuracy"] == pytest.approx(h1["accuracy"], rel=1e-6)
    assert taped.evaluate(x, y, verbose=0) == pytest.approx(fused.evaluate(x, y, verbose=0), rel=1e-5)


class Tracked(gn.Model):
    """The Keras guide's custom train_step: its own loss tracker and metric, listed in ``metrics``."""

    def __init__(self):
        super().__init__()
        self.dense = gn.layers.Dense(1)
        self.loss_tracker = gn.metrics.Mean(name="loss")
        self.mae_metric = gn.metrics.MeanAbsoluteError(name="mae")
        self.steps_seen = 0

    def call(self, inputs):
        return self.dense(inputs)

    def train_step(self, data):
        x, y = data
        with gn.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = gn.ops.mean(gn.ops.square(y_pred - y))
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(grads, self.trainable_variables)
        self.loss_tracker.update_state(loss)
        self.mae_metric.update_state(y, y_pred)
        self.steps_seen += 1
        return {"loss": self.loss_tracker.result(), "mae": self.mae_metric.result()}

    def test_step(self, data):
        x, y = data
        y_pred = self(x, training=False)
        self.loss_tracker.update_state(gn.ops.mean(gn.ops.square(y_pred - y)))
        self.mae_metric.update_state(y, y_pred)
        return {"loss": self.loss_tracker.result(), "mae": self.mae_metric.result()}

    @property
    def metrics(self):
        return [self.loss_tracker, self.mae_metric]


def test_overridden_train_and_test_steps_run_and_log_what_they_return():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.3).astype(np.float32)
    model = Tracked()
    model.compile(optimizer=gn.optimizers.SGD(0.1))   # no loss: the step computes it
    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0).history
    assert model.steps_seen == 20
    assert history["loss"][-1] < 0.2 * history["loss"][0]
    # the epoch's logs are the trackers' running means over that epoch (reset at its start)
    pred = model.predict(x, verbose=0)
    logs = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "mae"}
    assert logs["loss"] == pytest.approx(float(np.mean((pred - y) ** 2)), rel=1e-4)
    assert logs["mae"] == pytest.approx(float(np.mean(np.abs(pred - y))), rel=1e-4)
    on_batch = model.train_on_batch(x[:8], y[:8], return_dict=True)
    assert set(on_batch) == {"loss", "mae"}


class Autoencoder(gn.Model):
    """compute_loss only (x is the target, no y), and a predict_step that returns the code."""

    def __init__(self):
        super().__init__()
        self.encode, self.decode = gn.layers.Dense(2, activation="tanh"), gn.layers.Dense(4)

    def call(self, inputs):
        return self.decode(self.encode(inputs))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None):   # Keras < 3.3's signature
        return gn.ops.mean(gn.ops.square(y_pred - x))

    def predict_step(self, data):
        x, _, _ = gn.utils.unpack_x_y_sample_weight(data)
        return self.encode(x, training=False)


def test_compute_loss_without_targets_and_a_predict_step():
    rng = np.random.default_rng(1)
    code = rng.standard_normal((64, 2)).astype(np.float32)
    x = np.tanh(code @ rng.standard_normal((2, 4)).astype(np.float32))
    model = Autoencoder()
    model.compile(optimizer=gn.optimizers.Adam(0.02))
    history = model.fit(x, epochs=6, batch_size=16, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert model.predict(x, verbose=0).shape == (64, 2)


def test_unpack_and_pack_follow_keras():
    x, y, w = np.zeros(2), np.ones(2), np.full(2, 3.0)
    assert gn.utils.unpack_x_y_sample_weight((x, y))[2] is None
    assert gn.utils.unpack_x_y_sample_weight(x)[0] is x
    assert gn.utils.pack_x_y_sample_weight(x, y, w)[2] is w
    assert len(gn.utils.pack_x_y_sample_weight(x)) == 1
    with pytest.raises(ValueError, match="4 entries"):
        gn.utils.unpack_x_y_sample_weight((x, y, w, w))


def test_jit_compile_with_a_custom_step_warns_and_trains_eagerly():
    x, y = _digits_like(16)
    _, taped = _pair()
    taped.compile(optimizer="sgd", loss=gn.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    with pytest.warns(UserWarning, match="trains eagerly: it overrides train_step"):
        taped.fit(x, y, epochs=1, verbose=0)


def test_tape_step_under_mixed_float16_scales_the_loss_as_fit_does():
    """The default train_step differentiates optimizer.scale_loss(loss): a LossScaleOptimizer gets
    scaled gradients, as from the fused step (the scale is a power of two: same weights)."""
    x, y = _digits_like(32)
    gn.mixed_precision.set_global_policy("mixed_float16")
    try:
        fused, taped = _pair()
    finally:
        gn.mixed_precision.set_global_policy("float32")
    for model in (fused, taped):   # SGD: an unscaled gradient would show (Adam would hide the scale)
        model.compile(optimizer=gn.optimizers.SGD(0.5), loss=gn.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert type(taped.optimizer).__name__ == "LossScaleOptimizer"
    gn.utils.set_random_seed(9)
    fused.fit(x, y, batch_size=16, epochs=2, verbose=0)
    gn.utils.set_random_seed(9)
    taped.fit(x, y, batch_size=16, epochs=2, verbose=0)
    for a, b in zip(fused.get_weights(), taped.get_weights()):
        assert_close(b, a, rtol=1e-3, atol=1e-4)
    assert taped.optimizer.iterations == fused.optimizer.iterations == 4


class TwoOutputs(gn.Model):
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return super().compute_loss(x, y, y_pred, sample_weight, training)


def _two_outputs(cls):
    gn.utils.set_random_seed(2)
    inputs = gn.Input((4,))
    hidden = gn.layers.Dense(5, activation="relu")(inputs)
    model = cls(inputs, [gn.layers.Dense(2, name="a")(hidden), gn.layers.Dense(1, name="b")(hidden)])
    model.compile(optimizer=gn.optimizers.SGD(0.1), loss=["mse", "mae"], loss_weights=[1.0, 0.5],
                  metrics=[["mae"], []])
    return model


def test_tape_step_of_several_outputs_trains_and_logs_as_the_fused_step():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    ys = [rng.standard_normal((32, 2)).astype(np.float32), rng.standard_normal((32, 1)).astype(np.float32)]
    logs = []
    for cls in (gn.Model, TwoOutputs):
        model = _two_outputs(cls)
        gn.utils.set_random_seed(9)
        logs.append(model.fit(x, ys, batch_size=8, epochs=2, verbose=0).history)
        logs[-1]["weights"] = model.get_weights()
    fused, taped = logs
    assert set(taped) == set(fused)
    for name in ("loss", "a_loss", "b_loss", "a_mae"):
        assert taped[name] == pytest.approx(fused[name], rel=1e-5), name
    for a, b in zip(fused["weights"], taped["weights"]):
        assert_close(b, a, rtol=1e-5, atol=1e-6)
