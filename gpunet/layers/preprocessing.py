"""Image preprocessing and augmentation layers (Keras 3's), run inside the model on the device.

Rescaling, Resizing, CenterCrop: the same in training and inference. RandomCrop, RandomFlip,
RandomTranslation, RandomRotation, RandomZoom, RandomContrast, RandomBrightness: random in
training (``fit``, or an eager call, as Keras's), the identity in inference (RandomCrop then
centre-crops as Keras does). Images NHWC float. Randomness: each training call draws its
parameters from ``gn.utils.rng()``, or from ``seed + k`` for call k of a seeded layer (resumable:
a saved model keeps k, as Dropout's).

An image and its segmentation mask get the same geometric transform when passed together:
``layer({"images": x, "segmentation_masks": m})`` returns both (masks with nearest sampling).
These layers give no gradient to their input (Rescaling does): put them at the model's input.
"""
import numpy as np

from .. import backend, utils
from ..primitives import image as ops
from .base import Layer

__all__ = ["Rescaling", "Resizing", "CenterCrop", "RandomCrop", "RandomFlip", "RandomTranslation",
           "RandomRotation", "RandomZoom", "RandomContrast", "RandomBrightness"]


def _positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive int; received {value!r}.")
    return int(value)


def _range(factor, what, low=-1.0, high=1.0):
    """A factor as (lower, upper): a number f gives (-f, f); both within [low, high]."""
    lower, upper = (-float(factor), float(factor)) if isinstance(factor, (int, float, np.floating)) \
        else tuple(float(f) for f in factor)
    if not low <= lower <= upper <= high:
        raise ValueError(f"{what} must be a number or a (lower, upper) pair within [{low}, {high}]; "
                         f"received {factor!r}.")
    return lower, upper


class _ImageLayer(Layer):
    """Shared by the layers: NHWC checks, no weights, no input gradient (but Rescaling's)."""

    needs_input_gradient = True   # a model's training step sets False on a first layer

    def __call__(self, inputs, training=False):
        if isinstance(inputs, dict):   # an image + mask pair: host arrays in and out
            images = np.shape(inputs.get("images"))
            self.ensure_built((None, *images[-3:]))
            return self._pair(inputs, training)
        return super().__call__(inputs, training=training)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise self.shape_error("images of rank 4 (batch, height, width, channels)", input_shape)

    def backward(self, dy):
        self.grads = []
        if not self.needs_input_gradient or not getattr(self, "_transformed", False):
            return None if not self.needs_input_gradient else dy
        raise NotImplementedError(f"{type(self).__name__} '{self.name}' passes no gradient to its input; "
                                  f"use it on the model's input (as preprocessing layers are used).")

    def forward(self, x, training=False):
        if x.ndim != 4:
            raise self.shape_error("images of rank 4 (batch, height, width, channels)", x.shape)
        out = self._apply(x, training, interpolation=getattr(self, "interpolation", "bilinear"))
        self._transformed = out is not x
        return out

    def _pair(self, data, training):
        """{"images", "segmentation_masks"} with one random draw for both; host arrays in and out."""
        unknown = sorted(set(data) - {"images", "segmentation_masks", "labels"})
        if unknown or "images" not in data:
            raise ValueError(f"{type(self).__name__} '{self.name}' takes a dict with 'images' and optionally "
                             f"'segmentation_masks' (and 'labels', passed through); received keys {sorted(data)}.")
        device = backend.current()
        images = np.asarray(data["images"], np.float32)
        single = images.ndim == 3
        images = images[None] if single else images
        state = self._draw(images.shape, training)
        out = dict(data)
        out["images"] = self._apply(device.asarray(images), training, self.__dict__.get("interpolation", "bilinear"),
                                    state)
        if "segmentation_masks" in data:
            masks = np.asarray(data["segmentation_masks"])
            trailing = masks.shape[(0 if single else 1) + 2:]
            as_images = masks.astype(np.float32).reshape(images.shape[:3] + (-1,))
            moved = np.asarray(device.to_numpy(self._apply(device.asarray(as_images), training, "nearest", state,
                                                           is_mask=True)))
            moved = moved.reshape(moved.shape[:3] + trailing)
            out["segmentation_masks"] = (moved[0] if single else moved).astype(masks.dtype)
        out["images"] = np.asarray(device.to_numpy(out["images"]))
        out["images"] = out["images"][0] if single else out["images"]
        return out

    def _draw(self, shape, training):
        return None

    def get_config(self):
        return {**super().get_config(), **self._settings()}

    def _settings(self):
        return {}


class Rescaling(_ImageLayer):
    """``x * scale + offset`` (e.g. ``Rescaling(1 / 255)``), on inputs of any rank >= 2."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = float(scale), float(offset)

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise self.shape_error("inputs of rank >= 2 (batch, ...)", input_shape)

    def _as_images(self, x):
        return x.reshape(x.shape[0], -1, 1, x.shape[-1]) if x.ndim >= 2 else x

    def forward(self, x, training=False):
        n = x.shape[0]
        out = ops.intensity_forward(self._as_images(x), np.full(n, self.scale), np.full(n, self.offset))
        return out.reshape(x.shape)

    def backward(self, dy):
        self.grads = []
        if not self.needs_input_gradient:
            return None
        n = dy.shape[0]
        return ops.intensity_forward(self._as_images(dy), np.full(n, self.scale), np.zeros(n)).reshape(dy.shape)

    def _settings(self):
        return {"scale": self.scale, "offset": self.offset}


class Resizing(_ImageLayer):
    """Images resized to (height, width): bilinear or nearest, half-pixel centres as Keras 3; with
    ``crop_to_aspect_ratio`` the largest centred window of the target's aspect ratio is resized."""

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False, **kwargs):
        super().__init__(**kwargs)
        self.height = _positive_int(height, "Resizing height")
        self.width = _positive_int(width, "Resizing width")
        if interpolation not in ops.INTERPOLATIONS:
            raise ValueError(f"Resizing interpolation must be one of {ops.INTERPOLATIONS}; received {interpolation!r}.")
        self.interpolation, self.crop_to_aspect_ratio = interpolation, bool(crop_to_aspect_ratio)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])

    def _apply(self, x, training, interpolation, state=None, is_mask=False):
        return ops.resize_forward(x, (self.height, self.width), interpolation, self.crop_to_aspect_ratio)

    def _settings(self):
        return {"height": self.height, "width": self.width, "interpolation": self.interpolation,
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio}


class CenterCrop(Resizing):
    """The centred (height, width) window; an image smaller than that is resized to it (after a
    centre crop to its aspect ratio), as Keras 3 does."""

    def __init__(self, height, width, **kwargs):
        super().__init__(height, width, crop_to_aspect_ratio=True, **kwargs)

    def _window(self, h, w):
        if h >= self.height and w >= self.width:
            return (h - self.height) // 2, (w - self.width) // 2, self.height, self.width
        return None   # smaller: resize the aspect-ratio crop

    def _apply(self, x, training, interpolation, state=None, is_mask=False):
        return ops.resize_forward(x, (self.height, self.width), interpolation, True, self._window(*x.shape[1:3]))

    def _settings(self):
        return {"height": self.height, "width": self.width}


class _RandomLayer(_ImageLayer):
    """Seeded like Dropout: training call k of a seeded layer draws from ``seed + k``."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"{type(self).__name__} seed must be None or a non-negative int; received {seed!r}.")
        self.seed, self._calls = (None if seed is None else int(seed)), 0

    def __call__(self, inputs, training=True):   # an eager call augments, as Keras's layers do
        return super().__call__(inputs, training=training)

    def _generator(self):
        seed = int(utils.rng().integers(2 ** 32)) if self.seed is None else self.seed + self._calls
        self._calls += 1
        return np.random.default_rng(seed)

    def _draw(self, shape, training):
        return self._parameters(self._generator(), shape) if training else None

    def _apply(self, x, training, interpolation, state=None, is_mask=False):
        state = state if state is not None else self._draw(x.shape, training)
        if state is None:
            return self._inference(x, interpolation)
        return self._transform(x, state, interpolation, is_mask)

    def _inference(self, x, interpolation):
        return x

    def random_state(self):
        return {"calls": self._calls}

    def set_random_state(self, state):
        self._calls = int(state["calls"])

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class RandomCrop(_RandomLayer):
    """A random (height, width) window per batch in training (Keras 3: one offset for the batch);
    in inference, as CenterCrop."""

    def __init__(self, height, width, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.height = _positive_int(height, "RandomCrop height")
        self.width = _positive_int(width, "RandomCrop width")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])

    def _parameters(self, rng, shape):
        h, w = shape[1:3]
        if h < self.height or w < self.width:
            return "resize"
        return int(rng.integers(h - self.height + 1)), int(rng.integers(w - self.width + 1))

    def _transform(self, x, state, interpolation, is_mask):
        if state == "resize":
            return self._inference(x, interpolation)
        window = (state[0], state[1], self.height, self.width)
        return ops.resize_forward(x, (self.height, self.width), interpolation, False, window)

    def _inference(self, x, interpolation):
        return CenterCrop._apply(self, x, False, interpolation)

    _window = CenterCrop._window

    def _settings(self):
        return {"height": self.height, "width": self.width}


def _affine_batch(layer, x, transforms, interpolation, is_mask):
    fill = "constant" if is_mask and layer.fill_mode == "constant" else layer.fill_mode
    return ops.affine_forward(x, transforms, interpolation, fill, 0.0 if is_mask else layer.fill_value)


class _AffineLayer(_RandomLayer):
    """A random affine transform per image (Keras's 8-number layout), one kernel for all of them."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if fill_mode not in ops.FILL_MODES:
            raise ValueError(f"{type(self).__name__} fill_mode must be one of {ops.FILL_MODES}; received {fill_mode!r}.")
        if interpolation not in ops.INTERPOLATIONS:
            raise ValueError(f"{type(self).__name__} interpolation must be one of {ops.INTERPOLATIONS}; "
                             f"received {interpolation!r}.")
        self.fill_mode, self.interpolation, self.fill_value = fill_mode, interpolation, float(fill_value)

    def _transform(self, x, transforms, interpolation, is_mask):
        return _affine_batch(self, x, transforms, interpolation, is_mask)

    def _settings(self):
        return {"fill_mode": self.fill_mode, "interpolation": self.interpolation, "fill_value": self.fill_value}


def _rows(*columns):
    """(N, 8) transforms from per-image columns a0 a1 a2 b0 b1 b2 (c0 = c1 = 0)."""
    columns = np.broadcast_arrays(*[np.asarray(c, np.float64) for c in columns])
    return np.stack(list(columns) + [np.zeros_like(columns[0])] * 2, axis=1).astype(np.float32)


class RandomFlip(_AffineLayer):
    """Each image flipped left-right and / or up-down with probability 1/2 ("horizontal",
    "vertical" or "horizontal_and_vertical")."""

    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode="horizontal_and_vertical", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if mode not in self.MODES:
            raise ValueError(f"RandomFlip mode must be one of {self.MODES}; received {mode!r}.")
        self.mode = mode

    def _parameters(self, rng, shape):
        n, h, w = shape[:3]
        fx = rng.random(n) < 0.5 if "horizontal" in self.mode else np.zeros(n, bool)
        fy = rng.random(n) < 0.5 if "vertical" in self.mode else np.zeros(n, bool)
        sx, sy = np.where(fx, -1.0, 1.0), np.where(fy, -1.0, 1.0)
        return _rows(sx, 0, np.where(fx, w - 1, 0), 0, sy, np.where(fy, h - 1, 0))

    def _settings(self):
        return {"mode": self.mode}


class RandomTranslation(_AffineLayer):
    """Shifts each image by ``height_factor`` / ``width_factor`` (fractions of its size, a number f
    meaning [-f, f]), filling the uncovered part by ``fill_mode``."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._dy = _range(height_factor, "RandomTranslation height_factor")
        self._dx = _range(width_factor, "RandomTranslation width_factor")

    def _parameters(self, rng, shape):
        n, h, w = shape[:3]
        dy, dx = rng.uniform(*self._dy, n) * h, rng.uniform(*self._dx, n) * w
        return _rows(1, 0, -dx, 0, 1, -dy)

    def _settings(self):
        return {**super()._settings(), "height_factor": self.height_factor, "width_factor": self.width_factor}


class RandomRotation(_AffineLayer):
    """Rotates each image about its centre by ``factor`` turns (a number f: [-f, f] x 2 pi)."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self.factor = factor
        self._turns = _range(factor, "RandomRotation factor")

    def _parameters(self, rng, shape):
        n, h, w = shape[:3]
        angle = rng.uniform(*self._turns, n) * 2 * np.pi
        cos, sin = np.cos(angle), np.sin(angle)
        x_offset = ((w - 1) - (cos * (w - 1) - sin * (h - 1))) / 2
        y_offset = ((h - 1) - (sin * (w - 1) + cos * (h - 1))) / 2
        return _rows(cos, -sin, x_offset, sin, cos, y_offset)

    def _settings(self):
        return {**super()._settings(), "factor": self.factor}


class RandomZoom(_AffineLayer):
    """Zooms each image about its centre: a factor z > 0 zooms out (shows 1 + z times the size),
    z < 0 zooms in, as in Keras 3; ``width_factor`` None keeps the aspect ratio."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._zy = _range(height_factor, "RandomZoom height_factor")
        self._zx = None if width_factor is None else _range(width_factor, "RandomZoom width_factor")

    def _parameters(self, rng, shape):
        n, h, w = shape[:3]
        zy = 1 + rng.uniform(*self._zy, n)
        zx = zy if self._zx is None else 1 + rng.uniform(*self._zx, n)
        return _rows(zx, 0, (w - 1) / 2 * (1 - zx), 0, zy, (h - 1) / 2 * (1 - zy))

    def _settings(self):
        return {**super()._settings(), "height_factor": self.height_factor, "width_factor": self.width_factor}


class _IntensityLayer(_RandomLayer):
    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor, self.value_range = factor, tuple(float(v) for v in value_range)
        if len(self.value_range) != 2 or self.value_range[0] >= self.value_range[1]:
            raise ValueError(f"{type(self).__name__} value_range must be (low, high) with low < high; "
                             f"received {value_range!r}.")

    def _transform(self, x, state, interpolation, is_mask):
        if is_mask:   # intensity changes leave masks alone
            return x
        factor, delta = state
        means = ops.channel_means(x) if isinstance(self, RandomContrast) else None
        return ops.intensity_forward(x, factor, delta, means, self.value_range)

    def _settings(self):
        return {"factor": self.factor, "value_range": self.value_range}


class RandomContrast(_IntensityLayer):
    """Each image's contrast scaled by a factor in [1 - lower, 1 + upper] (a number f: [1 - f, 1 + f])
    about its per-channel mean, then clipped to ``value_range``."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(factor, value_range, seed, **kwargs)
        lower, upper = (float(factor),) * 2 if isinstance(factor, (int, float, np.floating)) else map(float, factor)
        if not (0 <= lower <= 1 and upper >= 0):
            raise ValueError(f"RandomContrast factor must be in [0, 1] (or a (lower, upper) pair of them); "
                             f"received {factor!r}.")
        self._span = (1 - lower, 1 + upper)

    def _parameters(self, rng, shape):
        return rng.uniform(*self._span, shape[0]), np.zeros(shape[0])


class RandomBrightness(_IntensityLayer):
    """Adds ``delta * (high - low)`` of ``value_range`` to each image, delta in [-f, f] (or the
    pair given), then clips to ``value_range``."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(factor, value_range, seed, **kwargs)
        self._delta = _range(factor, "RandomBrightness factor")

    def _parameters(self, rng, shape):
        span = self.value_range[1] - self.value_range[0]
        return np.ones(shape[0]), rng.uniform(*self._delta, shape[0]) * span
