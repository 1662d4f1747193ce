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
