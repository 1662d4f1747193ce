"""Conv1D and Conv1DTranspose: Conv2D and Conv2DTranspose on sequences seen as images of height 1.

Input ``(batch, steps, channels)`` runs as ``(batch, 1, steps, channels)`` through the 2-D ops and
kernels; the kernel is stored in Keras's 3-D layout and handed to the ops as a view of height 1.
"""
from .. import utils
from .conv import Conv2D, Conv2DTranspose

__all__ = ["Conv1D", "Conv1DTranspose", "Convolution1D", "Convolution1DTranspose"]

_RANK3 = "a 3-D input (batch, steps, channels)"


def _single(value, what):
    (single,) = utils.normalize_tuple(value, 1, what)
    if single < 1:
        raise ValueError(f"{what} must be positive; received {value!r}.")
    return single


class _OneD:
    """What Conv1D and Conv1DTranspose add to their 2-D class: shapes, kernel layout, config."""

    def _check_shape(self, shape):
        """Checks a 3-D input (or the (batch, 1, steps, channels) form the 2-D machinery passes)."""
        if len(shape) == 4 and shape[1] == 1:
            return super()._check_shape(shape)
        if len(shape) != 3:
            raise self.shape_error(_RANK3, shape)
        return super()._check_shape((shape[0], 1, shape[1], shape[2]))

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise self.shape_error(_RANK3, input_shape)
        n, _, steps, channels = super().compute_output_shape((input_shape[0], 1, *input_shape[1:]))
        return (n, steps, channels)

    def _op_kernel(self):
        return self.compute_weight(self.kernel).reshape(1, *self.kernel.shape)

    def _kernel_shape(self, in_channels):
        return super()._kernel_shape(in_channels)[1:]

    def forward(self, x, training=False):
        """x ``(batch, steps, channels)`` -> ``(batch, out_steps, filters)``."""
        if x.ndim != 3:
            raise self.shape_error(_RANK3, x.shape)
        pads = self._check_shape(x.shape)
        n, steps, channels = x.shape
        y = self._forward_padded(x.reshape(n, 1, steps, channels), pads, training)
        return y.reshape(n, y.shape[2], y.shape[3])

    def backward(self, dy):
        n, steps, channels = dy.shape
        dx = super().backward(dy.reshape(n, 1, steps, channels))
        return None if dx is None else dx.reshape(dx.shape[0], dx.shape[2], dx.shape[3])

    def _one_d_config(self, config):
        for key in ("kernel_size", "strides", "dilation_rate"):
            config[key] = config[key][1:]
        return config


class Conv1D(_OneD, Conv2D):
    """1-D convolution: ``(batch, steps, in)`` -> ``(batch, out_steps, filters)``.

    Weights: kernel ``(kernel_size, in / groups, filters)``, bias ``(filters,)``. ``padding``:
    "valid", "same" or "causal" (the input padded on the left by ``dilation_rate * (kernel_size - 1)``,
    so step t never sees later steps).
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, **kwargs):
        if padding not in ("valid", "same", "causal"):
            raise ValueError(f"Conv1D padding must be 'valid', 'same' or 'causal'; received padding={padding!r}.")
        self._causal = padding == "causal"
        super().__init__(filters, (1, _single(kernel_size, "Conv1D kernel_size")),
                         strides=(1, _single(strides, "Conv1D strides")), padding="valid" if self._causal else padding,
                         data_format=data_format, dilation_rate=(1, _single(dilation_rate, "Conv1D dilation_rate")),
                         groups=groups, **kwargs)

    def _axis_padding(self, size, axis):
        if self._causal and axis == 1:
            return (self.dilation_rate[1] * (self.kernel_size[1] - 1), 0)
        return super()._axis_padding(size, axis)

    def get_config(self):
        config = self._one_d_config(super().get_config())
        config["padding"] = "causal" if self._causal else config["padding"]
        return {**config, "data_format": "channels_last"}


class Conv1DTranspose(_OneD, Conv2DTranspose):
    """Transposed 1-D convolution: ``(batch, steps, in)`` -> ``(batch, out_steps, filters)``, sizes as
    Keras (``"same"``: ``steps * strides``). Weights: kernel ``(kernel_size, filters, in)``, bias ``(filters,)``.
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None, data_format=None,
                 dilation_rate=1, **kwargs):
        if padding not in ("valid", "same"):
            raise ValueError(f"Conv1DTranspose padding must be 'valid' or 'same'; received padding={padding!r}.")
        if data_format not in (None, "channels_last"):
            raise ValueError(f"Conv1DTranspose supports data_format='channels_last' only; "
                             f"received data_format={data_format!r}.")
        if output_padding is not None:
            output_padding = (0, _single_nonnegative(output_padding))
        super().__init__(filters, (1, _single(kernel_size, "Conv1DTranspose kernel_size")),
                         strides=(1, _single(strides, "Conv1DTranspose strides")), padding=padding,
                         output_padding=output_padding,
                         dilation_rate=(1, _single(dilation_rate, "Conv1DTranspose dilation_rate")), **kwargs)

    def get_config(self):
        config = self._one_d_config(super().get_config())
        if config["output_padding"] is not None:
            config["output_padding"] = config["output_padding"][1:]
        return {**config, "data_format": "channels_last"}


def _single_nonnegative(value):
    (single,) = utils.normalize_tuple(value, 1, "Conv1DTranspose output_padding")
    return single


Convolution1D = Conv1D
Convolution1DTranspose = Conv1DTranspose
