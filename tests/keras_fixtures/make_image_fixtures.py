"""Keras 3 reference values for image resizing and affine transforms (run with KERAS_BACKEND=jax;
not run in CI): writes image_ops.npz in the current folder."""
import keras
import numpy as np

rng = np.random.default_rng(0)
x = rng.random((2, 7, 9, 3)).astype(np.float32)
out = {"x": x}
for interp in ("bilinear", "nearest"):
    for size, crop in (((4, 5), False), ((10, 13), False), ((5, 5), True), ((3, 8), True)):
        layer = keras.layers.Resizing(*size, interpolation=interp, crop_to_aspect_ratio=crop)
        out[f"resize_{interp}_{size[0]}x{size[1]}_{int(crop)}"] = np.asarray(layer(x))
angle = 0.4
c, s = np.cos(angle), np.sin(angle)
transforms = np.array([[c, -s, 1.3, s, c, -0.7, 0, 0],          # rotation and shift
                       [1.6, 0, -2.2, 0, 0.7, 1.1, 0, 0]], np.float32)  # zoom
out["transforms"] = transforms
for interp in ("bilinear", "nearest"):
    for mode in ("constant", "reflect", "wrap", "nearest", "mirror"):
        out[f"affine_{interp}_{mode}"] = np.asarray(keras.ops.image.affine_transform(
            x, transforms, interpolation=interp, fill_mode=mode, fill_value=0.5))
np.savez("image_ops.npz", **out)
