"""Fewer launches per step: epilogue fusion, folded activation gradients, multi-tensor optimizers.

Counts come from the noop backend (every op takes its kernel path, nothing computes); results
compare the fused path with the unfused one on the kernel backends (cudasim here): forward
outputs and input gradients bit-identical (the ELU gradient within 4 ulp: it reads y + alpha
for alpha * exp(x)), bias gradients within float32 summation error (they are a row of the
filter product now, summed in another order), optimizers bit-identical.
"""
import os
import sys

import numpy as np
import pytest

import gpunet as gn
from gpunet import backend, graph, models, optimizers
from gpunet.layers.activations import ActivationMixin
from gpunet.primitives import launch

from checks import assert_close, run_on_backend

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import cases  # noqa: E402

# Launches of one training step (SGD) before this work: small CNN 41, encoder-decoder 56.
LAUNCHES = {"cnn": ((64, 28, 28, 1), 10, "sparse_categorical_crossentropy", 20),
            "autoencoder": ((32, 32, 32, 1), 0, "mse", 25)}


@pytest.mark.parametrize("kind", sorted(LAUNCHES))
def test_launches_per_training_step(kind):
    shape, classes, loss, most = LAUNCHES[kind]
    with backend.use("noop") as be:
        gn.utils.set_random_seed(0)
        model = cases.gn_cnn() if kind == "cnn" else cases.gn_autoencoder()
        model.compile(optimizer=gn.optimizers.SGD(learning_rate=0.01), loss=loss)
        x, y = cases.make_data(np.random.default_rng(0), shape, classes)
        xb, yb = be.asarray(x), be.asarray(y, dtype=y.dtype if classes else np.float32)
        model._train_step(xb, yb)
        before = launch.launch_count()
        model._train_step(xb, yb)
        launches = launch.launch_count() - before
    print(f"{kind}: {launches} launches per training step")
    assert launches <= most, f"{kind}: {launches} launches per training step; the target is at most {most}"


def _unfused(monkeypatch):
    """The path before fusion: activations launched on their own, one optimizer launch per weight."""
    monkeypatch.setattr(ActivationMixin, "_forward_epilogue", lambda self: None)
    monkeypatch.setattr(optimizers.Optimizer, "_fused_update", lambda self, cls: False)
    monkeypatch.setattr(models, "mark_absorbed", lambda pairs, on: graph.mark_absorbed(pairs, False))


ACTIVATIONS = ["relu", "leaky_relu", "elu", "sigmoid", "tanh"]


def _layer_step(make_layer, x_shape, seed):
    """A layer's forward and backward (a layer before it gives dx a consumer's fold)."""
    def step():
        gn.utils.set_random_seed(seed)
        be = backend.current()
        rng = np.random.default_rng(seed)
        layer = make_layer()
        x = be.asarray(rng.standard_normal(x_shape).astype(np.float32))
        layer.ensure_built(x_shape)
        y = layer.forward(x, training=True)
        dy = be.asarray(rng.standard_normal(y.shape).astype(np.float32))
        dx = layer.backward(dy)
        return (y, dx, *layer.grads)
    return step


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("make_layer, x_shape", [
    (lambda act: gn.layers.Dense(5, activation=act), (6, 7)),
    (lambda act: gn.layers.Conv2D(4, 3, padding="same", activation=act), (2, 5, 6, 3)),
    (lambda act: gn.layers.Conv2DTranspose(3, 3, strides=2, padding="same", activation=act), (1, 3, 4, 2)),
])
def test_fused_epilogue_equals_the_unfused_layer(kernel_backend, monkeypatch, activation, make_layer, x_shape):
    step = _layer_step(lambda: make_layer(activation), x_shape, seed=3)
    fused, launched = run_on_backend(kernel_backend, step)
    assert not any(k.endswith("_forward") and k.split("_forward")[0] in ACTIVATIONS for k in launched), launched
    with monkeypatch.context() as patch:
        _unfused(patch)
        plain, _ = run_on_backend(kernel_backend, step)
    y, dx, dw, db = fused
    assert np.array_equal(y, plain[0]), "forward output"
    if activation == "elu":
        assert_close(dx, plain[1], rtol=5e-7, atol=1e-7, what="dx")
    else:
        assert np.array_equal(dx, plain[1]), "input gradient"
    assert_close(dw, plain[2], rtol=1e-5, atol=1e-6, what="dw")
    assert_close(db, plain[3], rtol=1e-5, atol=1e-6, what="db")


def _small_cnn():
    L = gn.layers
    return gn.Sequential([gn.Input((8, 8, 2)),
                          L.Conv2D(4, 3, padding="same", activation="relu"), L.MaxPooling2D(),
                          L.Conv2D(6, 3, padding="same"), L.BatchNormalization(), L.Activation("tanh"),
                          L.MaxPooling2D(), L.Flatten(), L.Dense(8, activation="sigmoid"),
                          L.Dense(5, activation="leaky_relu"), L.Dense(3, activation="softmax")])


@pytest.mark.parametrize("make_optimizer", [
    lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: optimizers.Adam(0.01, amsgrad=True),
    lambda: optimizers.AdamW(0.01, weight_decay=0.01),
    lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
])
def test_fused_training_equals_unfused(kernel_backend, monkeypatch, make_optimizer):
    """Three steps of a CNN whose every activation is folded somewhere: same losses and weights."""
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((4, 8, 8, 2)).astype(np.float32), rng.integers(0, 3, 4)

    def train():
        gn.utils.set_random_seed(1)
        model = _small_cnn()
        model.compile(optimizer=make_optimizer(), loss="sparse_categorical_crossentropy")
        losses = [model.train_on_batch(x, y) for _ in range(3)]
        return [backend.current().asarray(np.array(losses, np.float32)), *model.weights]

    fused, launched = run_on_backend(kernel_backend, train)
    kernel = {"SGD": "sgd", "Adam": "adam", "AdamW": "adam", "RMSprop": "rmsprop"}[type(make_optimizer()).__name__]
    assert launched.count(f"{kernel}_update_many") == 3 and "relu_backward" not in launched, launched
    assert "tanh_forward" not in launched, "the tanh after the batch norm runs in batch_norm_normalize"
    with monkeypatch.context() as patch:
        _unfused(patch)
        plain, launched_plain = run_on_backend(kernel_backend, train)
    assert launched_plain.count(f"{kernel}_update") == 3 * 12, "the unfused path: one launch per weight"
    for k, (a, b) in enumerate(zip(fused, plain)):
        assert_close(a, b, rtol=2e-5, atol=1e-6, what=f"loss or weight {k}")


@pytest.mark.parametrize("make_optimizer, slots", [
    (lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=0.01), 1),
    (lambda: optimizers.Adam(0.01, amsgrad=True), 3),
    (lambda: optimizers.AdamW(0.01, weight_decay=0.02), 2),
    (lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True), 3),
])
def test_multi_tensor_update_is_bit_identical(kernel_backend, monkeypatch, make_optimizer, slots):
    rng = np.random.default_rng(2)
    shapes = [(3, 3, 2, 5), (5,), (300, 7), (1,)]
    starts = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]

    def train():
        be = backend.current()
        params, opt = [be.asarray(p.copy()) for p in starts], make_optimizer()
        for step in grads:
            opt.apply([be.asarray(g) for g in step], params)
        return params + [s for name in opt.slot_names() for s in opt._slots[name]]

    fused, launched = run_on_backend(kernel_backend, train)
    assert len(launched) == 3 and all(k.endswith("_update_many") for k in launched), launched
    with monkeypatch.context() as patch:
        _unfused(patch)
        plain, launched_plain = run_on_backend(kernel_backend, train)
    assert len(launched_plain) == 3 * len(shapes)
    assert len(fused) == len(plain) == len(shapes) * (1 + slots)
    for k, (a, b) in enumerate(zip(fused, plain)):
        assert a.tobytes() == b.tobytes(), f"array {k} differs from the per-parameter kernels'"
