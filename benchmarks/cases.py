"""The benchmark cases, shared by cpu_vs_torch.py and gpu_vs_torch.py: the two models in gpunet
and their torch twins (same weights, NCHW), their data, and the per-op cases.

The twins compute what the gpunet models compute: a Conv2DTranspose with ``padding=1,
output_padding=1`` crops its full scatter as torch's ``ConvTranspose2d(padding=1,
output_padding=1)`` does, the Dense after a Flatten gets its rows reordered (NHWC flattens
channels fastest, NCHW width fastest), and the final softmax is folded into the loss on both
sides (gpunet's fused softmax cross-entropy, torch's CrossEntropyLoss on logits).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import gpunet as gn  # noqa: E402
from gpunet.primitives import conv as conv_ops, dense as dense_ops, norm as norm_ops, pool as pool_ops  # noqa: E402

# -- the two models, in both libraries ---------------------------------------------------------

def gn_cnn():
    L = gn.layers
    return gn.Sequential([
        gn.Input((28, 28, 1)),
        L.Conv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.Conv2D(64, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.Flatten(), L.Dense(128, activation="relu"), L.Dense(10, activation="softmax")])


def gn_autoencoder():
    # padding=1, output_padding=1: the arithmetic of padding="same", aligned the way torch aligns.
    L = gn.layers
    return gn.Sequential([
        gn.Input((32, 32, 1)),
        L.Conv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.Conv2D(64, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.Conv2DTranspose(64, 3, strides=2, padding=1, output_padding=1, activation="relu"),
        L.Conv2DTranspose(32, 3, strides=2, padding=1, output_padding=1, activation="relu"),
        L.Conv2D(1, 1, activation="sigmoid")])


def _torch_layer(torch, layer, flattened_hwc):
    """The torch module of one gpunet Conv2D / Conv2DTranspose / Dense, with its weights."""
    nn, kind = torch.nn, type(layer).__name__
    kernel, bias = layer.get_weights()
    if kind == "Conv2D":
        m = nn.Conv2d(kernel.shape[2], kernel.shape[3], kernel.shape[:2],
                      padding="same" if layer.padding == "same" else 0)
        kernel = kernel.transpose(3, 2, 0, 1)
    elif kind == "Conv2DTranspose":
        m = nn.ConvTranspose2d(kernel.shape[3], kernel.shape[2], kernel.shape[:2], stride=layer.strides,
                               padding=layer.padding[0][0], output_padding=layer.output_padding)
        kernel = kernel.transpose(3, 2, 0, 1)
    elif kind == "Dense":
        if flattened_hwc is not None:   # NHWC flattens channels fastest, NCHW width fastest
            h, w, c = flattened_hwc
            kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
        m = nn.Linear(*kernel.shape)
        kernel = kernel.T
    else:
        raise TypeError(f"no torch twin for {kind}")
    m.weight.data = torch.from_numpy(np.ascontiguousarray(kernel))
    m.bias.data = torch.from_numpy(bias.copy())
    return m


def torch_twin(torch, model):
    """The torch (NCHW) module that computes what the gpunet ``model`` computes, same weights."""
    nn = torch.nn
    modules, flattened_hwc = [], None
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "MaxPooling2D":
            modules.append(nn.MaxPool2d(layer.pool_size, layer.strides))
        elif kind == "Flatten":
            flattened_hwc = layer.input_shape[1:]
            modules.append(nn.Flatten())
        else:
            modules.append(_torch_layer(torch, layer, flattened_hwc))
            flattened_hwc = None
            # softmax: folded into the loss on both sides
            modules += {"relu": [nn.ReLU()], "sigmoid": [nn.Sigmoid()]}.get(layer.activation, [])
    return nn.Sequential(*modules)


def make_data(rng, shape, classes):
    x = rng.random(shape, dtype=np.float32)
    y = rng.integers(0, classes, shape[0]) if classes else rng.random((*shape[:3], 1), dtype=np.float32)
    return x, y


class ModelPair:
    """One model in both libraries: the gpunet model compiled with SGD, its torch twin on
    ``device`` with the same SGD and loss, the batch as NumPy (``x``, ``y``) and as torch tensors
    on the device (``tx``, ``ty``, NCHW). The scripts add how gpunet takes its step."""

    def __init__(self, torch, kind, batch, device="cpu", lr=0.01, seed=0):
        rng = np.random.default_rng(seed)
        gn.utils.set_random_seed(seed)
        self.torch = torch
        if kind == "cnn":
            self.model, (x, y) = gn_cnn(), make_data(rng, (batch, 28, 28, 1), 10)
            loss, self.torch_loss = "sparse_categorical_crossentropy", torch.nn.CrossEntropyLoss()
        else:
            self.model, (x, y) = gn_autoencoder(), make_data(rng, (batch, 32, 32, 1), 0)
            loss, self.torch_loss = "mse", torch.nn.MSELoss()
        self.model.compile(optimizer=gn.optimizers.SGD(learning_rate=lr), loss=loss)
        self.twin = torch_twin(torch, self.model).to(device)
        self.torch_opt = torch.optim.SGD(self.twin.parameters(), lr=lr)
        self.x, self.y = x, y
        self.tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(device)
        self.ty = torch.from_numpy(y if kind == "cnn" else y.transpose(0, 3, 1, 2).copy()).to(device)

    def torch_step(self):
        self.torch_opt.zero_grad(set_to_none=True)
        loss = self.torch_loss(self.twin(self.tx), self.ty)
        loss.backward()
        self.torch_opt.step()
        return float(loss.detach())

    def torch_predict(self):
        with self.torch.inference_mode():
            return self.twin(self.tx)


# -- per-op cases: forward + backward of one op -----------------------------------------------

class _OpData:
    """Random float32 arrays on gpunet's backend (NHWC) and the same values as torch tensors
    (NCHW) on ``device``."""

    def __init__(self, torch, device="cpu", seed=1):
        self.torch, self.device, self.rng = torch, device, np.random.default_rng(seed)

    def arrays(self, *shapes):
        be = gn.backend.current()
        return [be.asarray(self.rng.standard_normal(s, dtype=np.float32)) for s in shapes]

    def tensor(self, a, grad=True, nchw=False):
        a = np.asarray(gn.backend.current().to_numpy(a))
        a = a.transpose(0, 3, 1, 2) if nchw else a
        return self.torch.from_numpy(a.copy()).to(self.device).requires_grad_(grad)


def _conv_case(data, F, n, size, cin, cout, stride, dilation):
    x, w, b = data.arrays((n, size, size, cin), (3, 3, cin, cout), (cout,))
    s, d, pads = (stride, stride), (dilation, dilation), ((dilation, dilation),) * 2
    dy, = data.arrays(conv_ops.conv2d_forward(x, w, b, s, pads, d).shape)

    def gn_conv():
        conv_ops.conv2d_forward(x, w, b, s, pads, d)
        conv_ops.conv2d_backward_input(dy, w, x.shape, s, pads, d)
        conv_ops.conv2d_backward_filter(dy, x, w.shape, s, pads, d)
    tx, tw, tb = data.tensor(x, nchw=True), data.tensor(w.transpose(3, 2, 0, 1)), data.tensor(b)
    tdy = data.tensor(dy, grad=False, nchw=True)

    def torch_conv():
        F.conv2d(tx, tw, tb, stride=stride, padding=dilation, dilation=dilation).backward(tdy)
    kind = f"s{stride}" if dilation == 1 else f"d{dilation}"
    return f"conv 3x3 {kind} ({n},{size},{size},{cin})->{cout}", gn_conv, torch_conv


def _conv_transpose_case(data, F):
    x, w, b, dy = data.arrays((32, 8, 8, 64), (3, 3, 64, 64), (64,), (32, 16, 16, 64))
    crops, s, d = ((1, 0), (1, 0)), (2, 2), (1, 1)   # torch's padding=1, output_padding=1

    def gn_convt():
        conv_ops.conv2d_transpose_forward(x, w, b, s, crops, d)
        conv_ops.conv2d_transpose_backward_input(dy, w, x.shape, s, crops, d)
        conv_ops.conv2d_transpose_backward_filter(dy, x, w.shape, s, crops, d)
    tx, tw, tb = data.tensor(x, nchw=True), data.tensor(w.transpose(3, 2, 0, 1)), data.tensor(b)
    tdy = data.tensor(dy, grad=False, nchw=True)

    def torch_convt():
        F.conv_transpose2d(tx, tw, tb, stride=2, padding=1, output_padding=1).backward(tdy)
    return "conv-transpose 3x3 s2 (32,8,8,64)->64", gn_convt, torch_convt


def _pool_case(data, F):
    x, dy = data.arrays((64, 28, 28, 32), (64, 14, 14, 32))

    def gn_pool():
        _, argmax = pool_ops.max_pool2d_forward(x, (2, 2), (2, 2), "valid")
        pool_ops.max_pool2d_backward(dy, argmax, x.shape, (2, 2), (2, 2), "valid")
    tx, tdy = data.tensor(x, nchw=True), data.tensor(dy, grad=False, nchw=True)
    return "max pool 2x2 (64,28,28,32)", gn_pool, lambda: F.max_pool2d(tx, 2).backward(tdy)


def _batch_norm_case(data, F):
    x, dy = data.arrays((64, 14, 14, 64), (64, 14, 14, 64))
    gamma, beta = (gn.backend.current().asarray(v) for v in (np.ones(64), np.zeros(64)))

    def gn_bn():
        _, mean, inv_std, _ = norm_ops.batch_norm_train_forward(x, gamma, beta, 1e-3)
        norm_ops.batch_norm_backward(dy, x, gamma, mean, inv_std)
    tx, tg, tb = data.tensor(x, nchw=True), data.tensor(gamma), data.tensor(beta)
    tdy = data.tensor(dy, grad=False, nchw=True)

    def torch_bn():
        F.batch_norm(tx, None, None, tg, tb, training=True, eps=1e-3).backward(tdy)
    return "batch norm (64,14,14,64)", gn_bn, torch_bn


def _dense_case(data, F):
    x, w, b, dy = data.arrays((64, 3136), (3136, 128), (128,), (64, 128))

    def gn_dense():
        dense_ops.dense_forward(x, w, b)
        dense_ops.dense_backward(dy, x, w)
    tx, tw, tb, tdy = data.tensor(x), data.tensor(w.T), data.tensor(b), data.tensor(dy, grad=False)
    return "dense (64,3136)->128", gn_dense, lambda: F.linear(tx, tw, tb).backward(tdy)


def op_cases(torch, device="cpu"):
    """(name, gpunet callable, torch callable) per op: forward and every gradient, model shapes.

    gpunet's arrays live on the active backend, torch's tensors on ``device``.
    """
    data, F = _OpData(torch, device), torch.nn.functional
    return [_conv_case(data, F, 64, 14, 32, 64, 1, 1), _conv_case(data, F, 32, 32, 32, 64, 2, 1),
            _conv_case(data, F, 32, 32, 32, 32, 1, 2), _conv_transpose_case(data, F),
            _pool_case(data, F), _batch_norm_case(data, F), _dense_case(data, F)]
