"""UpSampling2D, ZeroPadding2D, Cropping2D and Cropping1D (channels last)."""
from .. import utils
from ..primitives import shape as shape_ops
from .base import Layer

__all__ = ["UpSampling2D", "ZeroPadding2D", "Cropping2D", "Cropping1D"]

_RANK4 = "a 4-D input (batch, height, width, channels)"


def _times(n, factor):
    return None if n is None else n * factor


class UpSampling2D(Layer):
    """Enlarge images by integer factors ``size = (sh, sw)``: (N, H, W, C) -> (N, sh*H, sw*W, C).

    ``interpolation="nearest"`` repeats each pixel; ``"bilinear"`` interpolates with half-pixel
    centres, the edge pixel repeated past the border (as Keras's image resize does).
    """

    def __init__(self, size=(2, 2), interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = utils.normalize_tuple(size, 2, "size")
        if min(self.size) < 1:
            raise ValueError(f"size must be positive; received size={size!r}.")
        if not isinstance(interpolation, str) or interpolation.lower() not in shape_ops.INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(shape_ops.INTERPOLATIONS)}; "
                             f"received interpolation={interpolation!r}.")
        self.interpolation = interpolation.lower()

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise self.shape_error(_RANK4, input_shape)
        n, h, w, c = input_shape
        return (n, _times(h, self.size[0]), _times(w, self.size[1]), c)

    def forward(self, x, training=False):
        self.compute_output_shape(x.shape)
        return shape_ops.upsample2d_forward(x, self.size, self.interpolation)

    def backward(self, dy):
        self.grads = []
        return shape_ops.upsample2d_backward(dy, self.size, self.interpolation)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "interpolation": self.interpolation}


def _padding_pairs(padding):
    """``p``, ``(ph, pw)`` or ``((top, bottom), (left, right))`` -> ((top, bottom), (left, right))."""
    message = (f"padding must be an int, a pair (ph, pw) or ((top, bottom), (left, right)) of "
               f"non-negative ints; received padding={padding!r}.")
    try:
        if isinstance(padding, (tuple, list)) and len(padding) == 2 and \
                all(isinstance(p, (tuple, list)) for p in padding):
            pairs = tuple(utils.normalize_tuple(p, 2, "padding") for p in padding)
        else:
            ph, pw = utils.normalize_tuple(padding, 2, "padding")
            pairs = ((ph, ph), (pw, pw))
    except ValueError:
        raise ValueError(message) from None
    if min(min(pair) for pair in pairs) < 0:
        raise ValueError(message)
    return pairs


class ZeroPadding2D(Layer):
    """Add rows and columns of zeros: (N, H, W, C) -> (N, top + H + bottom, left + W + right, C).

    ``padding``: ``p`` on every side, ``(ph, pw)`` (top and bottom ``ph``, left and right ``pw``),
    or ``((top, bottom), (left, right))``.
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = _padding_pairs(padding)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise self.shape_error(_RANK4, input_shape)
        n, h, w, c = input_shape
        (top, bottom), (left, right) = self.padding
        return (n, None if h is None else h + top + bottom, None if w is None else w + left + right, c)

    def forward(self, x, training=False):
        self.compute_output_shape(x.shape)
        return shape_ops.zero_pad2d_forward(x, self.padding)

    def backward(self, dy):
        self.grads = []
        return shape_ops.zero_pad2d_backward(dy, self.padding)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


def check_channels_last(layer, data_format):
    """gpunet is channels-last only: ``data_format`` None or "channels_last"."""
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{layer} supports data_format='channels_last' (NHWC) only; "
                         f"received data_format={data_format!r}.")


def _cropping_pairs(cropping):
    """Keras's Cropping2D argument -> ((top, bottom), (left, right)), with Keras's errors."""
    if isinstance(cropping, int):
        if cropping < 0:
            raise ValueError(f"`cropping` cannot be negative. Received: cropping={cropping}.")
        return ((cropping, cropping), (cropping, cropping))
    if not hasattr(cropping, "__len__"):
        raise ValueError("`cropping` should be either an int, a tuple of 2 ints (symmetric_height_crop, "
                         "symmetric_width_crop), or a tuple of 2 tuples of 2 ints ((top_crop, bottom_crop), "
                         f"(left_crop, right_crop)). Received: cropping={cropping}.")
    if len(cropping) != 2:
        raise ValueError(f"`cropping` should have two elements. Received: cropping={cropping}.")
    pairs = tuple(utils.normalize_tuple(c, 2, f"{which} entry of cropping")
                  for c, which in zip(cropping, ("1st", "2nd")))
    if min(min(p) for p in pairs) < 0:
        raise ValueError(f"`cropping` cannot be negative. Received: cropping={cropping}.")
    return pairs


class Cropping2D(Layer):
    """Remove rows and columns at the borders: (N, H, W, C) -> (N, H - top - bottom, W - left - right, C).

    ``cropping``: ``c`` on every side, ``(ch, cw)``, or ``((top, bottom), (left, right))``.
    Forward and backward are zero padding's kernels the other way round.
    """

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        check_channels_last("Cropping2D", data_format)
        self.cropping = _cropping_pairs(cropping)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise self.shape_error(_RANK4, input_shape)
        n, h, w, c = input_shape
        if (h is not None and sum(self.cropping[0]) >= h) or (w is not None and sum(self.cropping[1]) >= w):
            raise ValueError("Values in `cropping` argument should be smaller than the corresponding spatial "
                             f"dimension of the input. Received: input_shape={tuple(input_shape)}, "
                             f"cropping={self.cropping}")
        (top, bottom), (left, right) = self.cropping
        return (n, None if h is None else h - top - bottom, None if w is None else w - left - right, c)

    def forward(self, x, training=False):
        self.compute_output_shape(x.shape)
        return shape_ops.zero_pad2d_backward(x, self.cropping)

    def backward(self, dy):
        self.grads = []
        return shape_ops.zero_pad2d_forward(dy, self.cropping)

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping, "data_format": "channels_last"}


class Cropping1D(Layer):
    """Remove steps at the ends of sequences: (N, L, C) -> (N, L - start - end, C); ``cropping``
    an int or ``(start, end)``. Runs Cropping2D's kernels on (N, 1, L, C)."""

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.cropping = utils.normalize_tuple(cropping, 2, "cropping")
        if min(self.cropping) < 0:
            raise ValueError(f"`cropping` cannot be negative. Received: cropping={cropping}.")

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise self.shape_error("a 3-D input (batch, steps, channels)", input_shape)
        length = input_shape[1]
        if length is not None and length - sum(self.cropping) <= 0:
            raise ValueError("`cropping` parameter of `Cropping1D` layer must be smaller than the input length. "
                             f"Received: input_shape={tuple(input_shape)}, cropping={self.cropping}")
        return (input_shape[0], None if length is None else length - sum(self.cropping), input_shape[2])

    def forward(self, x, training=False):
        self.compute_output_shape(x.shape)
        n, length, c = x.shape
        y = shape_ops.zero_pad2d_backward(x.reshape(n, 1, length, c), ((0, 0), self.cropping))
        return y.reshape(n, -1, c)

    def backward(self, dy):
        self.grads = []
        n, length, c = dy.shape
        return shape_ops.zero_pad2d_forward(dy.reshape(n, 1, length, c), ((0, 0), self.cropping)).reshape(n, -1, c)

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping}
