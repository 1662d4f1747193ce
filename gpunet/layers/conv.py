"""Conv2D and Conv2DTranspose: thin subclasses of one BaseConv (settings, weights, shape checks).

Compute goes through ``gpunet.primitives.conv``; sizes and paddings come from ``gpunet.primitives.conv_geometry``.
"""
import functools

import numpy as np

from .. import initializers, utils
from ..primitives import conv as conv_ops
from ..primitives import conv_fused, conv_grouped
from ..primitives import conv_geometry as geometry
from .activations import ActivationMixin
from .base import Layer, SymbolicTensor
from .reshaping import check_channels_last
from .weight_rules import WeightRulesMixin

__all__ = ["Conv2D", "Conv2DTranspose"]


def _positive_pair(value, what):
    pair = utils.normalize_tuple(value, 2, what)
    if min(pair) < 1:
        raise ValueError(f"{what} must be positive; received {value!r}.")
    return pair


class BaseConv(WeightRulesMixin, ActivationMixin, Layer):
    """What Conv2D and Conv2DTranspose share: arguments, weights, checks, forward and backward.

    A subclass names its ops (``_ops``) and says three things: its kernel shape for
    ``in_channels``, and per spatial axis the ``(before, after)`` padding its ops take and the
    output size for an input of a given size.
    """

    _ops = None   # (forward, backward_input, backward_filter) from gpunet.primitives.conv
    _whole_backward = None   # or one op giving (dx, dw, db), when its parts share work...
    _forward_saving = None   # ...and a training forward giving (y, what that backward reuses)
    needs_input_gradient = True   # a model's training step sets False on a first layer: dx is None
    fold_from = None   # a model sets (y, Epilogue) of the layer before, whose activation dx then folds

    @property
    def takes_fold(self):
        """Epilogues and folds need conv.py's own conv ops: Conv2D / Conv2DTranspose themselves,
        ungrouped (a subclass or grouped conv runs other ops, without the epilogue)."""
        return type(self) in _EPILOGUE_CLASSES and getattr(self, "groups", 1) == 1

    def _forward_epilogue(self):
        return super()._forward_epilogue() if self.takes_fold else None

    def __init__(self, filters, kernel_size, strides=1, padding="valid", dilation_rate=1,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        kind = type(self).__name__
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ValueError(f"{kind} filters must be a positive int; received {filters!r}.")
        self.filters = int(filters)
        self.kernel_size = _positive_pair(kernel_size, f"{kind} kernel_size")
        self.strides = _positive_pair(strides, f"{kind} strides")
        self.dilation_rate = _positive_pair(dilation_rate, f"{kind} dilation_rate")
        try:
            self.padding = geometry.normalize_padding_spec(padding)
        except ValueError as error:
            raise ValueError(f"{kind} {error}") from None
        self._init_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.checked(kernel_initializer, f"{kind} kernel_initializer")
        self.bias_initializer = initializers.checked(bias_initializer, f"{kind} bias_initializer")
        self.kernel = self.bias = None
        self._x = self._pads = self._saved = None

    # -- what a subclass defines (per spatial axis: 0 = height, 1 = width) ------------------
    def _kernel_shape(self, in_channels):
        """The kernel's shape for ``in_channels`` input channels (Keras's layout)."""
        raise NotImplementedError(f"{type(self).__name__} must define _kernel_shape(in_channels).")

    def _axis_padding(self, size, axis):
        """``(before, after)`` the ops take for an input of ``size`` on ``axis``."""
        raise NotImplementedError(f"{type(self).__name__} must define _axis_padding(size, axis).")

    def _axis_output(self, size, axis, pad):
        """The output size on ``axis`` for an input of ``size`` padded by ``pad``."""
        raise NotImplementedError(f"{type(self).__name__} must define _axis_output(size, axis, pad).")

    def _check_axis(self, shape, size, axis, pad):
        out = self._axis_output(size, axis, pad)
        if out < 1:
            what = ("height", "width")[axis]
            raise self.shape_error(f"an input giving an output {what} of at least 1; with padding "
                                   f"{self.padding!r} this one gives {out}", shape)

    # -- shapes ------------------------------------------------------------------------------
    def _check_shape(self, shape):
        """Raise a clear error for a bad input shape; return the ops' padding per known axis."""
        if len(shape) != 4:
            raise self.shape_error("a 4-D input (batch, height, width, channels)", shape)
        if shape[-1] is None:
            raise self.shape_error("inputs with a known number of channels (batch, height, width, channels)",
                                   shape)
        if self.kernel is not None and shape[-1] != self._in_channels:
            c = self._in_channels
            raise self.shape_error(f"inputs with {c} channels (batch, height, width, {c}), as it was built for",
                                   shape)
        pads = []
        for axis, size in enumerate(shape[1:3]):
            pad = None if size is None else self._axis_padding(size, axis)
            if pad is not None:
                self._check_axis(shape, size, axis, pad)
            pads.append(pad)
        return tuple(pads)

    def compute_output_shape(self, input_shape):
        """``(batch, out_h, out_w, filters)``; an unknown (None) height or width stays None."""
        pads = self._check_shape(input_shape)
        out_hw = tuple(None if pad is None else self._axis_output(size, axis, pad)
                       for axis, (size, pad) in enumerate(zip(input_shape[1:3], pads)))
        return (input_shape[0], *out_hw, self.filters)

    # -- layer contract ----------------------------------------------------------------------
    def build(self, input_shape):
        self._check_shape(input_shape)
        self._in_channels = int(input_shape[-1])
        self.kernel = self.add_weight("kernel", self._kernel_shape(self._in_channels), self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)
        self.built = True   # a direct build() followed by a call must not build again

    def __call__(self, inputs, training=False):
        # Check a concrete input before the base class builds from its shape with the batch
        # axis set to None, so that errors quote the shape actually received.
        if not isinstance(inputs, (SymbolicTensor, list, tuple)) and hasattr(inputs, "shape"):
            self._check_shape(inputs.shape)
        return super().__call__(inputs, training=training)

    def forward(self, x, training=False):
        """x ``(batch, height, width, channels)`` -> ``(batch, out_h, out_w, filters)``."""
        return self._forward_padded(x, self._check_shape(x.shape), training)

    def _op_kernel(self):
        """The kernel as the 2-D ops take it (Conv1D stores Keras's 3-D kernel and reshapes it),
        in the compute dtype."""
        return self.compute_weight(self.kernel)

    def _forward_padded(self, x, pads, training):
        """The forward of a 4-D ``x`` whose shape was checked, with the ops' ``pads``."""
        self._pads = pads
        self._x, self._saved = x, None
        geometry_args = (self.strides, self._pads, self.dilation_rate)
        fused = self._forward_epilogue()
        if training and self._forward_saving is not None and self.trainable and fused is None:
            z, self._saved = self._forward_saving(x, self._op_kernel(), self.bias, *geometry_args)
        elif fused is not None:
            z = self._ops[0](x, self._op_kernel(), self.bias, *geometry_args, activation=fused)
        else:
            z = self._ops[0](x, self._op_kernel(), self.bias, *geometry_args)
        return self._activate(z, training, owned=True, fused=fused)

    def backward(self, dy):
        return self._linear_backward(self._deactivate(dy))

    def _linear_backward(self, dz):
        _, backward_input, backward_filter = self._ops
        geometry_args = (self.strides, self._pads, self.dilation_rate)
        kernel = self._op_kernel()
        if self._whole_backward is not None and self.trainable:
            folds = {} if self.fold_from is None else {"fold": self.fold_from}
            dx, dw, db = self._whole_backward(dz, self._x, kernel, *geometry_args,
                                              need_dx=self.needs_input_gradient, saved=self._saved, **folds)
            self._saved = None      # patches kept by the forward are used once
            self.grads = [dw.reshape(self.kernel.shape), db] if self.use_bias else [dw.reshape(self.kernel.shape)]
            return dx
        folds = {} if self.fold_from is None else {"fold": self.fold_from}
        dx = backward_input(dz, kernel, self._x.shape, *geometry_args, **folds) if self.needs_input_gradient else None
        if not self.trainable:
            self.grads = []
            return dx
        dw, db = backward_filter(dz, self._x, kernel.shape, *geometry_args)
        dw = dw.reshape(self.kernel.shape)
        self.grads = [dw, db] if self.use_bias else [dw]
        return dx

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "dilation_rate": self.dilation_rate,
                "activation": self.activation, "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer)}


class Conv2D(BaseConv):
    """2-D convolution (cross-correlation), NHWC: ``activation(conv(x, kernel) + bias)``.

    Input ``(batch, height, width, in)`` -> output ``(batch, out_h, out_w, filters)``.
    Weights: kernel ``(kh, kw, in, filters)``, bias ``(filters,)``. ``padding`` is
    ``"valid"``, ``"same"`` (Keras's split, the odd pixel bottom/right) or explicit pixels:
    ``p``, ``(ph, pw)`` or ``((top, bottom), (left, right))``. ``strides`` and
    ``dilation_rate`` may both exceed 1 (Keras refuses that; gpunet computes it).
    """

    _ops = (conv_ops.conv2d_forward, conv_ops.conv2d_backward_input, conv_ops.conv2d_backward_filter)
    _forward_saving = staticmethod(conv_fused.conv2d_forward_saving)   # patches of x kept for dw
    _whole_backward = staticmethod(conv_fused.conv2d_backward)

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, dilation_rate=dilation_rate,
                         **kwargs)
        check_channels_last(type(self).__name__, data_format)
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
            raise ValueError(f"The number of groups must be a positive integer. Received: groups={groups}.")
        if self.filters % groups:
            raise ValueError(f"The number of filters must be evenly divisible by the number of groups. "
                             f"Received: groups={groups}, filters={self.filters}.")
        self.groups = int(groups)
        if self.groups > 1:   # G ordinary convs over channel slices (primitives.conv_grouped)
            ops = (conv_grouped.grouped_conv2d_forward, conv_grouped.grouped_conv2d_backward_input,
                   conv_grouped.grouped_conv2d_backward_filter)
            self._ops = tuple(functools.partial(op, groups=self.groups) for op in ops)
            self._forward_saving = self._whole_backward = None

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is not None and channels % self.groups:
            raise ValueError(f"The number of input channels must be evenly divisible by the number of groups. "
                             f"Received groups={self.groups}, but the input has {channels} channels (full "
                             f"input shape is {tuple(input_shape)}).")
        super().build(input_shape)

    def _kernel_shape(self, in_channels):
        return (*self.kernel_size, in_channels // self.groups, self.filters)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}

    def _axis_padding(self, size, axis):
        if self.padding == "valid":
            return (0, 0)
        if self.padding == "same":
            return geometry.same_padding(size, self.kernel_size[axis], self.strides[axis],
                                         self.dilation_rate[axis])
        return self.padding[axis]

    def _axis_output(self, size, axis, pad):
        return geometry.conv_output_size(size, self.kernel_size[axis], self.strides[axis],
                                         self.dilation_rate[axis], *pad)

    def _check_axis(self, shape, size, axis, pad):
        extent = geometry.effective_kernel(self.kernel_size[axis], self.dilation_rate[axis])
        if size + sum(pad) < extent:
            what = ("height", "width")[axis]
            raise self.shape_error(
                f"an input {what} of at least {extent} after padding {self.padding!r} (kernel "
                f"{self.kernel_size} at dilation {self.dilation_rate}); padded, this one is "
                f"{size + sum(pad)}", shape)


class Conv2DTranspose(BaseConv):
    """Transposed 2-D convolution (the input gradient of a conv), NHWC, as Keras 3 computes it.

    Input ``(batch, height, width, in)`` -> output ``(batch, out_h, out_w, filters)``.
    Weights: kernel ``(kh, kw, filters, in)``, bias ``(filters,)``. Output sizes follow Keras:
    ``"same"`` gives ``height * stride`` (k=3, s=2: 7x7 -> 14x14); ``"valid"`` gives
    ``(height - 1) * stride + max(k_eff, stride)``; with ``output_padding`` both give
    Keras's sizes. Explicit pixels crop that many from the full output
    ``(height - 1) * stride + k_eff``, then ``output_padding`` adds rows back at the end.
    ``output_padding`` must be smaller than the stride or the dilation on its axis.
    """

    _ops = (conv_ops.conv2d_transpose_forward, conv_ops.conv2d_transpose_backward_input,
            conv_ops.conv2d_transpose_backward_filter)
    _whole_backward = staticmethod(conv_fused.conv2d_transpose_backward)   # patches of dy built once

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, **kwargs)
        if output_padding is not None:
            output_padding = utils.normalize_tuple(output_padding, 2, "Conv2DTranspose output_padding")
            limits = tuple(max(s, d) for s, d in zip(self.strides, self.dilation_rate))
            if any(p < 0 or p >= limit for p, limit in zip(output_padding, limits)):
                raise ValueError(f"Conv2DTranspose output_padding must be >= 0 and smaller than the stride "
                                 f"or the dilation on its axis; received output_padding={output_padding} "
                                 f"with strides={self.strides}, dilation_rate={self.dilation_rate}.")
        self.output_padding = output_padding

    def _kernel_shape(self, in_channels):
        return (*self.kernel_size, self.filters, in_channels)

    def _axis_padding(self, size, axis):
        spec = self.padding if isinstance(self.padding, str) else self.padding[axis]
        extra = None if self.output_padding is None else self.output_padding[axis]
        return geometry.transpose_crops_1d(self.kernel_size[axis], self.strides[axis],
                                           self.dilation_rate[axis], spec, extra)

    def _axis_output(self, size, axis, pad):
        return geometry.conv_transpose_output_size(size, self.kernel_size[axis], self.strides[axis],
                                                   self.dilation_rate[axis], *pad)

    def get_config(self):
        return {**super().get_config(), "output_padding": self.output_padding}


_EPILOGUE_CLASSES = (Conv2D, Conv2DTranspose)
