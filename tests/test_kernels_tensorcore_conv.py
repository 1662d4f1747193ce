"""The tensor-core convolutions (kernels/tc_conv.cu through primitives/tensorcore_conv.py) against
the NumPy reference, and the float32 conv layers under set_float32_matmul_precision("high").

Tolerance, as in test_kernels_tensorcore.py: both sides multiply the same rounded operands
exactly and add the K products in float32 (K = kh*kw*Cin for the forward, the pixel count for
the filter gradient), each within about K u32 of the sum of |products|, u32 = 2^-24, so per
element |kernel - reference| <= 2 (K + 1) 2^-24 (|patches| @ |w| + |b|), computed here by the
reference on |x| and |w|.
"""
import re

import ml_dtypes
import numpy as np
import pytest

import gpunet as gn
from checks import run_on_backend, thread_order
from gpunet import backend
from gpunet.primitives import conv, tensorcore_conv as tc
from gpunet.primitives import conv_geometry as geometry

DTYPES = {"tf32": np.float32, "bf16": ml_dtypes.bfloat16, "f16": np.float16}
# x shape, (kh, kw, filters), strides, padding, dilation: odd channel counts (the element-wise
# path), 8 / 16 channels (whole 16-byte chunks: cp.async), batch 1, stride / dilation / padding
# mixes, negative pads (crops), a 1x1 conv, a filter gradient whose pixels are split, kernels of
# up to 32 taps (the fast patch loaders keep one validity bit a tap) and of more.
CASES = [
    ("tf32", (2, 7, 9, 3), (3, 3, 4), (1, 1), "valid", (1, 1)),
    ("bf16", (1, 9, 9, 8), (3, 3, 16), (2, 2), ((1, 2), (0, 1)), (2, 2)),
    ("f16", (2, 8, 7, 67), (2, 3, 3), (3, 2), ((2, 0), (1, 3)), (1, 1)),
    ("tf32", (1, 6, 5, 16), (1, 1, 8), (3, 3), ((-1, 0), (0, -1)), (1, 1)),
    ("tf32", (1, 10, 9, 8), (3, 3, 8), (2, 2), "same", (3, 3)),
    ("f16", (1, 11, 10, 8), (3, 3, 8), (1, 1), "same", (2, 2)),
    ("tf32", (1, 5, 6, 33), (3, 3, 2), (1, 1), "same", (1, 1)),
    ("bf16", (3, 16, 16, 3), (3, 3, 5), (1, 1), "valid", (1, 1)),
    ("bf16", (1, 8, 9, 16), (5, 5, 8), (1, 1), "same", (1, 1)),   # 25 taps: the patch masks' bits 0-24
    ("tf32", (1, 9, 10, 8), (6, 6, 4), (1, 1), "same", (1, 1)),   # 36 taps > 32: element-wise patches
]


def _pads(padding, x_shape, kernel_hw, strides, dilation):
    if not isinstance(padding, str):
        return padding
    return geometry.conv_padding(padding, x_shape[1:3], kernel_hw, strides, dilation)


def _within(actual, expected, scale, k, what):
    tolerance = 2 * (k + 1) * 2.0 ** -24 * scale + 1e-30
    error = np.abs(actual.astype(np.float64) - expected)
    worst = np.unravel_index(np.argmax(error / tolerance), error.shape)
    assert (error <= tolerance).all(), f"{what}: error {error[worst]:.3g} at {worst} > bound {tolerance[worst]:.3g}"


@pytest.mark.parametrize("kind, x_shape, kernel, strides, padding, dilation", CASES,
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) and not isinstance(v[0], tuple) else None)
def test_forward_and_filter_gradient_match_numpy(kernel_backend, rng, kind, x_shape, kernel, strides, padding,
                                                 dilation):
    (kh, kw, filters), dtype = kernel, DTYPES[kind]
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((kh, kw, x_shape[3], filters)).astype(dtype)
    b = rng.standard_normal(filters).astype(np.float32)
    pads = _pads(padding, x_shape, (kh, kw), strides, dilation)
    forward = lambda: tc.conv2d_forward(x, w, b, strides, pads, dilation)   # noqa: E731
    (y_ref,), _ = run_on_backend("numpy", forward)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    gradient = lambda: tc.conv2d_backward_filter(dy, x, w.shape, strides, pads, dilation)   # noqa: E731
    (dw_ref,), _ = run_on_backend("numpy", gradient)
    out_hw = y_ref.shape[1:3]
    tile = {product: tc.plan(product, x_shape, w.shape, out_hw, strides, x.itemsize)[0].suffix
            for product in ("forward", "input", "filter")}   # the block tile tile_for picks (any of them)
    (y,), launched = run_on_backend(kernel_backend, forward)
    assert launched == [f"tc_conv2d_forward_{kind}{tile['forward']}"] and y.dtype == np.float32
    (dw,), launched = run_on_backend(kernel_backend, gradient)
    assert launched[0] == f"tc_conv2d_backward_filter_{kind}{tile['filter']}" and launched[1:] in ([], ["sum_splits"])
    with backend.use("numpy"):
        ax, aw, ady = (np.abs(v.astype(np.float32)) for v in (x, w, dy))
        y_scale = tc.conv2d_forward(ax, aw, np.abs(b), strides, pads, dilation)
        dw_scale = tc.conv2d_backward_filter(ady, ax, w.shape, strides, pads, dilation)
    _within(y, y_ref, y_scale, kh * kw * x_shape[3], f"{kind} forward")
    _within(dw, dw_ref, dw_scale, y_ref.size // filters, f"{kind} filter gradient")
    backward = lambda: tc.conv2d_backward_input(dy, w, x_shape, strides, pads, dilation)   # noqa: E731
    (dx_ref,), _ = run_on_backend("numpy", backward)
    (dx,), launched = run_on_backend(kernel_backend, backward)
    assert launched == [f"tc_conv2d_backward_input_{kind}{tile['input']}"]
    with backend.use("numpy"):
        dx_scale = tc.conv2d_backward_input(ady, aw, x_shape, strides, pads, dilation)
    _within(dx, dx_ref, dx_scale, kh * kw * filters, f"{kind} input gradient")


def test_bit_identical_across_thread_orders_and_alignments(rng):
    x = rng.standard_normal((2, 12, 12, 8)).astype(np.float32)
    w = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    dy = rng.standard_normal((2, 10, 10, 8)).astype(np.float32)
    dy2 = rng.standard_normal((2, 5, 5, 8)).astype(np.float32)    # stride 2: four phases
    pads = ((0, 0), (0, 0))
    results = []
    for order, misalign in (("ascending", 0), ("descending", 0), ("alternate", 4)):
        with thread_order(order), backend.use("cudasim") as be:
            be.misalign = misalign    # 4: the element-wise path instead of cp.async
            results.append([np.array(tc.conv2d_forward(x, w, None, (1, 1), pads, (1, 1))),
                            np.array(tc.conv2d_backward_filter(dy, x, w.shape, (1, 1), pads, (1, 1))),
                            np.array(tc.conv2d_backward_input(dy, w, x.shape, (1, 1), pads, (1, 1))),
                            np.array(tc.conv2d_backward_input(dy2, w, x.shape, (2, 2), pads, (1, 1)))])
    for other in results[1:]:
        for got, first in zip(other, results[0]):
            np.testing.assert_array_equal(got.view(np.uint32), first.view(np.uint32))


def test_float32_convs_use_tf32_under_high_precision(kernel_backend, rng):
    """Conv2D and Conv2DTranspose (output_padding 1) products: forward, filter gradients and the
    input gradients (stride 1, and stride 2 per phase: the transposed conv's forward, its bias and
    activation added by tc_finish) on tensor cores, every output against numpy under "high"."""
    x = rng.standard_normal((1, 5, 6, 8)).astype(np.float32)
    w = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    wt = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)    # (kh, kw, Cout, Cin) of the transpose
    pads = ((1, 1), (1, 1))
    t_pads = geometry.conv_transpose_padding("same", (3, 3), (2, 2), (1, 1), (1, 1))

    def products():
        y = conv.conv2d_forward(x, w, None, (1, 1), pads, (1, 1))
        dw, db = conv.conv2d_backward_filter(y, x, w.shape, (1, 1), pads, (1, 1))
        dx = conv.conv2d_backward_input(y, w, x.shape, (1, 1), pads, (1, 1))
        yt = conv.conv2d_transpose_forward(x, wt, None, (2, 2), t_pads, (1, 1))
        dxt = conv.conv2d_transpose_backward_input(yt, wt, x.shape, (2, 2), t_pads, (1, 1))
        dwt, _ = conv.conv2d_transpose_backward_filter(yt, x, wt.shape, (2, 2), t_pads, (1, 1))
        return y, dw, db, dx, yt, dxt, dwt
    gn.config.set_float32_matmul_precision("high")
    try:
        expected, _ = run_on_backend("numpy", products)
        actual, launched = run_on_backend(kernel_backend, products)
    finally:
        gn.config.set_float32_matmul_precision("highest")
    assert [re.sub(r"_128x\d+$", "", k) for k in launched if k.startswith("tc_")] == [
        "tc_conv2d_forward_tf32", "tc_conv2d_backward_filter_tf32", "tc_conv2d_backward_input_tf32",
        "tc_conv2d_backward_input_tf32", "tc_finish", "tc_conv2d_forward_tf32", "tc_conv2d_backward_filter_tf32"]
    assert "conv2d_backward_input" not in launched    # no FFMA product is left
    assert expected[4].shape == (1, 10, 12, 8)
    for got, want in zip(actual, expected):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max() * 10)
