"""The U-Net benchmark case (issue 10): batch 16, 128x128x3 in, 32-64-128-256 channels, in gpunet
and as a torch twin with the same weights (NCHW), for gpu_vs_torch.py and cpu_vs_torch.py.

    encoder, per level c in 32, 64, 128:  Conv(c, 3, same)-ReLU, Conv(c, 3, same)-ReLU, keep, MaxPool 2
    bottleneck:                           Conv(256, 3, same)-ReLU x 2
    decoder, per level c in 128, 64, 32:  ConvT(c, 2, strides 2), Concatenate with the kept map,
                                          Conv(c, 3, same)-ReLU x 2
    head:                                 Conv(1, 1)-sigmoid, binary cross-entropy (on logits in torch)

Every conv is 3x3 "same" (torch padding=1) or 1x1, every transposed conv 2x2 stride 2 "valid"
(torch ConvTranspose2d(k=2, s=2)), so the two compute the same function; the torch twin takes its
modules from gpunet's layers in model order (cases._torch_layer transposes the kernels).
"""
import numpy as np

import cases as shared
import gpunet as gn

LEVELS = (32, 64, 128)
BOTTOM = 256


def gn_unet(size=128, channels=3):
    L = gn.layers
    x = inputs = gn.Input((size, size, channels))
    kept = []
    for c in LEVELS:
        x = L.Conv2D(c, 3, padding="same", activation="relu")(x)
        x = L.Conv2D(c, 3, padding="same", activation="relu")(x)
        kept.append(x)
        x = L.MaxPooling2D()(x)
    x = L.Conv2D(BOTTOM, 3, padding="same", activation="relu")(x)
    x = L.Conv2D(BOTTOM, 3, padding="same", activation="relu")(x)
    for c, skip in zip(reversed(LEVELS), reversed(kept)):
        x = L.Conv2DTranspose(c, 2, strides=2)(x)
        x = L.Concatenate()([x, skip])
        x = L.Conv2D(c, 3, padding="same", activation="relu")(x)
        x = L.Conv2D(c, 3, padding="same", activation="relu")(x)
    outputs = L.Conv2D(1, 1, activation="sigmoid")(x)
    return gn.Model(inputs, outputs)


def torch_unet(torch, model):
    """The torch module computing ``model`` (built by gn_unet) with its weights, ending in logits."""
    nn = torch.nn
    convs = [shared._torch_layer(torch, layer, None) for layer in model.layers
             if type(layer).__name__ in ("Conv2D", "Conv2DTranspose")]

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList(convs)

        def forward(self, x):
            relu, it, kept = torch.relu, iter(self.convs), []
            for _ in LEVELS:
                x = relu(next(it)(relu(next(it)(x))))
                kept.append(x)
                x = torch.nn.functional.max_pool2d(x, 2)
            x = relu(next(it)(relu(next(it)(x))))
            for skip in reversed(kept):
                x = torch.cat([next(it)(x), skip], dim=1)
                x = relu(next(it)(relu(next(it)(x))))
            return next(it)(x)     # logits: the sigmoid is folded into BCEWithLogitsLoss
    return UNet()


class UNetPair(shared.ModelPair):
    """The U-Net in both libraries, compiled with SGD and binary cross-entropy, one random batch
    (images in [0, 1), a 0/1 mask) as NumPy (``x``, ``y``) and as torch tensors on ``device``;
    ``torch_step`` / ``torch_predict`` are ModelPair's (its __init__ is replaced, not called)."""

    def __init__(self, torch, batch, device="cpu", size=128, lr=0.01, seed=0):
        rng = np.random.default_rng(seed)
        gn.utils.set_random_seed(seed)
        self.torch = torch
        self.model = gn_unet(size)
        self.model.compile(optimizer=gn.optimizers.SGD(learning_rate=lr), loss="binary_crossentropy")
        self.x = rng.random((batch, size, size, 3), dtype=np.float32)
        self.y = (rng.random((batch, size, size, 1)) > 0.5).astype(np.float32)
        self.twin = torch_unet(torch, self.model).to(device)
        self.torch_opt = torch.optim.SGD(self.twin.parameters(), lr=lr)
        self.torch_loss = torch.nn.BCEWithLogitsLoss()
        self.tx = torch.from_numpy(self.x.transpose(0, 3, 1, 2).copy()).to(device)
        self.ty = torch.from_numpy(self.y.transpose(0, 3, 1, 2).copy()).to(device)
