"""Convolution geometry: padding specs, output sizes, and where a transposed conv crops.

Every function here is plain integer arithmetic, shared by the layers (which normalise
their arguments once) and the ops (which take the result as ``((top, bottom), (left, right))``).

Conventions, per spatial axis, with ``k_eff = (k - 1) * d + 1`` the dilated kernel extent:

* Conv2D: ``out = (in + pad_before + pad_after - k_eff) // s + 1``. ``"same"`` pads
  ``total = max((ceil(in / s) - 1) * s + k_eff - in, 0)``, ``total // 2`` before and the
  extra pixel after (bottom / right), as Keras (and TensorFlow, JAX) do.
* Conv2DTranspose: the "full scatter" of an input of length ``in`` has length
  ``(in - 1) * s + k_eff``; the output is that scatter with ``crop_start`` pixels cut from
  the start and ``crop_end`` from the end (a negative crop appends zeros). Those crops are
  exactly the padding of the forward conv whose input gradient the transposed conv is,
  which is how the ops take them. ``"valid"`` / ``"same"`` with or without
  ``output_padding`` follow Keras 3 (``backend_utils._convert_conv_transpose_padding_args_
  from_keras_to_jax``); explicit ints crop that many pixels, then ``output_padding`` is
  given back at the end.
"""
import math

import numpy as np

__all__ = [
    "effective_kernel", "normalize_padding_spec", "same_padding", "conv_padding",
    "conv_output_size", "conv_output_shape", "transpose_crops_1d", "conv_transpose_padding",
    "conv_transpose_output_size", "conv_transpose_output_shape",
]


def effective_kernel(k, d):
    """Extent of a kernel of ``k`` taps at dilation ``d``: ``(k - 1) * d + 1``."""
    return (k - 1) * d + 1


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def normalize_padding_spec(padding):
    """Check a user's padding: ``"valid"`` / ``"same"`` (any case), or explicit pixels.

    Explicit forms: ``p`` (every side), ``(ph, pw)`` (top = bottom = ph, left = right = pw)
    or ``((top, bottom), (left, right))``. Returns ``"valid"``, ``"same"`` or
    ``((top, bottom), (left, right))`` of non-negative ints.
    """
    if isinstance(padding, str):
        if padding.lower() in ("valid", "same"):
            return padding.lower()
    elif _is_int(padding):
        if padding >= 0:
            p = int(padding)
            return ((p, p), (p, p))
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        if all(_is_int(p) for p in padding):
            (ph, pw) = (int(p) for p in padding)
            pairs = ((ph, ph), (pw, pw))
        elif all(isinstance(p, (tuple, list)) and len(p) == 2 and all(_is_int(v) for v in p)
                 for p in padding):
            pairs = tuple((int(a), int(b)) for a, b in padding)
        else:
            pairs = None
        if pairs is not None and min(min(p) for p in pairs) >= 0:
            return pairs
    raise ValueError(f"padding must be 'valid', 'same', a non-negative int p, a pair (ph, pw) or "
                     f"((top, bottom), (left, right)); received padding={padding!r}.")


def same_padding(in_size, k, s, d):
    """Keras's ``"same"`` split on one axis: ``(before, after)``, the odd pixel after."""
    total = max((math.ceil(in_size / s) - 1) * s + effective_kernel(k, d) - in_size, 0)
    return total // 2, total - total // 2


def conv_padding(padding, in_hw, kernel_hw, strides, dilation):
    """Pixels a conv pads, ``((top, bottom), (left, right))``, for a normalised spec."""
    if padding == "valid":
        return ((0, 0), (0, 0))
    if padding == "same":
        return tuple(same_padding(n, k, s, d) for n, k, s, d in zip(in_hw, kernel_hw, strides, dilation))
    return tuple(tuple(p) for p in padding)


def conv_output_size(in_size, k, s, d, before, after):
    """Length of a conv's output on one axis (may come out < 1: the caller checks)."""
    return (in_size + before + after - effective_kernel(k, d)) // s + 1


def conv_output_shape(in_hw, kernel_hw, strides, pads, dilation):
    """``(out_h, out_w)`` of a conv given the pixels it pads, ``((t, b), (l, r))``."""
    return tuple(conv_output_size(n, k, s, d, *p)
                 for n, k, s, d, p in zip(in_hw, kernel_hw, strides, dilation, pads))


def transpose_crops_1d(k, s, d, padding, output_padding=None):
    """``(crop_start, crop_end)`` of the full scatter on one axis of a transposed conv.

    ``padding`` is ``"valid"``, ``"same"`` or an explicit ``(before, after)``; an input of
    length ``n`` gives ``(n - 1) * s + k_eff - crop_start - crop_end`` (the crops do not
    depend on ``n``).
    """
    k_eff = effective_kernel(k, d)
    if isinstance(padding, str):
        # Keras pads the stride-dilated input by (left, right) and correlates with the
        # flipped kernel; the same output is the full scatter cropped by k_eff - 1 - pad.
        if padding == "valid":
            extra = max(k_eff, s) - k_eff if output_padding is None else output_padding
            left, right = k_eff - 1, k_eff - 1 + extra
        else:
            if output_padding is None:
                pad_len = s + k_eff - 2
            else:
                pad_len = k_eff + k_eff % 2 - 2 + output_padding
            left = min(pad_len // 2 + pad_len % 2, k_eff - 1)
            right = pad_len - left
        return k_eff - 1 - left, k_eff - 1 - right
    before, after = padding
    return before, after - (output_padding or 0)


def conv_transpose_padding(padding, kernel_hw, strides, dilation, output_padding=None):
    """Crops of the full scatter, ``((top, bottom), (left, right))``, for the transpose ops.

    ``output_padding`` is None or a pair of ints. Negative entries mean zeros appended.
    """
    pads = (padding, padding) if isinstance(padding, str) else padding
    ops = output_padding if output_padding is not None else (None, None)
    return tuple(transpose_crops_1d(k, s, d, p, o)
                 for k, s, d, p, o in zip(kernel_hw, strides, dilation, pads, ops))


def conv_transpose_output_size(in_size, k, s, d, crop_start, crop_end):
    """Length of a transposed conv's output on one axis given its crops."""
    return (in_size - 1) * s + effective_kernel(k, d) - crop_start - crop_end


def conv_transpose_output_shape(in_hw, kernel_hw, strides, crops, dilation):
    """``(out_h, out_w)`` of a transposed conv given its crops ``((t, b), (l, r))``."""
    return tuple(conv_transpose_output_size(n, k, s, d, *c)
                 for n, k, s, d, c in zip(in_hw, kernel_hw, strides, dilation, crops))
