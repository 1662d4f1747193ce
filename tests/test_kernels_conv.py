"""The convolution kernels (kernels/conv.cu) against the numpy backend.

Each case runs an op under the numpy backend and under a kernel backend, compares every output
(float32, rtol 1e-4, atol 1e-5), and checks which kernels the kernel backend launched, so no
NumPy path can stand in for a kernel. Shapes are small (cudasim runs a CUDA thread as an OS
thread) but cross every tile edge: 64-pixel and 64-channel GEMM tiles, 16-deep K steps.
"""
import re

import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, compare_with_numpy, run_on_backend, thread_order
from gpunet import backend, layers
from gpunet.primitives import conv as ops
from gpunet.primitives import conv_fused
from gpunet.primitives import conv_geometry as geometry


def _normal(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def _filter_kernels(bias_row=True):
    """What conv2d_backward_filter launches: one kernel, however its pixels are split (the last
    block of each tile adds the splits). A conv's bias gradient is one more row of that product
    (``bias_row``); a transposed conv's needs bias_backward."""
    return ["conv2d_backward_filter", *([] if bias_row else ["bias_backward"])]


# x shape, (kh, kw, filters), strides, padding, dilation -> expected output shape.
# padding: "valid" / "same" / explicit ((top, bottom), (left, right)); negative pads crop.
CONV_CASES = [
    ((2, 7, 9, 3), (3, 3, 4), (1, 1), "valid", (1, 1), (2, 5, 7, 4)),
    ((1, 7, 9, 3), (3, 3, 5), (2, 2), "same", (1, 1), (1, 4, 5, 5)),
    ((2, 8, 7, 67), (2, 3, 3), (3, 2), ((2, 0), (1, 3)), (1, 1), (2, 3, 5, 3)),
    ((1, 9, 9, 1), (3, 3, 67), (2, 2), ((1, 2), (0, 1)), (2, 2), (1, 4, 3, 67)),
    ((1, 5, 6, 67), (5, 5, 2), (1, 1), "same", (1, 1), (1, 5, 6, 2)),
    ((2, 7, 9, 1), (1, 1, 3), (3, 3), "valid", (1, 1), (2, 3, 3, 3)),
    ((1, 11, 10, 3), (3, 3, 4), (1, 1), "same", (2, 2), (1, 11, 10, 4)),
    ((1, 10, 9, 3), (3, 3, 4), (2, 2), "same", (3, 3), (1, 5, 5, 4)),
    ((1, 6, 5, 2), (1, 1, 3), (3, 3), ((-1, 0), (0, -1)), (1, 1), (1, 2, 2, 3)),
    ((1, 7, 8, 3), (2, 2, 3), (3, 3), ((0, 2), (1, 0)), (1, 1), (1, 3, 3, 3)),
    ((3, 16, 16, 3), (3, 3, 4), (1, 1), "valid", (1, 1), (3, 14, 14, 4)),
]


def _case_id(case):
    x_shape, kernel, strides, padding = case[:4]
    pad = padding if isinstance(padding, str) else "pad" + "_".join(str(p) for pair in padding for p in pair)
    return (f"x{'x'.join(map(str, x_shape))}-k{kernel[0]}x{kernel[1]}x{kernel[2]}"
            f"-s{strides[0]}{strides[1]}-{pad}-d{case[-2][0]}")


def _conv_pads(padding, x_shape, kernel_hw, strides, dilation):
    if not isinstance(padding, str):
        return padding
    return geometry.conv_padding(padding, x_shape[1:3], kernel_hw, strides, dilation)


@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv2d_matches_numpy(kernel_backend, rng, case):
    x_shape, (kh, kw, filters), strides, padding, dilation, out_shape = case
    x = _normal(rng, x_shape)
    w = _normal(rng, (kh, kw, x_shape[3], filters))
    b = _normal(rng, (filters,))
    pads = _conv_pads(padding, x_shape, (kh, kw), strides, dilation)
    y, = compare_with_numpy(kernel_backend, lambda: ops.conv2d_forward(x, w, b, strides, pads, dilation),
                  ["conv2d_forward"], "conv2d_forward")
    assert y.shape == out_shape
    compare_with_numpy(kernel_backend, lambda: ops.conv2d_forward(x, w, None, strides, pads, dilation),
             ["conv2d_forward"], "conv2d_forward without bias")
    dy = _normal(rng, out_shape)
    compare_with_numpy(kernel_backend, lambda: ops.conv2d_backward_input(dy, w, x_shape, strides, pads, dilation),
             ["conv2d_backward_input"], "conv2d_backward_input")
    compare_with_numpy(kernel_backend, lambda: ops.conv2d_backward_filter(dy, x, w.shape, strides, pads, dilation),
             _filter_kernels(), "conv2d_backward_filter")


# x shape, (kh, kw, filters), strides, padding, output_padding, dilation -> expected output shape.
TRANSPOSE_CASES = [
    ((2, 4, 5, 3), (3, 3, 4), (2, 2), "same", None, (1, 1), (2, 8, 10, 4)),
    ((1, 3, 4, 67), (3, 3, 2), (2, 2), "same", (1, 1), (1, 1), (1, 6, 8, 2)),
    ((2, 5, 4, 1), (2, 3, 3), (3, 2), "valid", None, (1, 1), (2, 15, 9, 3)),
    ((1, 4, 4, 3), (3, 3, 3), (2, 2), "valid", (1, 0), (1, 1), (1, 10, 9, 3)),
    ((1, 5, 5, 3), (3, 3, 67), (1, 1), "same", None, (2, 2), (1, 5, 5, 67)),
    ((2, 3, 3, 3), (5, 5, 4), (3, 3), "same", None, (1, 1), (2, 9, 9, 4)),
    ((1, 4, 3, 2), (3, 2, 3), (2, 3), ((1, 0), (0, 2)), (0, 1), (1, 1), (1, 8, 7, 3)),
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=lambda c: f"{_case_id(c)}-out_pad{c[4]}")
def test_conv2d_transpose_matches_numpy(kernel_backend, rng, case):
    x_shape, (kh, kw, filters), strides, padding, output_padding, dilation, out_shape = case
    crops = geometry.conv_transpose_padding(padding, (kh, kw), strides, dilation, output_padding)
    x = _normal(rng, x_shape)
    w = _normal(rng, (kh, kw, filters, x_shape[3]))
    b = _normal(rng, (filters,))
    y, = compare_with_numpy(kernel_backend, lambda: ops.conv2d_transpose_forward(x, w, b, strides, crops, dilation),
                  ["conv2d_backward_input"], "conv2d_transpose_forward")
    assert y.shape == out_shape
    dy = _normal(rng, out_shape)
    compare_with_numpy(kernel_backend,
             lambda: ops.conv2d_transpose_backward_input(dy, w, x_shape, strides, crops, dilation),
             ["conv2d_forward"], "conv2d_transpose_backward_input")
    compare_with_numpy(kernel_backend,
             lambda: ops.conv2d_transpose_backward_filter(dy, x, w.shape, strides, crops, dilation),
             _filter_kernels(bias_row=False),
             "conv2d_transpose_backward_filter")


@pytest.mark.parametrize("shape, kernels", [
    ((2, 3, 5, 3), ["bias_backward"]),
    ((1, 70), ["bias_backward"]),
    ((4, 40, 40, 67), ["bias_backward"]),     # 6400 rows: split in 12, summed by each column's last block
])
def test_bias_backward_matches_numpy(kernel_backend, rng, shape, kernels):
    dy = _normal(rng, shape)
    db, = compare_with_numpy(kernel_backend, lambda: ops.bias_backward(dy), kernels, "bias_backward")
    assert db.shape == (shape[-1],)


def test_gradients_are_bit_identical_across_runs(kernel_backend, rng):
    """Split reductions (filter and bias) and the phase gather repeat bit for bit, whatever order
    the simulator runs a block's threads in."""
    x = _normal(rng, (4, 32, 32, 3))
    w = _normal(rng, (3, 3, 3, 5))
    dy = _normal(rng, (4, 16, 16, 5))
    strides, pads, dilation = (2, 2), ((1, 0), (1, 0)), (1, 1)

    def gradients():
        dw, db = ops.conv2d_backward_filter(dy, x, w.shape, strides, pads, dilation)
        return ops.conv2d_backward_input(dy, w, x.shape, strides, pads, dilation), dw, db

    first, launched = run_on_backend(kernel_backend, gradients)
    assert launched == ["conv2d_backward_filter", "conv2d_backward_input"]   # split in 8, summed in-kernel
    for order in ("ascending", "descending"):   # cudasim's thread orders (cuda ignores them)
        with thread_order(order):
            again, _ = run_on_backend(kernel_backend, gradients)
        for name, a, b in zip(("dx", "dw", "db"), first, again):
            assert np.array_equal(a, b), f"{name} differs between two runs (thread order {order})"


@pytest.mark.parametrize("layer_class, kwargs", [
    (layers.Conv2D, dict(filters=5, kernel_size=(3, 2), strides=2, padding="same", activation="relu")),
    (layers.Conv2DTranspose, dict(filters=4, kernel_size=3, strides=2, padding="same", output_padding=1)),
])
def test_conv_layers_run_kernels(kernel_backend, rng, layer_class, kwargs):
    """A layer's forward and backward on a kernel backend equal the numpy backend's."""
    x = _normal(rng, (2, 5, 7, 3))

    def step():
        gn.utils.set_random_seed(5)
        layer = layer_class(**kwargs)
        be = backend.current()
        y = layer(be.asarray(x))
        dy = np.linspace(-1.0, 1.0, y.size).reshape(y.shape)
        dx = layer.backward(be.asarray(dy))
        return (y, dx, *layer.grads)

    expected, _ = run_on_backend("numpy", step)
    actual, launched = run_on_backend(kernel_backend, step)
    forward = "conv2d_forward" if layer_class is layers.Conv2D else "conv2d_backward_input"
    backward_input = "conv2d_backward_input" if layer_class is layers.Conv2D else "conv2d_forward"
    assert launched[0] == forward and launched.count(backward_input) == 1, launched
    bias = {"bias_backward"} if layer_class is layers.Conv2DTranspose else set()   # a conv's: in the filter's
    assert {"conv2d_backward_filter", *bias} <= set(launched), launched
    # Conv2D's ReLU runs in conv2d_forward's epilogue; its gradient from the output, in one kernel.
    assert "relu_forward" not in launched and launched.count("fused_activation_backward") == \
        int("activation" in kwargs), launched
    assert len(actual) == len(expected) == 4
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert_close(a, e, what=f"{layer_class.__name__} output {k}")


@pytest.mark.parametrize("op, call", [
    ("conv2d_forward", lambda x, w: ops.conv2d_forward(x, w, None, (1, 1), ((0, 0), (0, 0)), (1, 1))),
    ("conv2d_backward_input",
     lambda x, w: ops.conv2d_backward_input(x, w, (1, 6, 6, 2), (1, 1), ((1, 1), (1, 1)), (1, 1))),
    ("conv2d_backward_filter",
     lambda x, w: ops.conv2d_backward_filter(x, x, (1, 1, 2, 2), (1, 1), ((0, 0), (0, 0)), (1, 1))),
])
def test_kernel_path_refuses_float64(kernel_backend, op, call):
    x = np.zeros((1, 6, 6, 2))
    w = np.zeros((3, 3, 2, 2)) if op != "conv2d_backward_filter" else None
    with backend.use(kernel_backend):
        with pytest.raises(TypeError, match=rf"{op} on the {kernel_backend} backend runs float32 or bfloat16 or float16 kernels"):
            call(x, w)


def test_kernel_path_refuses_mismatched_channels(kernel_backend):
    x = np.zeros((1, 6, 6, 3), np.float32)
    w = np.zeros((3, 3, 2, 4), np.float32)
    with backend.use(kernel_backend):
        expected = r"conv2d_forward: x has shape \(1, 6, 6, 3\); expected \(1, 6, 6, 2\)"
        with pytest.raises(ValueError, match=expected):
            ops.conv2d_forward(x, w, None, (1, 1), ((0, 0), (0, 0)), (1, 1))


@pytest.mark.parametrize("op, call", [
    ("conv2d_forward", lambda: ops.conv2d_forward(
        np.zeros((1, 1024, 1024, 1), np.float32), np.zeros((3, 3, 1, 4096), np.float32), None,
        (1, 1), ((1, 1), (1, 1)), (1, 1))),
    ("conv2d_backward_input", lambda: ops.conv2d_backward_input(
        np.zeros((1, 1024, 1024, 1), np.float32), np.zeros((1, 1, 4096, 1), np.float32),
        (1, 1024, 1024, 4096), (1, 1), ((0, 0), (0, 0)), (1, 1))),
    ("conv2d_transpose_forward", lambda: ops.conv2d_transpose_forward(
        np.zeros((1, 1024, 1024, 1), np.float32), np.zeros((1, 1, 4096, 1), np.float32), None,
        (1, 1), ((0, 0), (0, 0)), (1, 1))),
])
def test_kernel_outputs_of_2_to_the_32_elements_are_refused(kernel_backend, monkeypatch, op, call):
    """y / dx of 2**32 elements would overflow the kernels' 32-bit indexes; small inputs pass."""
    with backend.use(kernel_backend) as be:
        monkeypatch.setattr(be, "empty", lambda *a: pytest.fail("allocated the output"))
        be.launch = lambda *a: pytest.fail("launched a kernel")
        with pytest.raises(OverflowError, match=rf"{op}: elements of (y|dx) \(1, 1024, 1024, 4096\) "
                                                r"= 4294967296 does not fit"):
            call()


# Transposed conv, s=2, crops ((0, 1), (0, 1)): x (1, 4, 4, 3), w (3, 3, 5, 3) -> y (1, 8, 8, 5).
_T_ARGS = ((2, 2), ((0, 1), (0, 1)), (1, 1))


@pytest.mark.parametrize("op, call", [
    ("conv2d_transpose_backward_input",
     lambda dy, x, w: ops.conv2d_transpose_backward_input(dy, w, x.shape, *_T_ARGS)),
    ("conv2d_transpose_backward_filter",
     lambda dy, x, w: ops.conv2d_transpose_backward_filter(dy, x, w.shape, *_T_ARGS)),
    ("conv2d_transpose_backward", lambda dy, x, w: conv_fused.conv2d_transpose_backward(dy, x, w, *_T_ARGS)),
])
@pytest.mark.parametrize("dy_shape", [(1, 9, 9, 5), (1, 7, 8, 5), (2, 8, 8, 5), (1, 8, 8, 4)])
def test_transpose_backward_refuses_a_dy_of_another_shape(kernel_backend, op, call, dy_shape):
    """A dy one pixel too large would still run (its conv crops it) and give wrong gradients."""
    x, w = np.zeros((1, 4, 4, 3), np.float32), np.zeros((3, 3, 5, 3), np.float32)
    dy = np.zeros(dy_shape, np.float32)
    expected = rf"{op}: dy has shape {re.escape(str(dy_shape))}; expected \(1, 8, 8, 5\)"
    for name in ("numpy", kernel_backend):
        with backend.use(name):
            with pytest.raises(ValueError, match=expected):
                call(dy, x, w)


@pytest.mark.parametrize("call, message", [
    (lambda: ops.conv2d_backward_input(np.zeros((1, 4, 4, 3), np.float32), np.zeros((3, 3, 2, 2), np.float32),
                                       (1, 6, 6, 2), (1, 1), ((0, 0), (0, 0)), (1, 1)),
     r"conv2d_backward_input: dy has shape \(1, 4, 4, 3\); expected \(1, 4, 4, 2\)"),
    (lambda: ops.conv2d_transpose_forward(np.zeros((1, 4, 4, 2), np.float32), np.zeros((3, 3, 5, 3), np.float32),
                                          None, *_T_ARGS),
     r"conv2d_transpose_forward: x has shape \(1, 4, 4, 2\); expected \(1, 4, 4, 3\)"),
    (lambda: ops.conv2d_transpose_backward_filter(np.zeros((1, 8, 8, 5), np.float32),
                                                  np.zeros((1, 4, 4, 2), np.float32), (3, 3, 5, 3), *_T_ARGS),
     r"conv2d_transpose_backward_filter: x has shape \(1, 4, 4, 2\); expected \(1, 4, 4, 3\)"),
    (lambda: ops.conv2d_transpose_backward_filter(np.zeros((1, 8, 8, 5)), np.zeros((1, 4, 4, 3)),
                                                  (3, 3, 5, 3), *_T_ARGS),
     r"conv2d_transpose_backward_filter on the \w+ backend runs float32 or bfloat16 or float16 kernels"),
])
def test_kernel_path_errors_name_the_callers_arguments(kernel_backend, call, message):
    """The transposed conv runs the conv kernels with its arrays in other roles; errors still
    name the op called and its own arguments (its x is not "the output gradient")."""
    with backend.use(kernel_backend):
        with pytest.raises((ValueError, TypeError), match=message):
            call()


def test_batch_of_zero_gives_zero_weight_gradients(kernel_backend):
    x, w = np.zeros((0, 5, 5, 2), np.float32), np.ones((3, 3, 2, 4), np.float32)
    dy = np.zeros((0, 3, 3, 4), np.float32)
    args = ((1, 1), ((0, 0), (0, 0)), (1, 1))
    dw, db = compare_with_numpy(kernel_backend, lambda: ops.conv2d_backward_filter(dy, x, w.shape, *args),
                      ["conv2d_backward_filter"], "conv2d_backward_filter, batch 0")
    assert dw.shape == w.shape and db.shape == (4,) and not dw.any() and not db.any()
    # The transposed conv of dy (0, 3, 3, 4) to x's shape, with the kernel (3, 3, 2, 4).
    dw, db = compare_with_numpy(kernel_backend, lambda: ops.conv2d_transpose_backward_filter(x, dy, w.shape, *args),
                      ["conv2d_backward_filter", "bias_backward"], "conv2d_transpose_backward_filter, batch 0")
    assert dw.shape == w.shape and db.shape == (2,) and not dw.any() and not db.any()
    dx, = compare_with_numpy(kernel_backend, lambda: ops.conv2d_backward_input(dy, w, x.shape, *args),
                   ["conv2d_backward_input"], "conv2d_backward_input, batch 0")
    assert dx.shape == x.shape
