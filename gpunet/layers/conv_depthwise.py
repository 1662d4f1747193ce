"""DepthwiseConv2D and SeparableConv2D (NHWC), over Conv2D's settings, checks and geometry.

Compute goes through ``gpunet.primitives.depthwise`` (kernels/depthwise.cu) and, for the
pointwise half of SeparableConv2D, the 1x1 conv of ``gpunet.primitives.conv``.
"""
import numpy as np

from .. import initializers
from ..primitives import conv as conv_ops
from ..primitives import depthwise as depthwise_ops
from .conv import Conv2D

__all__ = ["DepthwiseConv2D", "SeparableConv2D"]

_POINTWISE = ((1, 1), ((0, 0), (0, 0)), (1, 1))   # strides, pads, dilation of a 1x1 conv


def _depth_multiplier(value, kind):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"Invalid value for argument `depth_multiplier`. Expected a strictly positive value. "
                         f"Received depth_multiplier={value}.")
    return int(value)


class DepthwiseConv2D(Conv2D):
    """Each input channel convolved with its own ``depth_multiplier`` filters.

    Input ``(batch, height, width, C)`` -> output ``(batch, out_h, out_w, C * depth_multiplier)``,
    output channel ``c * depth_multiplier + m``. Weights (Keras's names and order): kernel
    ``(kh, kw, C, depth_multiplier)``, bias ``(C * depth_multiplier,)``. Padding, strides and
    dilation as Conv2D.
    """

    _ops = (depthwise_ops.depthwise_conv2d_forward, depthwise_ops.depthwise_conv2d_backward_input,
            depthwise_ops.depthwise_conv2d_backward_filter)
    _forward_saving = _whole_backward = None
    _weight_rules = False   # Keras names them depthwise_regularizer, ...: not supported yet

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        self.depth_multiplier = _depth_multiplier(depth_multiplier, type(self).__name__)
        super().__init__(1, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         kernel_initializer=depthwise_initializer, bias_initializer=bias_initializer, **kwargs)

    def build(self, input_shape):
        if input_shape[-1] is not None:
            self.filters = int(input_shape[-1]) * self.depth_multiplier
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        out = super().compute_output_shape(input_shape)
        return (*out[:3], input_shape[-1] * self.depth_multiplier)

    def _kernel_shape(self, in_channels):
        return (*self.kernel_size, in_channels, self.depth_multiplier)

    def get_config(self):
        config = super().get_config()
        for key in ("filters", "groups"):
            config.pop(key)
        config["depthwise_initializer"] = config.pop("kernel_initializer")
        return {**config, "depth_multiplier": self.depth_multiplier, "data_format": "channels_last"}


class SeparableConv2D(Conv2D):
    """A depthwise conv (``depth_multiplier`` filters per input channel, no bias) followed by a
    1x1 conv to ``filters`` channels, then the bias and the activation.

    Input ``(batch, height, width, C)`` -> ``(batch, out_h, out_w, filters)``. Weights (Keras's
    names and order): depthwise_kernel ``(kh, kw, C, depth_multiplier)``, pointwise_kernel
    ``(1, 1, C * depth_multiplier, filters)``, bias ``(filters,)``.
    """

    _forward_saving = _whole_backward = None
    _weight_rules = False   # Keras names them depthwise_ / pointwise_regularizer, ...: not supported yet

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        self.depth_multiplier = _depth_multiplier(depth_multiplier, type(self).__name__)
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         kernel_initializer=depthwise_initializer, bias_initializer=bias_initializer, **kwargs)
        self.pointwise_initializer = initializers.checked(pointwise_initializer,
                                                          "SeparableConv2D pointwise_initializer")
        self.depthwise_kernel = self.pointwise_kernel = None

    def build(self, input_shape):
        self._check_shape(input_shape)
        self._in_channels = int(input_shape[-1])
        mult = self.depth_multiplier
        self.depthwise_kernel = self.add_weight("depthwise_kernel", (*self.kernel_size, self._in_channels, mult),
                                                self.kernel_initializer)
        self.pointwise_kernel = self.add_weight("pointwise_kernel", (1, 1, self._in_channels * mult, self.filters),
                                                self.pointwise_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)
        self.kernel = self.depthwise_kernel   # what the shape checks look at

    def _forward_padded(self, x, pads, training):
        self._pads, self._x = pads, x
        self._mid = depthwise_ops.depthwise_conv2d_forward(x, self.compute_weight(self.depthwise_kernel), None, self.strides, pads,
                                                           self.dilation_rate)
        z = conv_ops.conv2d_forward(self._mid, self.compute_weight(self.pointwise_kernel), self.bias, *_POINTWISE)
        return self._activate(z, training, owned=True)

    def _linear_backward(self, dz):
        need_weights = self.trainable
        dmid = conv_ops.conv2d_backward_input(dz, self.compute_weight(self.pointwise_kernel), self._mid.shape, *_POINTWISE)
        geometry = (self.strides, self._pads, self.dilation_rate)
        dx = depthwise_ops.depthwise_conv2d_backward_input(dmid, self.compute_weight(self.depthwise_kernel), self._x.shape, *geometry) \
            if self.needs_input_gradient else None
        if not need_weights:
            self.grads = []
            return dx
        dpw, db = conv_ops.conv2d_backward_filter(dz, self._mid, self.pointwise_kernel.shape, *_POINTWISE)
        ddw, _ = depthwise_ops.depthwise_conv2d_backward_filter(dmid, self._x, self.depthwise_kernel.shape,
                                                                *geometry)
        self.grads = [ddw, dpw, db] if self.use_bias else [ddw, dpw]
        return dx

    def get_config(self):
        config = super().get_config()
        config.pop("groups")
        config["depthwise_initializer"] = config.pop("kernel_initializer")
        return {**config, "depth_multiplier": self.depth_multiplier, "data_format": "channels_last",
                "pointwise_initializer": initializers.serialize(self.pointwise_initializer)}
