"""Image files and arrays (Keras 3's keras.utils functions), with Pillow underneath.

    img = gn.utils.load_img("cat.jpg", target_size=(64, 64))   # a PIL image
    x = gn.utils.img_to_array(img)                             # float32 (64, 64, 3), 0..255
    gn.utils.save_img("out.png", x)                            # and array_to_img(x) -> PIL image
    y = gn.utils.to_categorical([0, 2, 1], num_classes=3)      # one-hot float32 (3, 3)

Pillow is an extra: ``pip install "gpunet[images]"``.
"""
import os

import numpy as np

__all__ = ["load_img", "img_to_array", "array_to_img", "save_img", "to_categorical", "resize_images",
           "crop_box_for_aspect_ratio", "ALLOWED_FORMATS"]

ALLOWED_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_COLOR_MODES = {"grayscale": ("L", 1), "rgb": ("RGB", 3), "rgba": ("RGBA", 4)}


def pil():
    try:
        from PIL import Image
    except ImportError:   # pragma: no cover - Pillow is in the test extra
        raise ImportError("gpunet's image utilities need Pillow: pip install 'gpunet[images]' "
                          "(or pip install Pillow).") from None
    return Image


def _color_mode(color_mode):
    if color_mode not in _COLOR_MODES:
        raise ValueError(f"color_mode must be one of {sorted(_COLOR_MODES)}; received {color_mode!r}.")
    return _COLOR_MODES[color_mode]


def _pil_resample(interpolation):
    image = pil()
    methods = {"nearest": image.NEAREST, "bilinear": image.BILINEAR, "bicubic": image.BICUBIC,
               "lanczos": image.LANCZOS, "box": image.BOX, "hamming": image.HAMMING}
    if interpolation not in methods:
        raise ValueError(f"interpolation must be one of {sorted(methods)}; received {interpolation!r}.")
    return methods[interpolation]


def open_image(path, color_mode="rgb"):
    """The file as a PIL image in ``color_mode``; a file Pillow cannot read is a ValueError naming it."""
    image = pil()
    mode, _ = _color_mode(color_mode)
    try:
        with open(path, "rb") as f:
            img = image.open(f)
            img.load()
    except (OSError, SyntaxError, ValueError) as error:   # PIL.UnidentifiedImageError is an OSError
        raise ValueError(f"Cannot read image file {os.fspath(path)!r}: {error}") from None
    return img.convert(mode) if img.mode != mode else img


def crop_box_for_aspect_ratio(height, width, target_height, target_width):
    """(top, left, crop height, crop width) of the largest centred window with the target's aspect
    ratio, as Keras's ``crop_to_aspect_ratio`` takes it."""
    crop_height = max(min(height, int(float(width * target_height) / target_width)), 1)
    crop_width = max(min(width, int(float(height * target_width) / target_height)), 1)
    return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width


def load_img(path, color_mode="rgb", target_size=None, interpolation="nearest", keep_aspect_ratio=False):
    """Load an image file as a PIL image (Keras's ``load_img``).

    target_size: ``(height, width)`` to resize to (with Pillow's ``interpolation``);
    keep_aspect_ratio: crop the centre to the target's aspect ratio first instead of stretching.
    """
    img = open_image(path, color_mode)
    if target_size is None:
        return img
    height, width = (int(s) for s in target_size)
    if (img.height, img.width) == (height, width):
        return img
    box = None
    if keep_aspect_ratio:
        top, left, ch, cw = crop_box_for_aspect_ratio(img.height, img.width, height, width)
        box = (left, top, left + cw, top + ch)
    return img.resize((width, height), _pil_resample(interpolation), box=box)


def img_to_array(img, data_format=None, dtype=None):
    """A PIL image as a float32 array (height, width, channels) (``data_format="channels_first"``:
    channels first); grey images get a channel axis of 1."""
    x = np.asarray(img, dtype=dtype or "float32")
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3:
        raise ValueError(f"img_to_array: unsupported image shape {x.shape}.")
    return np.moveaxis(x, -1, 0) if data_format == "channels_first" else x


def array_to_img(x, data_format=None, scale=True, dtype=None):
    """An array (height, width, 1 / 3 / 4 channels) as a PIL image; ``scale`` maps its range to 0..255."""
    x = np.asarray(x, dtype=dtype or "float32")
    if x.ndim != 3:
        raise ValueError(f"array_to_img expects an image array of rank 3 (height, width, channels); "
                         f"received shape {x.shape}.")
    if data_format == "channels_first":
        x = np.moveaxis(x, 0, -1)
    if scale:
        x = x - np.min(x)
        top = np.max(x)
        if top != 0:
            x = x / top
        x = x * 255
    modes = {1: "L", 3: "RGB", 4: "RGBA"}
    if x.shape[-1] not in modes:
        raise ValueError(f"array_to_img: unsupported channel count {x.shape[-1]} (1, 3 or 4).")
    values = np.clip(np.round(x), 0, 255).astype(np.uint8)
    return pil().fromarray(values[..., 0] if x.shape[-1] == 1 else values, modes[x.shape[-1]])


def save_img(path, x, data_format=None, file_format=None, scale=True, **kwargs):
    """Save an image array (height, width, channels) to ``path`` (format from the suffix or ``file_format``)."""
    img = array_to_img(x, data_format=data_format, scale=scale)
    if img.mode == "RGBA" and (file_format or os.path.splitext(os.fspath(path))[1].lower()) in ("jpg", "jpeg",
                                                                                                  ".jpg", ".jpeg"):
        img = img.convert("RGB")   # JPEG has no alpha, as Keras warns and does
    img.save(path, format=file_format, **kwargs)


def to_categorical(x, num_classes=None):
    """Integer class labels (any shape) -> one-hot float32 with a last axis of ``num_classes``
    (``max(x) + 1`` by default); a trailing axis of 1 is dropped first, as Keras does."""
    x = np.asarray(x)
    if x.dtype.kind == "f" and not np.array_equal(x, np.round(x)):
        raise ValueError("to_categorical needs integer class labels; received non-integer values.")
    x = x.astype(np.int64)
    if x.ndim > 1 and x.shape[-1] == 1:
        x = x[..., 0]
    num_classes = int(np.max(x)) + 1 if num_classes is None else int(num_classes)
    if x.size and (x.min() < 0 or x.max() >= num_classes):
        bad = x.min() if x.min() < 0 else x.max()
        raise ValueError(f"to_categorical: label {bad} is outside [0, {num_classes}) (num_classes={num_classes}).")
    return np.eye(num_classes, dtype=np.float32)[x]


def resize_images(x, size, interpolation="bilinear", crop_to_aspect_ratio=False):
    """Host-side resize of images (height, width, channels) or a batch of them, as Keras's Resizing
    layer computes it (half-pixel centres, no antialiasing); the Resizing layer runs the same on
    the device (gpunet.primitives.image)."""
    from ..primitives.image import resize_reference
    x = np.asarray(x, dtype=np.float32)
    batch = x[None] if x.ndim == 3 else x
    out = resize_reference(batch, tuple(int(s) for s in size), interpolation, crop_to_aspect_ratio)
    return out[0] if x.ndim == 3 else out
