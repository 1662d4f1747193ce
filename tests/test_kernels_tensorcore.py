"""The tensor-core GEMM (kernels/tc_gemm.cu through primitives/tensorcore.py) against NumPy.

Tolerances, derived from the operand precision (docs/backends.md repeats this):
* Against the reference with the same rounded operands (TF32-rounded float32, exact bf16/fp16):
  every product a_ik b_kj is exact on both sides (at most 22 significant bits), so the two differ
  only in how float32 adds K products (and the bias): a recursive float32 sum of n terms is off by
  at most about n u32 sum |terms|, u32 = 2^-24, on each side. Bound, per element:
  (2 (K + 1)) 2^-24 (|A| @ |B| + |bias|).
* Against the exact float64 product of the unrounded operands (what the precision costs): each
  operand is off by at most u relative (u = 2^-11 for TF32 and fp16, 2^-8 for bf16), a product by
  2u + u^2, so add (2u + u^2) (|A| @ |B|) to the bound above.
"""
import ml_dtypes
import numpy as np
import pytest

import gpunet as gn
from checks import run_on_backend, thread_order
from gpunet import backend
from gpunet.primitives import dense, tensorcore

DTYPES = {"tf32": np.float32, "bf16": ml_dtypes.bfloat16, "f16": np.float16}
# Every type and layout on one shape whose rows are whole 16-byte chunks (the cp.async path), then
# (M, K, N) cases across types and layouts: batch 1, sizes that are not multiples of 8 / 16 / 32 /
# 64 (rows that break 16-byte alignment: the slow path), 64 x 64 tile edges, a K that is split
# (5 x 600: one output tile), several tiles each way. (cudasim switches context 32 times per mma,
# so the cases are few and small.)
CASES = [(kind, layout, (33, 40, 72)) for kind in ("tf32", "bf16", "f16") for layout in ("nn", "nt", "tn")] + [
    ("tf32", "nn", (1, 3, 67)), ("bf16", "nt", (1, 3, 67)), ("f16", "tn", (1, 3, 67)),
    ("tf32", "tn", (70, 65, 129)), ("bf16", "nn", (70, 65, 129)), ("f16", "nt", (70, 65, 129)),
    ("tf32", "nt", (5, 600, 3)), ("bf16", "tn", (5, 600, 3)), ("f16", "nn", (5, 600, 3)),
    ("tf32", "nn", (130, 40, 72)),
]


def bound(a64, b64, bias, k, u=0.0):
    scale = np.abs(a64) @ np.abs(b64) + (np.abs(bias) if bias is not None else 0.0)
    return (2 * (k + 1) * 2.0 ** -24 + 2 * u + u * u) * scale


def check(actual, expected, tolerance, what):
    error = np.abs(actual.astype(np.float64) - expected)
    worst = np.unravel_index(np.argmax(error - tolerance), error.shape)
    assert (error <= tolerance).all(), (f"{what}: error {error[worst]:.3g} at {worst} over the bound "
                                        f"{tolerance[worst]:.3g}")


def operands(rng, kind, m, k, n, trans_a, trans_b, with_bias):
    dtype = DTYPES[kind]
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    bias = rng.standard_normal(n).astype(np.float32) if with_bias else None
    stored_a = np.ascontiguousarray(a.T) if trans_a else a
    stored_b = np.ascontiguousarray(b.T) if trans_b else b
    return a, b, bias, stored_a, stored_b


def launches(m, k, n, itemsize, kind, layout):
    tile, splits, _ = tensorcore.gemm_plan(m, k, n, itemsize)
    return [f"tc_gemm_{kind}_{layout}{tile.suffix}", *(["tc_sum_splits"] if splits > 1 else [])]


@pytest.mark.parametrize("kind, layout, shape", CASES, ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else v)
def test_matmul_matches_numpy(kernel_backend, rng, kind, layout, shape):
    m, k, n = shape
    trans_a, trans_b = layout[0] == "t", layout[1] == "t"
    a, b, bias, sa, sb = operands(rng, kind, m, k, n, trans_a, trans_b, with_bias=layout == "nn")
    fn = lambda: tensorcore.matmul(sa, sb, bias, trans_a=trans_a, trans_b=trans_b)   # noqa: E731
    (reference,), _ = run_on_backend("numpy", fn)
    (actual,), launched = run_on_backend(kernel_backend, fn)
    assert launched == launches(m, k, n, np.dtype(DTYPES[kind]).itemsize, kind, layout)
    assert actual.dtype == np.float32 and actual.shape == (m, n)
    rounded_a, rounded_b = (tensorcore.tf32_round(v) if kind == "tf32" else v.astype(np.float32) for v in (a, b))
    check(actual, reference.astype(np.float64), bound(rounded_a, rounded_b, bias, k) * 2,
          f"{kind} {layout} {m}x{k}x{n} against numpy")
    exact = a.astype(np.float64) @ b.astype(np.float64) + (bias if bias is not None else 0.0)
    u = tensorcore.operand_unit_roundoff(kind)
    check(actual, exact, bound(a.astype(np.float64), b.astype(np.float64), bias, k, u),
          f"{kind} {layout} {m}x{k}x{n} against the exact product")


@pytest.mark.parametrize("kind", ["tf32", "bf16"])
def test_split_k_is_bit_identical_across_thread_orders_and_alignments(rng, kind):
    a, b, bias, _, _ = operands(rng, kind, 40, 300, 24, False, False, with_bias=True)
    results = []
    for order, misalign in (("ascending", 0), ("descending", 0), ("alternate", 4)):
        with thread_order(order), backend.use("cudasim") as be:
            be.misalign = misalign    # 4: every array 4 bytes off 16: the slow (no cp.async) path
            results.append(np.array(tensorcore.matmul(a, b, bias)))
    assert tensorcore.splits_for(40, 300, 24, a.itemsize)[0] > 1
    for other in results[1:]:
        np.testing.assert_array_equal(other.view(np.uint32), results[0].view(np.uint32))


def test_dense_runs_on_tf32_under_high_precision(kernel_backend, rng):
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((9, 70), (70, 33), (33,)))
    dy = rng.standard_normal((9, 33)).astype(np.float32)

    def products():
        y = dense.dense_forward(x, w, b)
        return [y, *dense.dense_backward(dy, x, w)]
    gn.config.set_float32_matmul_precision("high")
    try:
        expected, _ = run_on_backend("numpy", products)
        actual, launched = run_on_backend(kernel_backend, products)
    finally:
        gn.config.set_float32_matmul_precision("highest")
    assert launched == ["tc_gemm_tf32_nn", "tc_gemm_tf32_nt", "tc_gemm_tf32_tn", "dense_backward_bias"]
    for got, want, k in zip(actual, expected, (70, 33, 9, 9)):
        np.testing.assert_allclose(got, want, rtol=0, atol=2 * (k + 1) * 2.0 ** -24 * 4 * np.abs(want).max() + 1e-6)
    highest, _ = run_on_backend("numpy", products)
    tf32_cost = np.abs(expected[0] - highest[0]).max()
    assert 0 < tf32_cost < 2 * 2.0 ** -11 * (np.abs(x) @ np.abs(w)).max(), "TF32 rounding shows, within 2u"


def test_precision_setting_is_checked():
    assert gn.config.get_float32_matmul_precision() == "highest"
    with pytest.raises(ValueError, match="precision must be one of 'highest', 'high'; received 'medium'.*bfloat16"):
        gn.config.set_float32_matmul_precision("medium")
    with pytest.raises(TypeError, match="matmul: tensor-core operands must both be float32, bfloat16 or float16"):
        tensorcore.matmul(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"op\(a\) is \(2, 3\) and op\(b\) is \(2, 2\)"):
        tensorcore.matmul(np.ones((2, 3), np.float32), np.ones((2, 2), np.float32))
