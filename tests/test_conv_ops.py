"""Convolution ops and geometry: against loop references, finite differences and Keras's size rules."""
import numpy as np
import pytest

from checks import assert_close, check_backward
from gpunet.primitives import conv as C
from gpunet.primitives import conv_geometry as G

# float64 checks of the NumPy reference ops: they stay on numpy under any GPUNET_BACKEND
# (the kernels are compared with them in test_kernels_*.py)
pytestmark = pytest.mark.reference


# -- test-only references: slow, loop-based, written the other way round ------------------------

def _pad_or_crop(x, pads):
    """Zero-pad (positive) or crop (negative) the two spatial axes of an NHWC array."""
    x = np.pad(x, ((0, 0), *[(max(b, 0), max(a, 0)) for b, a in pads], (0, 0)))
    (t, b), (l, r) = pads
    return x[:, max(-t, 0):x.shape[1] - max(-b, 0), max(-l, 0):x.shape[2] - max(-r, 0), :]


def reference_conv2d(x, w, b, strides, pads, dilation):
    """Direct cross-correlation: loops over output pixels and kernel taps."""
    xp = _pad_or_crop(x, pads)
    kh, kw, _, cout = w.shape
    oh = (xp.shape[1] - (kh - 1) * dilation[0] - 1) // strides[0] + 1
    ow = (xp.shape[2] - (kw - 1) * dilation[1] - 1) // strides[1] + 1
    y = np.zeros((x.shape[0], oh, ow, cout))
    for p in range(oh):
        for q in range(ow):
            for i in range(kh):
                for j in range(kw):
                    pixel = xp[:, p * strides[0] + i * dilation[0], q * strides[1] + j * dilation[1], :]
                    y[:, p, q, :] += pixel @ w[i, j]
    return y if b is None else y + b


def keras_jax_padding(k, s, d, padding, output_padding):
    """Keras 3's padding of the stride-dilated input for conv_transpose (JAX convention)."""
    k_eff = (k - 1) * d + 1
    if padding == "valid":
        extra = max(k_eff, s) - k_eff if output_padding is None else output_padding
        return k_eff - 1, k_eff - 1 + extra
    if padding == "same":
        pad_len = s + k_eff - 2 if output_padding is None else k_eff + k_eff % 2 - 2 + output_padding
        left = min(pad_len // 2 + pad_len % 2, k_eff - 1)
        return left, pad_len - left
    before, after = padding   # gpunet's explicit crop, output_padding given back at the end
    return k_eff - 1 - before, k_eff - 1 - after + (output_padding or 0)


def reference_conv2d_transpose(x, w, b, strides, jax_pads, dilation):
    """JAX's way: dilate the input by the stride, pad, correlate with the flipped kernel."""
    n, h, wd, cin = x.shape
    dilated = np.zeros((n, (h - 1) * strides[0] + 1, (wd - 1) * strides[1] + 1, cin))
    dilated[:, ::strides[0], ::strides[1], :] = x
    flipped = w[::-1, ::-1].transpose(0, 1, 3, 2)
    return reference_conv2d(dilated, flipped, b, (1, 1), jax_pads, dilation)


# -- geometry --------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    ("valid", "valid"), ("SAME", "same"), (2, ((2, 2), (2, 2))), ((1, 3), ((1, 1), (3, 3))),
    (((0, 1), (2, 3)), ((0, 1), (2, 3))), ([[1, 0], [0, 1]], ((1, 0), (0, 1))),
])
def test_normalize_padding_spec(spec, expected):
    assert G.normalize_padding_spec(spec) == expected


@pytest.mark.parametrize("spec", ["full", "causal", -1, (1, -1), (1, 2, 3), ((1, 2), 3), 1.5, True, None])
def test_normalize_padding_spec_rejects(spec):
    with pytest.raises(ValueError, match="padding must be"):
        G.normalize_padding_spec(spec)


@pytest.mark.parametrize("n, k, s, d, expected", [
    (7, 3, 1, 1, (1, 1)), (7, 3, 2, 1, (1, 1)), (8, 3, 2, 1, (0, 1)), (6, 4, 1, 1, (1, 2)),
    (5, 3, 1, 2, (2, 2)), (9, 5, 3, 1, (1, 1)), (10, 1, 2, 1, (0, 0)), (7, 3, 2, 2, (2, 2)),
])
def test_same_padding_split(n, k, s, d, expected):
    assert G.same_padding(n, k, s, d) == expected
    before, after = expected
    assert G.conv_output_size(n, k, s, d, before, after) == -(-n // s)


@pytest.mark.parametrize("n, k, s, d, padding, op, expected", [
    (7, 3, 2, 1, "same", None, 14), (7, 3, 2, 1, "valid", None, 15), (7, 3, 1, 1, "same", None, 7),
    (7, 3, 1, 1, "valid", None, 9), (5, 2, 3, 1, "valid", None, 15), (5, 1, 3, 1, "same", None, 15),
    (7, 3, 2, 1, "same", 1, 14), (7, 3, 2, 1, "same", 0, 13), (7, 3, 2, 1, "valid", 1, 16),
    (4, 4, 2, 1, "same", None, 8), (4, 4, 2, 1, "same", 1, 7), (5, 3, 1, 2, "same", None, 5),
    (5, 3, 1, 2, "valid", None, 9), (4, 3, 2, 2, "same", None, 8), (4, 3, 2, 2, "valid", 1, 12),
    (7, 3, 2, 1, (1, 1), None, 13), (7, 3, 2, 1, (1, 1), 1, 14), (3, 3, 1, 1, (0, 2), None, 3),
])
def test_conv_transpose_output_size_follows_keras(n, k, s, d, padding, op, expected):
    start, end = G.transpose_crops_1d(k, s, d, padding, op)
    assert G.conv_transpose_output_size(n, k, s, d, start, end) == expected
    left, right = keras_jax_padding(k, s, d, padding, op)
    k_eff = (k - 1) * d + 1
    assert (start, end) == (k_eff - 1 - left, k_eff - 1 - right)


# -- forward against the loop references ---------------------------------------------------

CONV_CASES = [  # x shape, kernel (kh, kw, cout), strides, padding spec, dilation
    ((2, 6, 7, 3), (3, 3, 4), (1, 1), "valid", (1, 1)),
    ((1, 7, 7, 2), (3, 3, 3), (2, 2), "same", (1, 1)),
    ((2, 8, 6, 2), (4, 2, 2), (3, 2), "same", (1, 1)),
    ((1, 9, 9, 2), (3, 3, 2), (1, 1), "same", (2, 2)),
    ((2, 9, 8, 2), (3, 2, 3), (2, 2), "valid", (2, 2)),
    ((1, 7, 9, 2), (3, 3, 2), (2, 3), "same", (2, 1)),
    ((1, 5, 6, 2), (3, 3, 2), (1, 2), 1, (1, 1)),
    ((2, 5, 5, 1), (2, 3, 3), (2, 1), ((0, 2), (3, 1)), (1, 2)),
    ((1, 6, 6, 3), (1, 1, 2), (2, 2), "valid", (1, 1)),
]


def _conv_pads(x_shape, kernel, strides, padding, dilation):
    return G.conv_padding(G.normalize_padding_spec(padding), x_shape[1:3], kernel[:2], strides, dilation)


@pytest.mark.parametrize("x_shape, kernel, strides, padding, dilation", CONV_CASES)
def test_conv2d_forward_matches_loop_reference(rng, x_shape, kernel, strides, padding, dilation):
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((*kernel[:2], x_shape[3], kernel[2]))
    b = rng.standard_normal(kernel[2])
    pads = _conv_pads(x_shape, kernel, strides, padding, dilation)
    y = C.conv2d_forward(x, w, b, strides, pads, dilation)
    assert_close(y, reference_conv2d(x, w, b, strides, pads, dilation), rtol=1e-12, atol=1e-12)


TRANSPOSE_CASES = [  # x shape, kernel (kh, kw, cout), strides, padding spec, output_padding, dilation
    ((1, 4, 4, 2), (3, 3, 3), (2, 2), "same", None, (1, 1)),
    ((2, 3, 4, 2), (3, 3, 2), (2, 2), "valid", None, (1, 1)),
    ((1, 3, 3, 2), (3, 2, 2), (2, 3), "same", (1, 2), (1, 1)),
    ((1, 3, 4, 1), (3, 3, 2), (2, 2), "valid", (1, 0), (1, 1)),
    ((1, 4, 3, 2), (4, 4, 2), (2, 2), "same", None, (1, 1)),
    ((1, 4, 4, 2), (3, 3, 2), (1, 1), "same", None, (2, 2)),
    ((1, 3, 3, 2), (3, 2, 2), (2, 2), "same", None, (2, 2)),
    ((1, 3, 3, 2), (2, 2, 2), (3, 3), "valid", None, (1, 1)),   # stride > kernel: zeros at the end
    ((1, 4, 3, 2), (3, 3, 2), (2, 1), ((1, 0), (2, 1)), None, (1, 1)),
    ((1, 4, 4, 1), (3, 3, 2), (2, 2), 1, (1, 1), (1, 1)),
    ((1, 3, 3, 2), (1, 1, 3), (3, 2), "same", (2, 1), (1, 1)),
]


def _transpose_setup(rng, x_shape, kernel, strides, padding, output_padding, dilation):
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((*kernel[:2], kernel[2], x_shape[3]))
    b = rng.standard_normal(kernel[2])
    spec = G.normalize_padding_spec(padding)
    crops = G.conv_transpose_padding(spec, kernel[:2], strides, dilation, output_padding)
    return x, w, b, spec, crops


@pytest.mark.parametrize("x_shape, kernel, strides, padding, output_padding, dilation", TRANSPOSE_CASES)
def test_conv2d_transpose_forward_matches_keras_definition(rng, x_shape, kernel, strides, padding,
                                                           output_padding, dilation):
    x, w, b, spec, crops = _transpose_setup(rng, x_shape, kernel, strides, padding, output_padding, dilation)
    y = C.conv2d_transpose_forward(x, w, b, strides, crops, dilation)
    ops = output_padding or (None, None)
    specs = (spec, spec) if isinstance(spec, str) else spec
    jax_pads = [keras_jax_padding(k, s, d, p, o)
                for k, s, d, p, o in zip(kernel[:2], strides, dilation, specs, ops)]
    assert_close(y, reference_conv2d_transpose(x, w, b, strides, jax_pads, dilation), rtol=1e-12, atol=1e-12)


# -- gradients -----------------------------------------------------------------------------

@pytest.mark.parametrize("x_shape, kernel, strides, padding, dilation", CONV_CASES)
def test_conv2d_gradients(rng, x_shape, kernel, strides, padding, dilation):
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((*kernel[:2], x_shape[3], kernel[2]))
    b = rng.standard_normal(kernel[2])
    pads = _conv_pads(x_shape, kernel, strides, padding, dilation)
    saved = {}

    def forward(x, w, b):
        saved.update(x=x, w=w)
        return C.conv2d_forward(x, w, b, strides, pads, dilation)

    def backward(dy):
        dx = C.conv2d_backward_input(dy, saved["w"], saved["x"].shape, strides, pads, dilation)
        dw, db = C.conv2d_backward_filter(dy, saved["x"], saved["w"].shape, strides, pads, dilation)
        return [dx, dw, db]

    check_backward(forward, backward, [x, w, b])


@pytest.mark.parametrize("x_shape, kernel, strides, padding, output_padding, dilation", TRANSPOSE_CASES)
def test_conv2d_transpose_gradients(rng, x_shape, kernel, strides, padding, output_padding, dilation):
    x, w, b, _, crops = _transpose_setup(rng, x_shape, kernel, strides, padding, output_padding, dilation)
    saved = {}

    def forward(x, w, b):
        saved.update(x=x, w=w)
        return C.conv2d_transpose_forward(x, w, b, strides, crops, dilation)

    def backward(dy):
        dx = C.conv2d_transpose_backward_input(dy, saved["w"], saved["x"].shape, strides, crops, dilation)
        dw, db = C.conv2d_transpose_backward_filter(dy, saved["x"], saved["w"].shape, strides, crops, dilation)
        return [dx, dw, db]

    check_backward(forward, backward, [x, w, b])


def test_conv2d_without_bias_and_batch_one(rng):
    x = rng.standard_normal((1, 5, 5, 2))
    w = rng.standard_normal((3, 3, 2, 2))
    pads = ((1, 1), (1, 1))
    check_backward(lambda x, w: C.conv2d_forward(x, w, None, (1, 1), pads, (1, 1)),
                   lambda dy: [C.conv2d_backward_input(dy, w, x.shape, (1, 1), pads, (1, 1)),
                               C.conv2d_backward_filter(dy, x, w.shape, (1, 1), pads, (1, 1))[0]],
                   [x, w])


# -- dtypes and bad geometry ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ops_keep_the_input_dtype(rng, dtype):
    x = rng.standard_normal((2, 7, 6, 3)).astype(dtype)
    w = rng.standard_normal((3, 3, 3, 4)).astype(dtype)
    b = np.zeros(4, dtype)
    geometry = ((2, 2), ((1, 1), (0, 1)), (1, 1))
    y = C.conv2d_forward(x, w, b, *geometry)
    dx = C.conv2d_backward_input(y, w, x.shape, *geometry)
    dw, db = C.conv2d_backward_filter(y, x, w.shape, *geometry)
    t = C.conv2d_transpose_forward(y, w, None, *geometry)
    assert {a.dtype for a in (y, dx, dw, db, t)} == {np.dtype(dtype)}
    assert (dx.shape, dw.shape, db.shape, t.shape) == (x.shape, w.shape, b.shape, x.shape)


def test_transpose_is_the_adjoint_of_conv(rng):
    # <conv(x), y> == <x, conv_transpose(y)> with the same kernel and geometry (sizes chosen
    # so that the transpose gives back x's shape exactly).
    x = rng.standard_normal((2, 10, 7, 3))
    w = rng.standard_normal((3, 2, 3, 4))
    geometry = ((2, 3), ((1, 2), (0, 1)), (2, 1))
    y = rng.standard_normal(C.conv2d_forward(x, w, None, *geometry).shape)
    lhs = np.sum(C.conv2d_forward(x, w, None, *geometry) * y)
    rhs = np.sum(x * C.conv2d_transpose_forward(y, w, None, *geometry))
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)


def test_conv2d_forward_rejects_a_kernel_larger_than_the_padded_input(rng):
    with pytest.raises(ValueError, match=r"gives output \(0, 2\)"):
        C.conv2d_forward(np.zeros((1, 4, 4, 1)), np.zeros((5, 3, 1, 1)), None, (1, 1),
                         ((0, 0), (0, 0)), (1, 1))
