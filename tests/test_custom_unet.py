"""A small U-Net whose custom parts are written only with gn.ops - an attention gate layer
(call(), weights from add_weight, ops.conv) and a Dice loss and IoU metric (Python functions) -
trains beside the built-in fused layers: the loss falls and the IoU rises, on numpy and on the
kernels (cudasim)."""
import numpy as np

import gpunet as gn
from gpunet import backend, layers, ops


class AttentionGate(layers.Layer):
    """Attention U-Net's additive gate: x * sigmoid(psi(relu(theta(x) + phi(g)))), inputs [g, x]
    of one height and width; the output has x's shape."""

    def __init__(self, inter_channels=4, **kwargs):
        super().__init__(**kwargs)
        self.inter_channels = inter_channels

    def build(self, input_shape):
        g_shape, x_shape = input_shape
        self.theta = self.add_weight(shape=(1, 1, x_shape[-1], self.inter_channels), name="theta")
        self.phi = self.add_weight(shape=(1, 1, g_shape[-1], self.inter_channels), name="phi")
        self.psi = self.add_weight(shape=(1, 1, self.inter_channels, 1), name="psi")
        self.psi_bias = self.add_weight(shape=(1,), initializer="zeros", name="psi_bias")

    def call(self, inputs):
        g, x = inputs
        joint = ops.relu(ops.conv(x, self.theta) + ops.conv(g, self.phi))
        return x * ops.sigmoid(ops.conv(joint, self.psi) + self.psi_bias)

    def get_config(self):
        return {**super().get_config(), "inter_channels": self.inter_channels}


def dice_loss(y_true, y_pred):
    """1 - soft Dice per sample, smoothed by 1."""
    inter = ops.sum(y_true * y_pred, axis=(1, 2, 3))
    total = ops.sum(y_true, axis=(1, 2, 3)) + ops.sum(y_pred, axis=(1, 2, 3))
    return 1.0 - (2.0 * inter + 1.0) / (total + 1.0)


def iou(y_true, y_pred):
    """Intersection over union of the thresholded prediction, per sample."""
    pred = ops.cast(ops.greater(y_pred, 0.5), "float32")
    inter = ops.sum(pred * y_true, axis=(1, 2, 3))
    union = ops.sum(ops.maximum(pred, y_true), axis=(1, 2, 3))
    return (inter + 1e-3) / (union + 1e-3)


def build_unet(size):
    inputs = gn.Input((size, size, 1))
    c1 = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    c2 = layers.Conv2D(8, 3, padding="same", activation="relu")(layers.MaxPooling2D()(c1))
    up = layers.Conv2DTranspose(4, 2, strides=2)(c2)
    gated = AttentionGate(4)([up, c1])
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(layers.Concatenate()([up, gated]))
    return gn.Model(inputs, layers.Conv2D(1, 1, activation="sigmoid")(x))


def squares(count, size, seed=0):
    """Noisy images with one bright square each, and its mask."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((count, size, size, 1), np.float32)
    for k in range(count):
        side = rng.integers(size // 4, size // 2 + 1)
        top, left = rng.integers(0, size - side, 2)
        masks[k, top:top + side, left:left + side] = 1.0
    images = masks + 0.3 * rng.standard_normal(masks.shape).astype(np.float32)
    return images, masks


def _train(size, count, epochs):
    x, y = squares(count, size)
    model = build_unet(size)
    model.compile(optimizer=gn.optimizers.Adam(0.02), loss=dice_loss, metrics=[iou])
    before = model.evaluate(x, y, verbose=0, return_dict=True)
    model.fit(x, y, batch_size=8, epochs=epochs, verbose=0)
    after = model.evaluate(x, y, verbose=0, return_dict=True)
    return before, after


def test_unet_with_custom_gate_and_dice_trains_on_numpy():
    with backend.use("numpy"):
        before, after = _train(size=16, count=32, epochs=10)
    assert after["loss"] < before["loss"] - 0.2, (before, after)
    assert after["iou"] > before["iou"] + 0.2, (before, after)


def test_unet_with_custom_gate_and_dice_trains_on_the_kernels(kernel_backend):
    with backend.use(kernel_backend):
        before, after = _train(size=8, count=16, epochs=8)
    assert after["loss"] < before["loss"] - 0.1, (before, after)
    assert after["iou"] > before["iou"] + 0.1, (before, after)
