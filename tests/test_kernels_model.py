"""A whole model on a kernel backend: training matches the numpy backend, repeats bit for bit,
and every layer's forward and backward (and the loss and the optimizer) run kernels.

The model touches every kernel family: Conv2D, BatchNormalization, ReLU, MaxPooling2D,
ZeroPadding2D, UpSampling2D, Conv2DTranspose, Add, Concatenate (a skip from before the pooling),
Flatten, Dense, and a Softmax fused with categorical cross-entropy, trained by Adam.
"""
import inspect
import re

import numpy as np

import gpunet as gn
from checks import assert_close
from gpunet import backend, layers
from gpunet.primitives import activation, conv, dense, dropout, loss, norm, optim, pool, shape

STEPS = 3
OP_MODULES = (activation, conv, dense, dropout, loss, norm, optim, pool, shape)
OP_NAME = re.compile(r"_(forward|backward|backward_input|backward_filter|update|update_many|update_moving_stats)$")


def _build_model():
    inputs = gn.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)   # a bias before BN gets no gradient
    x = layers.BatchNormalization()(x)
    skip = layers.ReLU()(x)                                               # (8, 8, 4), read twice
    pooled = layers.MaxPooling2D()(skip)                                  # (4, 4, 4), read twice
    x = layers.Conv2D(6, 3, activation="relu")(layers.ZeroPadding2D(((1, 1), (2, 0)))(pooled))
    x = layers.UpSampling2D()(x)                                          # (4, 4, 6) -> (8, 8, 6)
    t = layers.Conv2DTranspose(6, 3, strides=2, padding="same")(pooled)   # (8, 8, 6)
    x = layers.Concatenate()([skip, layers.Add()([x, t])])                # (8, 8, 10)
    outputs = layers.Softmax()(layers.Dense(10)(layers.Flatten()(x)))
    return gn.Model(inputs, outputs)


def _data():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 8, 8, 3)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, size=4)]
    return x, y


def _initial_weights():
    with backend.use("numpy"):
        return _build_model().get_weights()


def _compiled(weights):
    model = _build_model()
    model.set_weights(weights)
    model.compile(optimizer=gn.optimizers.Adam(learning_rate=0.01), loss="categorical_crossentropy")
    return model


def _train(name, weights, thread_order=None):
    """Losses, final weights and last gradients (NumPy) of STEPS train_on_batch calls under ``name``."""
    x, y = _data()
    with backend.use(name) as be:
        if thread_order and hasattr(be, "thread_order"):
            be.thread_order = thread_order
        model = _compiled(weights)
        losses = [model.train_on_batch(x, y) for _ in range(STEPS)]
        grads = [np.array(be.to_numpy(g)) for g in model.grads]
        return losses, model.get_weights(), grads, model.weight_names


def test_training_matches_the_numpy_backend(kernel_backend):
    weights = _initial_weights()
    expected_losses, expected_weights, expected_grads, names = _train("numpy", weights)
    losses, trained, grads, _ = _train(kernel_backend, weights)
    assert_close(losses, expected_losses, what="losses of the three steps")
    assert np.all(np.diff(expected_losses) < 0), f"the loss should fall: {expected_losses}"
    assert len(trained) == len(expected_weights) == len(names)
    for name, w, e in zip(names, trained, expected_weights):
        assert_close(w, e, what=f"weight {name} after {STEPS} steps")
    for k, (g, e) in enumerate(zip(grads, expected_grads)):
        assert_close(g, e, what=f"gradient {k} of the last step")


def test_training_is_bit_identical_across_runs(kernel_backend):
    weights = _initial_weights()
    first = _train(kernel_backend, weights, thread_order="ascending")
    second = _train(kernel_backend, weights, thread_order="descending")
    assert first[0] == second[0], "losses differ between runs"
    for what, a_list, b_list in (("weight", first[1], second[1]), ("gradient", first[2], second[2])):
        for k, (a, b) in enumerate(zip(a_list, b_list)):
            assert a.tobytes() == b.tobytes(), f"{what} {k} differs between two runs"


class _LaunchLog:
    """Which kernels ran, attributed to the layer pass (or 'outside layers') that launched them."""

    def __init__(self, be, model, monkeypatch):
        self.records, self.op_calls, self.where = [], [], "outside layers"
        real_launch = be.launch

        def launch(file, kernel, grid, block, args):
            self.records.append((self.where, file, kernel))
            real_launch(file, kernel, grid, block, args)
        monkeypatch.setattr(be, "launch", launch)
        for layer in model.layers:
            for phase in ("forward", "backward", "backward_logits"):
                if hasattr(layer, phase):
                    monkeypatch.setattr(layer, phase, self._tagged(getattr(layer, phase), (layer, phase)))
        for module in OP_MODULES:
            for name, fn in inspect.getmembers(module, inspect.isfunction):
                if fn.__module__ == module.__name__ and not name.startswith("_") and OP_NAME.search(name):
                    monkeypatch.setattr(module, name, self._counted(fn, f"{module.__name__}.{name}"))

    def _tagged(self, method, where):
        def run(*args, **kwargs):
            outer, self.where = self.where, where
            try:
                return method(*args, **kwargs)
            finally:
                self.where = outer
        return run

    def _counted(self, fn, name):
        def run(*args, **kwargs):
            before = len(self.records)
            result = fn(*args, **kwargs)
            self.op_calls.append((name, len(self.records) - before))
            return result
        return run

    def files(self, where):
        return {file for w, file, _ in self.records if w == where}


# Kernels each layer pass must launch (it may launch more): the layer types of _build_model.
EXPECTED_KERNELS = {
    # A Conv2D's ReLU runs in conv2d_forward's epilogue; its gradient is folded into the kernel
    # that computes the conv's output gradient, and the bias gradient rides in the filter's.
    (layers.Conv2D, "forward"): {"conv2d_forward"},
    (layers.Conv2D, "backward"): {"conv2d_backward_input", "conv2d_backward_filter"},
    (layers.Conv2DTranspose, "forward"): {"conv2d_backward_input"},   # the adjoint of a convolution
    (layers.Conv2DTranspose, "backward"): {"conv2d_forward", "conv2d_backward_filter", "bias_backward"},
    (layers.BatchNormalization, "forward"): {"batch_norm_statistics", "batch_norm_normalize",
                                             "batch_norm_update_moving_stats"},
    (layers.BatchNormalization, "backward"): {"batch_norm_backward_input"},
    # The ReLU after the BatchNormalization runs in batch_norm_normalize; its gradient is read
    # from its output (the batch norm's), its output being read twice (no single kernel to fold into).
    (layers.ReLU, "forward"): set(),
    (layers.ReLU, "backward"): {"fused_activation_backward"},
    (layers.MaxPooling2D, "forward"): {"max_pool2d_forward"},
    (layers.MaxPooling2D, "backward"): {"max_pool2d_backward"},
    (layers.ZeroPadding2D, "forward"): {"zero_pad2d_forward"},
    (layers.ZeroPadding2D, "backward"): {"zero_pad2d_backward"},
    (layers.UpSampling2D, "forward"): {"upsample2d_nearest_forward"},
    (layers.UpSampling2D, "backward"): {"upsample2d_nearest_backward"},
    (layers.Add, "forward"): {"add_forward"},
    (layers.Add, "backward"): {"add_backward"},
    (layers.Concatenate, "forward"): {"concat_forward"},
    (layers.Concatenate, "backward"): {"concat_backward"},
    (layers.Dense, "forward"): {"dense_forward"},
    (layers.Dense, "backward"): {"dense_backward_input", "dense_backward_filter"},   # db: a row of dw's product
    (layers.Softmax, "forward"): {"softmax_forward"},   # backward is fused into the loss's
}
OUTSIDE_LAYERS = {"softmax_cross_entropy_forward", "softmax_cross_entropy_backward", "adam_update_many"}


def test_every_layer_pass_runs_kernels(kernel_backend, monkeypatch):
    x, y = _data()
    weights = _initial_weights()
    with backend.use(kernel_backend) as be:
        model = _compiled(weights)
        log = _LaunchLog(be, model, monkeypatch)
        model.train_on_batch(x, y)
    launched = {}
    for where, _, kernel in log.records:
        key = where if isinstance(where, str) else (type(where[0]), where[1])
        launched.setdefault(key, set()).add(kernel)
    for (kind, phase), kernels in EXPECTED_KERNELS.items():
        missing = kernels - launched.get((kind, phase), set())
        assert not missing, f"{kind.__name__}.{phase} did not launch {sorted(missing)}"
    for layer in model.layers:
        if not isinstance(layer, (layers.InputLayer, layers.Flatten)):   # Flatten is a reshape
            assert (type(layer), "forward") in EXPECTED_KERNELS, f"no expectation for {type(layer).__name__}"
    missing = OUTSIDE_LAYERS - launched.get("outside layers", set())
    assert not missing, f"the loss and the optimizer did not launch {sorted(missing)}"
    # Ops called through their module: each call must launch (a call that launches nothing ran NumPy).
    silent = sorted({name for name, launches in log.op_calls if launches == 0})
    assert log.op_calls and not silent, f"ops that ran without launching a kernel: {silent}"
    assert sum(name.endswith("adam_update_many") for name, _ in log.op_calls) == 1   # one launch, every weight


def test_gradient_sums_at_fan_out_run_kernels(kernel_backend, monkeypatch):
    from gpunet import functional   # Model's backward walk (FunctionalGraph._backward)
    x, y = _data()
    weights = _initial_weights()
    with backend.use(kernel_backend) as be:
        model = _compiled(weights)
        log = _LaunchLog(be, model, monkeypatch)
        real_add, sums = functional.add_gradient, []

        def add(grads, tensor, grad):
            summing, before = id(tensor) in grads, len(log.records)
            real_add(grads, tensor, grad)
            if summing:
                sums.append(len(log.records) - before)
        monkeypatch.setattr(functional, "add_gradient", add)
        model.train_on_batch(x, y)
    assert len(sums) == 2, f"the skip and the pooled tensor each feed two layers; {len(sums)} sums seen"
    assert all(sums), f"gradient sums at fan-out launched {sums} kernels"
