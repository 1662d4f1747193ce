"""UpSampling2D and ZeroPadding2D (NHWC)."""
from .. import utils
from ..primitives import shape as shape_ops
from .base import Layer

__all__ = ["UpSampling2D", "ZeroPadding2D"]

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
