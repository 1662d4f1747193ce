"""MaxPooling2D, AveragePooling2D, the global poolings in 2-D and 1-D (channels last), with Keras's aliases."""
from .. import utils
from ..primitives import passes, pool
from .base import Layer

__all__ = [
    "MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AvgPool2D",
    "GlobalAveragePooling2D", "GlobalAvgPool2D", "GlobalMaxPooling2D", "GlobalMaxPool2D",
    "GlobalAveragePooling1D", "GlobalAvgPool1D", "GlobalMaxPooling1D", "GlobalMaxPool1D",
]

_RANK4 = "a 4-D input (batch, height, width, channels)"


def _positive_pair(value, what):
    pair = utils.normalize_tuple(value, 2, what)
    if min(pair) < 1:
        raise ValueError(f"{what} must be positive; received {what}={value!r}.")
    return pair


class _Pooling2D(Layer):
    """Shared settings and shape checks of windowed 2-D pooling; subclasses name the ops."""

    def __init__(self, pool_size=2, strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _positive_pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _positive_pair(strides, "strides")
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same'; received padding={padding!r}.")
        self.padding = padding.lower()
        self._x_shape = None

    def _output_hw(self, height, width):
        return tuple(None if n is None else pool.pool_geometry(n, k, s, self.padding)[0]
                     for n, k, s in zip((height, width), self.pool_size, self.strides))

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise self.shape_error(_RANK4, input_shape)
        out_hw = self._output_hw(*input_shape[1:3])
        if any(n is not None and n < 1 for n in out_hw):
            raise self.shape_error(
                f"height and width of at least the pool size {self.pool_size} with padding "
                f"'{self.padding}' (output would be {out_hw[0]}x{out_hw[1]})", input_shape)
        return (input_shape[0], *out_hw, input_shape[3])

    def forward(self, x, training=False):
        self.compute_output_shape(x.shape)
        self._x_shape = tuple(x.shape)
        return self._pool_forward(x)

    def backward(self, dy):
        if self._x_shape is None:
            raise RuntimeError(f"{type(self).__name__} '{self.name}': backward called before forward.")
        self.grads = []
        return self._pool_backward(dy)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size,
                "strides": self.strides, "padding": self.padding}


class MaxPooling2D(_Pooling2D):
    """Max over ``pool_size`` windows moved by ``strides`` (default: ``pool_size``).

    Input (N, H, W, C) -> output (N, OH, OW, C); ``padding="same"`` gives ``OH = ceil(H / sh)``,
    ``"valid"`` gives ``OH = (H - ph) // sh + 1``. Backward sends each gradient to the window's
    maximum (the first one on ties).
    """

    takes_relu_mask = True   # a model may have it apply the mask of the ReLU before it
    apply_relu_mask = False

    def _pool_forward(self, x):
        self._y, self._argmax = pool.max_pool2d_forward(x, self.pool_size, self.strides, self.padding)
        return self._y

    def _pool_backward(self, dy):
        if self.apply_relu_mask:
            # max(relu(x)) = relu(max(x)): the winner's ReLU mask is (y > 0), on the pooled cells only.
            dy = passes.relu_backward(dy, self._y)
        return pool.max_pool2d_backward(dy, self._argmax, self._x_shape, self.pool_size, self.strides,
                                        self.padding)


class AveragePooling2D(_Pooling2D):
    """Mean over ``pool_size`` windows moved by ``strides`` (default: ``pool_size``).

    Shapes as MaxPooling2D. With ``padding="same"`` border windows are averaged over their real
    cells only, as in Keras.
    """

    def _pool_forward(self, x):
        return pool.avg_pool2d_forward(x, self.pool_size, self.strides, self.padding)

    def _pool_backward(self, dy):
        return pool.avg_pool2d_backward(dy, self._x_shape, self.pool_size, self.strides, self.padding)


class GlobalAveragePooling2D(Layer):
    """Mean over height and width: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with ``keepdims``."""

    def __init__(self, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.keepdims = bool(keepdims)
        self._x_shape = None

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise self.shape_error(_RANK4, input_shape)
        n, _, _, c = input_shape
        return (n, 1, 1, c) if self.keepdims else (n, c)

    def forward(self, x, training=False):
        self.compute_output_shape(x.shape)
        self._x_shape = tuple(x.shape)
        return pool.global_avg_pool2d_forward(x, self.keepdims)

    def backward(self, dy):
        if self._x_shape is None:
            raise RuntimeError(f"GlobalAveragePooling2D '{self.name}': backward called before forward.")
        self.grads = []
        return pool.global_avg_pool2d_backward(dy, self._x_shape)

    def get_config(self):
        return {**super().get_config(), "keepdims": self.keepdims}


class _GlobalPooling(Layer):
    """Max or mean over the spatial axes, as one 2-D pool of the input's whole extent (1-D inputs
    (N, L, C) run as (N, 1, L, C)): the pooling kernels of kernels/pool.cu, no new ones."""

    _rank = 4
    _max = False

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{type(self).__name__} supports data_format='channels_last' only; "
                             f"received data_format={data_format!r}.")
        self.keepdims = bool(keepdims)
        self._x_shape = None

    def compute_output_shape(self, input_shape):
        if len(input_shape) != self._rank:
            expected = _RANK4 if self._rank == 4 else "a 3-D input (batch, steps, channels)"
            raise self.shape_error(expected, input_shape)
        n, c = input_shape[0], input_shape[-1]
        return (n, *([1] * (self._rank - 2)), c) if self.keepdims else (n, c)

    def forward(self, x, training=False):
        out_shape = self.compute_output_shape(x.shape)
        self._x_shape = tuple(x.shape)
        x4 = x if self._rank == 4 else x.reshape(x.shape[0], 1, *x.shape[1:])
        if self._max:
            hw = tuple(x4.shape[1:3])
            y, self._argmax = pool.max_pool2d_forward(x4, hw, hw, "valid")
        else:
            y = pool.global_avg_pool2d_forward(x4, keepdims=True)
        return y.reshape(out_shape)

    def backward(self, dy):
        if self._x_shape is None:
            raise RuntimeError(f"{type(self).__name__} '{self.name}': backward called before forward.")
        self.grads = []
        x4 = self._x_shape if self._rank == 4 else (self._x_shape[0], 1, *self._x_shape[1:])
        dy4 = dy.reshape(x4[0], 1, 1, x4[3])
        if self._max:
            hw = x4[1:3]
            dx = pool.max_pool2d_backward(dy4, self._argmax, x4, hw, hw, "valid")
        else:
            dx = pool.global_avg_pool2d_backward(dy4, x4)
        return dx.reshape(self._x_shape)

    def get_config(self):
        return {**super().get_config(), "data_format": "channels_last", "keepdims": self.keepdims}


class GlobalMaxPooling2D(_GlobalPooling):
    """Max over height and width: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with ``keepdims``;
    the gradient goes to the maximum (the first one on ties)."""

    _max = True


class GlobalAveragePooling1D(_GlobalPooling):
    """Mean over the steps: (N, L, C) -> (N, C), or (N, 1, C) with ``keepdims``."""

    _rank = 3


class GlobalMaxPooling1D(_GlobalPooling):
    """Max over the steps: (N, L, C) -> (N, C), or (N, 1, C) with ``keepdims``."""

    _rank, _max = 3, True


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
GlobalAvgPool1D = GlobalAveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D
