"""Dense, Conv2D and Conv2DTranspose primitives with bf16 / fp16 activations (issue 11): each path
on the kernel backends against the NumPy reference, and the reference against float64.

What runs where (kernel backends): the products on tensor cores (tc_gemm.cu / tc_conv.cu, bf16 /
fp16 mma, float32 sums; a strided input gradient, hence a strided transposed conv's forward, one
GEMM per phase) then tc_finish (bias, activation or folded gradient, one rounding to the 16-bit
type); with tensor cores unusable (cuda below sm_80, forced here) every product on gemm.cu /
conv.cu instantiated for the 16-bit type. y and dx are 16-bit; dw and db float32.

Tolerances. Every product of two 16-bit values is exact in float32 (at most 22 significant bits), so
a kernel and the reference compute the same float32 sum of K products in different orders: each is
within K u32 S of the exact sum (u32 = 2^-24, S = |A| @ |B| + |b|, computed by the float64 reference
on the absolute values), so they differ by at most B = 2 (K + 1) u32 S. A float32 output (dw, db)
must agree within B. A 16-bit output is that float32 value rounded once to nearest: two values B
apart round to results at most B + 1 ulp apart (ulp of the 16-bit type at their magnitude); ReLU
and its gate are 1-Lipschitz and keep the bound. The reference against float64 on the same 16-bit
inputs (the round-once rule): one float32 sum (within B / 2) rounded once, so within B / 2 plus half
an ulp; rounding twice (a 16-bit intermediate) would not fit.
"""
import numpy as np
import pytest

from checks import run_on_backend
from gpunet.primitives import conv, conv_geometry, conv_grouped, dense, precision, tensorcore
from gpunet.primitives.epilogue import Epilogue

HALF = {"bf16": precision.BFLOAT16, "f16": precision.FLOAT16}
MANTISSA, MIN_EXPONENT = {"bf16": 7, "f16": 10}, {"bf16": -126, "f16": -14}
U32 = 2.0 ** -24
RELU = Epilogue("relu")


def ulp(magnitude, kind):
    """The spacing of the 16-bit type at ``magnitude`` (its subnormal spacing below the normals)."""
    exponent = np.floor(np.log2(np.maximum(magnitude, 2.0 ** -149)))
    return 2.0 ** (np.maximum(exponent, MIN_EXPONENT[kind]) - MANTISSA[kind])


def check(name, actual, reference, exact, scale, k, kind):
    """actual (kernel) against reference (numpy), and the reference against exact (float64)."""
    bound = 2 * (k + 1) * U32 * scale
    half = actual.dtype != np.float32
    assert actual.dtype == reference.dtype == (HALF[kind] if half else np.float32), f"{name}: {actual.dtype}"
    tests = [("kernel against numpy", actual, reference, bound + (ulp(np.abs(reference) + bound, kind) if half else 0)),
             ("numpy against float64", reference, exact,
              bound / 2 + (ulp(np.abs(exact) + bound, kind) / 2 if half else 0))]
    for what, got, want, tolerance in tests:
        error = np.abs(got.astype(np.float64) - want)
        worst = np.unravel_index(np.argmax(error - tolerance), error.shape)
        assert (error <= tolerance + 1e-300).all(), (f"{kind} {name}, {what}: error {error[worst]:.3g} at {worst} "
                                                     f"over the bound {tolerance[worst]:.3g}")


def on_numpy(fn):
    return run_on_backend("numpy", fn)[0]


def relu_gate(rng, shape, dtype):
    """A ReLU's output (about half zeros): the gate a folded backward reads."""
    return np.maximum(rng.standard_normal(shape), 0).astype(dtype)


@pytest.mark.parametrize("tensor_cores", [True, False], ids=["tensorcore", "gemm_cu"])
@pytest.mark.parametrize("kind", sorted(HALF))
def test_dense(kernel_backend, rng, monkeypatch, kind, tensor_cores):
    dtype = HALF[kind]
    x, w = rng.standard_normal((5, 24)).astype(dtype), (rng.standard_normal((24, 10)) / 4).astype(dtype)
    b = rng.standard_normal(10).astype(np.float32)
    dy, gate = rng.standard_normal((5, 10)).astype(dtype), relu_gate(rng, (5, 24), dtype)

    def step():
        return (dense.dense_forward(x, w, b, activation=RELU),
                *dense.dense_backward(dy, x, w, fold=(gate, RELU)))
    if not tensor_cores:
        monkeypatch.setattr(tensorcore, "usable", lambda: False)
    reference, _ = run_on_backend("numpy", step)
    actual, launched = run_on_backend(kernel_backend, step)
    assert any(k.startswith("tc_gemm") for k in launched) == tensor_cores, launched
    # db: a column-sum kernel beside the tensor-core dw, else a row of gemm.cu's dw product
    assert ("dense_forward" in launched) != tensor_cores and ("dense_backward_bias" in launched) == tensor_cores, \
        launched
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
    exact = [np.maximum(x64 @ w64 + b, 0), (dy64 @ w64.T) * (gate > 0), x64.T @ dy64, dy64.sum(0)]
    scales = [np.abs(x64) @ np.abs(w64) + np.abs(b), np.abs(dy64) @ np.abs(w64).T, np.abs(x64).T @ np.abs(dy64),
              np.abs(dy64).sum(0)]
    for name, a, r, e, s, k in zip(("y", "dx", "dw", "db"), actual, reference, exact, scales, (24, 10, 5, 5)):
        check(name, a, r, e, s, k, kind)


def _conv_step(x, w, b, dy, gate, strides, pads, dilation):
    y = conv.conv2d_forward(x, w, b, strides, pads, dilation, activation=RELU if gate is not None else None)
    dx = conv.conv2d_backward_input(dy, w, x.shape, strides, pads, dilation,
                                    fold=(gate, RELU) if gate is not None else None)
    return (y, dx, *conv.conv2d_backward_filter(dy, x, w.shape, strides, pads, dilation))


def _abs64(*arrays):
    return [None if a is None else np.abs(a.astype(np.float64)) for a in arrays]


# id, x shape, (kh, kw, filters), strides, padding, dilation, tensor cores usable, the kernels that
# must run (without tensor cores: conv.cu's, instantiated for the 16-bit type).
CONVS = [
    ("stride1", (2, 5, 5, 8), (3, 3, 8), (1, 1), "same", (1, 1), True, {"tc_conv2d_backward_input_"}),
    ("stride2", (1, 7, 7, 4), (3, 3, 8), (2, 2), "same", (1, 1), True, {"tc_conv2d_backward_input_"}),
    ("dilation2", (1, 7, 6, 4), (3, 3, 4), (1, 1), "valid", (2, 2), True, {"tc_conv2d_forward_"}),
    ("conv_cu", (1, 6, 6, 3), (3, 3, 5), (2, 2), "same", (1, 1), False,
     {"conv2d_forward", "conv2d_backward_input", "conv2d_backward_filter"}),   # db: a row of dw's product
]


@pytest.mark.parametrize("case", CONVS, ids=[c[0] for c in CONVS])
@pytest.mark.parametrize("kind", sorted(HALF))
def test_conv2d(kernel_backend, rng, monkeypatch, kind, case):
    _, x_shape, (kh, kw, filters), strides, padding, dilation, tensor_cores, kernels = case
    dtype = HALF[kind]
    x = rng.standard_normal(x_shape).astype(dtype)
    w = (rng.standard_normal((kh, kw, x_shape[3], filters)) / 3).astype(dtype)
    b = rng.standard_normal(filters).astype(dtype)   # a bias cast to the compute dtype is taken too
    pads = conv_geometry.conv_padding(padding, x_shape[1:3], (kh, kw), strides, dilation)
    out_hw = conv_geometry.conv_output_shape(x_shape[1:3], (kh, kw), strides, pads, dilation)
    dy = rng.standard_normal((x_shape[0], *out_hw, filters)).astype(dtype)
    gate = relu_gate(rng, x_shape, dtype)
    if not tensor_cores:
        monkeypatch.setattr(tensorcore, "usable", lambda: False)
    step = lambda *a: _conv_step(*a, strides, pads, dilation)   # noqa: E731
    reference, _ = run_on_backend("numpy", lambda: step(x, w, b, dy, gate))
    actual, launched = run_on_backend(kernel_backend, lambda: step(x, w, b, dy, gate))
    assert all(any(k.startswith(want) for k in launched) for want in kernels), launched
    assert any(k.startswith("tc_") for k in launched) == tensor_cores, launched
    y, dx, dw, db = on_numpy(lambda: step(*(a.astype(np.float64) for a in (x, w, b, dy)), None))
    exact = [np.maximum(y, 0), dx * (gate > 0), dw, db]
    scales = on_numpy(lambda: step(*_abs64(x, w, b, dy), None))
    depths = (kh * kw * x_shape[3], kh * kw * filters, dy.size // filters, dy.size // filters)
    for name, a, r, e, s, k in zip(("y", "dx", "dw", "db"), actual, reference, exact, scales, depths):
        check(name, a, r, e, s, k, kind)


def _transpose_step(x, w, b, dy, gate, strides, crops, dilation):
    y = conv.conv2d_transpose_forward(x, w, b, strides, crops, dilation, activation=RELU if gate is not None else None)
    dx = conv.conv2d_transpose_backward_input(dy, w, x.shape, strides, crops, dilation,
                                              fold=(gate, RELU) if gate is not None else None)
    return (y, dx, *conv.conv2d_transpose_backward_filter(dy, x, w.shape, strides, crops, dilation))


# id, x shape, (kh, kw, filters), strides, padding, output_padding, tensor cores usable, the
# kernel of the forward (the input-gradient kernel of x: per phase on tensor cores, or conv.cu's).
TRANSPOSES = [
    ("stride2_output_padding", (1, 3, 4, 6), (3, 3, 4), (2, 2), "same", (1, 0), True, "tc_conv2d_backward_input_"),
    ("stride1", (1, 4, 4, 8), (3, 3, 8), (1, 1), "same", None, True, "tc_conv2d_backward_input_"),
    ("conv_cu_stride3", (1, 3, 3, 5), (2, 3, 4), (3, 2), "valid", (1, 1), False, "conv2d_backward_input"),
]


@pytest.mark.parametrize("case", TRANSPOSES, ids=[c[0] for c in TRANSPOSES])
@pytest.mark.parametrize("kind", sorted(HALF))
def test_conv2d_transpose(kernel_backend, rng, monkeypatch, kind, case):
    _, x_shape, (kh, kw, filters), strides, padding, output_padding, tensor_cores, forward_kernel = case
    dtype, dilation = HALF[kind], (1, 1)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = (rng.standard_normal((kh, kw, filters, x_shape[3])) / 3).astype(dtype)
    b = rng.standard_normal(filters).astype(np.float32)
    crops = conv_geometry.conv_transpose_padding(padding, (kh, kw), strides, dilation, output_padding)
    out_hw = conv_geometry.conv_transpose_output_shape(x_shape[1:3], (kh, kw), strides, crops, dilation)
    dy = rng.standard_normal((x_shape[0], *out_hw, filters)).astype(dtype)
    gate = relu_gate(rng, x_shape, dtype)
    if not tensor_cores:
        monkeypatch.setattr(tensorcore, "usable", lambda: False)
    step = lambda *a: _transpose_step(*a, strides, crops, dilation)   # noqa: E731
    reference, _ = run_on_backend("numpy", lambda: step(x, w, b, dy, gate))
    actual, launched = run_on_backend(kernel_backend, lambda: step(x, w, b, dy, gate))
    assert launched[0].startswith(forward_kernel), launched
    assert any(k.startswith("tc_") for k in launched) == tensor_cores, launched
    y, dx, dw, db = on_numpy(lambda: step(*(a.astype(np.float64) for a in (x, w, b, dy)), None))
    exact = [np.maximum(y, 0), dx * (gate > 0), dw, db]
    scales = on_numpy(lambda: step(*_abs64(x, w, b, dy), None))
    depths = (kh * kw * x_shape[3], kh * kw * filters, max(x.size // x_shape[3], dy.size // filters),
              dy.size // filters)
    for name, a, r, e, s, k in zip(("y", "dx", "dw", "db"), actual, reference, exact, scales, depths):
        check(name, a, r, e, s, k, kind)


def test_grouped_conv2d(kernel_backend, rng):
    """groups=2 (Conv2D's groups=): two ordinary 16-bit convs over channel slices joined by the
    concatenation kernels; the same bounds per group (K of one group)."""
    dtype, groups, strides, pads, dilation = precision.BFLOAT16, 2, (2, 1), ((1, 1), (1, 1)), (1, 1)
    x = rng.standard_normal((1, 5, 4, 8)).astype(dtype)
    w = (rng.standard_normal((3, 3, 4, 6)) / 3).astype(dtype)
    b = rng.standard_normal(6).astype(np.float32)
    dy = rng.standard_normal((1, 3, 4, 6)).astype(dtype)

    def step(x, w, b, dy):
        return (conv_grouped.grouped_conv2d_forward(x, w, b, strides, pads, dilation, groups),
                conv_grouped.grouped_conv2d_backward_input(dy, w, x.shape, strides, pads, dilation, groups),
                *conv_grouped.grouped_conv2d_backward_filter(dy, x, w.shape, strides, pads, dilation, groups))
    reference, _ = run_on_backend("numpy", lambda: step(x, w, b, dy))
    actual, launched = run_on_backend(kernel_backend, lambda: step(x, w, b, dy))
    assert "tc_conv2d_forward_bf16" in launched and "tc_conv2d_backward_input_bf16" in launched, launched
    exact = on_numpy(lambda: step(*(a.astype(np.float64) for a in (x, w, b, dy))))
    scales = on_numpy(lambda: step(*_abs64(x, w, b, dy)))
    for name, a, r, e, s, k in zip(("y", "dx", "dw", "db"), actual, reference, exact, scales, (36, 54, 12, 12)):
        check(name, a, r, e, s, k, "bf16")


def test_mixed_operand_dtypes_are_refused(kernel_backend):
    x = np.ones((2, 4), precision.BFLOAT16)
    with pytest.raises(TypeError, match="dense_forward: x is bfloat16, so w must be bfloat16 too.*float32"):
        run_on_backend(kernel_backend, lambda: dense.dense_forward(x, np.ones((4, 3), np.float32)))
    x4, w4 = np.ones((1, 4, 4, 2), precision.FLOAT16), np.ones((3, 3, 2, 2), precision.BFLOAT16)
    with pytest.raises(TypeError, match="conv2d_forward: x is float16, so w must be float16 too.*bfloat16"):
        run_on_backend(kernel_backend, lambda: conv.conv2d_forward(x4, w4, None, (1, 1), ((1, 1), (1, 1)), (1, 1)))
