"""The tensor-core kernels on the 128-row block tiles (tc_gemm.cuh's TcBig 128 x 128 with 64 x 64
warp tiles and two stages, TcWide 128 x 64, TcNarrow 128 x 32) against the NumPy reference on
cudasim, and the tile choice (tensorcore.tile_for).

Every case is sized just past 128 output rows (cudasim runs a 2-SM GPU's choice,
tensorcore.SIMULATED_SMS, so these grids take the tile each case names, which is asserted), with
channels that are not multiples of 8 / 16 / 32 (the element-wise path) beside multiples of 8
(cp.async), batch 1 and 2, stride / dilation / padding mixes, and a transposed conv with
output_padding. Tolerance (test_kernels_tensorcore.py derives it): both sides multiply the same
rounded operands exactly (TF32-rounded float32, bf16 / fp16 as they are) and add the K products
in float32, each within about K u32 of the sum of |products| (u32 = 2^-24), so per element
|kernel - reference| <= 2 (K + 1) 2^-24 (|A| @ |B|), |A| @ |B| computed by the reference on
the absolute values.
"""
import ml_dtypes
import numpy as np
import pytest

import gpunet as gn
from checks import run_on_backend, thread_order
from gpunet import backend
from gpunet.primitives import conv, tensorcore, tensorcore_conv as tc
from gpunet.primitives import conv_geometry as geometry

DTYPES = {"tf32": np.float32, "bf16": ml_dtypes.bfloat16, "f16": np.float16}
BIG = tensorcore.BIG.suffix


def _within(actual, expected, scale, k, what):
    tolerance = 2 * (k + 1) * 2.0 ** -24 * scale + 1e-30
    error = np.abs(np.asarray(actual, np.float64) - expected)
    worst = np.unravel_index(np.argmax(error / tolerance), error.shape)
    assert (error <= tolerance).all(), f"{what}: error {error[worst]:.3g} at {worst} > bound {tolerance[worst]:.3g}"


# (kind, layout, (M, K, N), tile): tf32 with both operands on cp.async (K-major A, MN-major float
# B read with 32-bit LDS), bf16 with B transposed (both K-major, ldmatrix), fp16 A transposed
# with M = 133 (266-byte rows: the element-wise path), a bf16 K long enough to be split, and
# outputs 60, 30 and 20 columns wide (the 128 x 64 and 128 x 32 tiles).
GEMMS = [("tf32", "nn", (129, 36, 132), BIG), ("bf16", "nt", (130, 40, 131), BIG), ("f16", "tn", (133, 24, 129), BIG),
         ("tf32", "tn", (136, 20, 132), BIG), ("bf16", "nn", (130, 600, 129), BIG),
         ("tf32", "nn", (200, 40, 60), "_128x64"), ("bf16", "tn", (200, 40, 30), "_128x32"),
         ("f16", "nt", (260, 50, 20), "_128x32")]


@pytest.mark.parametrize("kind, layout, shape, suffix", GEMMS,
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else v)
def test_big_tile_matmul_matches_numpy(kernel_backend, rng, kind, layout, shape, suffix):
    m, k, n = shape
    trans_a, trans_b = layout[0] == "t", layout[1] == "t"
    a, b = (rng.standard_normal(s).astype(DTYPES[kind]) for s in ((m, k), (k, n)))
    sa = np.ascontiguousarray(a.T) if trans_a else a
    sb = np.ascontiguousarray(b.T) if trans_b else b
    fn = lambda: tensorcore.matmul(sa, sb, trans_a=trans_a, trans_b=trans_b)   # noqa: E731
    (reference,), _ = run_on_backend("numpy", fn)
    (actual,), launched = run_on_backend(kernel_backend, fn)
    tile, splits, _ = tensorcore.gemm_plan(m, k, n, a.itemsize)
    assert tile.suffix == suffix and (splits > 1) == (k == 600)
    assert launched == [f"tc_gemm_{kind}_{layout}{suffix}", *(["tc_sum_splits"] if splits > 1 else [])]
    ra, rb = (tensorcore.tf32_round(v) if kind == "tf32" else v.astype(np.float32) for v in (a, b))
    _within(actual, reference.astype(np.float64), np.abs(ra).astype(np.float64) @ np.abs(rb), k,
            f"{kind} {layout} {shape}")


# x shape, (kh, kw, filters), strides, padding, dilation, and the tiles of the forward, input
# gradient and filter gradient (asserted: "" is 64 x 64).
W, N, T = "_128x64", "_128x32", "_256x32"
CONVS = [
    ("tf32", (1, 12, 13, 68), (2, 2, 66), (1, 1), "same", (2, 2), (BIG, BIG, BIG)),   # Cin on cp.async, Cout 66 not
    ("bf16", (1, 25, 23, 72), (3, 3, 80), (2, 2), ((1, 2), (0, 1)), (1, 1), (BIG, BIG, BIG)),   # cp.async, 4 phases
    ("f16", (2, 11, 17, 65), (2, 3, 70), (1, 2), "valid", (2, 1), (BIG, BIG, BIG)),   # element-wise, batch 2
    ("bf16", (1, 12, 13, 40), (3, 3, 60), (1, 1), "same", (1, 1), (W, W, W)),        # Cin on cp.async, Cout not
    ("f16", (2, 17, 12, 30), (3, 2, 20), (2, 1), ((1, 1), (0, 0)), (1, 2), (N, T, N)),   # element-wise, 2 phases
    ("tf32", (1, 16, 9, 36), (1, 3, 24), (1, 1), ((0, 0), (1, 1)), (1, 1), (N, W, "")),  # cp.async
    ("tf32", (2, 16, 16, 16), (3, 3, 32), (1, 1), "same", (1, 1), (T, T, T)),            # 256 x 32, cp.async
    ("bf16", (2, 16, 16, 16), (3, 3, 32), (1, 1), "same", (2, 2), (T, T, T)),            # dilated
    ("f16", (1, 23, 23, 5), (3, 3, 30), (1, 1), "valid", (1, 1), (T, T, "")),           # 256 x 32, element-wise
]


def _pads(padding, x_shape, kernel_hw, strides, dilation):
    if not isinstance(padding, str):
        return padding
    return geometry.conv_padding(padding, x_shape[1:3], kernel_hw, strides, dilation)


@pytest.mark.parametrize("kind, x_shape, kernel, strides, padding, dilation, tiles", CONVS,
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) and not isinstance(v[0], (tuple, str)) else None)
def test_big_tile_convolutions_match_numpy(kernel_backend, rng, kind, x_shape, kernel, strides, padding, dilation,
                                           tiles):
    (kh, kw, filters), dtype = kernel, DTYPES[kind]
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((kh, kw, x_shape[3], filters)).astype(dtype)
    pads = _pads(padding, x_shape, (kh, kw), strides, dilation)
    out_hw = conv._plan(x_shape[1:3], (kh, kw), strides, pads, dilation)[0]
    dy = rng.standard_normal((x_shape[0], *out_hw, filters)).astype(dtype)
    products = {
        "forward": lambda: tc.conv2d_forward(x, w, None, strides, pads, dilation),
        "backward_input": lambda: tc.conv2d_backward_input(dy, w, x_shape, strides, pads, dilation),
        "backward_filter": lambda: tc.conv2d_backward_filter(dy, x, w.shape, strides, pads, dilation),
    }
    ax, aw, ady = (np.abs(v.astype(np.float32)) for v in (x, w, dy))
    with backend.use("numpy"):
        scales = {"forward": tc.conv2d_forward(ax, aw, None, strides, pads, dilation),
                  "backward_input": tc.conv2d_backward_input(ady, aw, x_shape, strides, pads, dilation),
                  "backward_filter": tc.conv2d_backward_filter(ady, ax, w.shape, strides, pads, dilation)}
    depth = {"forward": kh * kw * x_shape[3], "backward_input": kh * kw * filters,
             "backward_filter": dy.size // filters}
    for (name, fn), suffix in zip(products.items(), tiles):
        plan = tc.plan(name.removeprefix("backward_"), x_shape, w.shape, out_hw, strides, x.itemsize)
        assert plan[0].suffix == suffix, (name, plan)
        (expected,), _ = run_on_backend("numpy", fn)
        (actual,), launched = run_on_backend(kernel_backend, fn)
        assert launched[0] == f"tc_conv2d_{name}_{kind}{suffix}"
        _within(actual, expected, scales[name], depth[name], f"{kind} {name}")


def test_big_tile_transposed_conv_with_output_padding(kernel_backend, rng):
    """Conv2DTranspose's forward (stride 2, "same", output_padding 1: the per-phase input-gradient
    kernel of its x) on TF32 under "high": 18 x 16 x 66 outputs from 9 x 8 x 72."""
    x = rng.standard_normal((1, 9, 8, 72)).astype(np.float32)
    wt = rng.standard_normal((3, 3, 66, 72)).astype(np.float32)    # (kh, kw, out, in)
    pads = geometry.conv_transpose_padding("same", (3, 3), (2, 2), (1, 1), (1, 1))
    fn = lambda: conv.conv2d_transpose_forward(x, wt, None, (2, 2), pads, (1, 1))   # noqa: E731
    gn.config.set_float32_matmul_precision("high")
    try:
        (expected,), _ = run_on_backend("numpy", fn)
        (actual,), launched = run_on_backend(kernel_backend, fn)
        with backend.use("numpy"):
            scale = conv.conv2d_transpose_forward(np.abs(x), np.abs(wt), None, (2, 2), pads, (1, 1))
    finally:
        gn.config.set_float32_matmul_precision("highest")
    assert expected.shape == (1, 18, 16, 66)
    assert f"tc_conv2d_backward_input_tf32{BIG}" in launched
    _within(actual, expected, scale, 9 * 72, "transposed conv")


def test_big_tiles_are_bit_identical_across_thread_orders_and_alignments(rng):
    a = rng.standard_normal((129, 36)).astype(np.float32)
    b = rng.standard_normal((36, 132)).astype(np.float32)
    a2, b2 = rng.standard_normal((200, 40)).astype(np.float16), rng.standard_normal((40, 30)).astype(np.float16)
    dy = rng.standard_normal((1, 9, 9, 40)).astype(ml_dtypes.bfloat16)     # stride 2: four phases
    w = rng.standard_normal((3, 3, 72, 40)).astype(ml_dtypes.bfloat16)
    pads = ((1, 1), (1, 1))
    results = []
    for order, misalign in (("ascending", 0), ("descending", 0), ("alternate", 4)):
        with thread_order(order), backend.use("cudasim") as be:
            be.misalign = misalign    # 4: every array 4 bytes off 16: the element-wise path
            results.append([np.array(tensorcore.matmul(a, b)), np.array(tensorcore.matmul(a2, b2)),
                            np.array(tc.conv2d_backward_input(dy, w, (1, 17, 17, 72), (2, 2), pads, (1, 1)))])
    assert tc.plan("input", (1, 17, 17, 72), w.shape, (9, 9), (2, 2), 2)[0] == tensorcore.BIG
    assert tensorcore.gemm_plan(200, 40, 30, 2)[0] == tensorcore.NARROW
    for other in results[1:]:
        for got, first in zip(other, results[0]):
            np.testing.assert_array_equal(got.view(np.uint32), first.view(np.uint32))


def test_tile_choice():
    """Big outputs take the big tile, narrow ones 128 x 64 / 128 x 32, small grids keep 64 x 64,
    on the SMs given."""
    big, small = tensorcore.BIG, tensorcore.SMALL
    assert tensorcore.tile_for(16384, 128, 1152, sms=132) == big           # 128 blocks: one wave either way
    assert tensorcore.tile_for(4096, 256, 2304, sms=132) == tensorcore.WIDE   # 64 big blocks: half the SMs idle
    assert tensorcore.tile_for(2048, 256, 2304, sms=132) == small          # 64 blocks of 128 x 64: the same
    assert tensorcore.tile_for(262144, 32, 27, sms=132) == tensorcore.NARROW   # 64 x 64 would waste half
    assert tensorcore.tile_for(65536, 64, 288, sms=132) == tensorcore.WIDE
    assert tensorcore.tile_for(33, 72, 40, sms=2) == small and tensorcore.tile_for(129, 132, 36, sms=2) == big
    # split-K gives the big tile's grid blocks: a filter gradient's small M x N with a long K
    assert tc.plan("filter", (16, 32, 32, 128), (3, 3, 128, 128), (32, 32), (1, 1), 4, sms=132)[0] == big
    # 32-channel convolutions of a big batch: 256 x 32 blocks (TcWide's warp tiles); the dense
    # products have no such kernel, so tile_for's default candidates leave it out
    u_net = ((16, 128, 128, 32), (3, 3, 32, 32), (128, 128), (1, 1), 4)
    assert [tc.plan(p, *u_net, sms=132)[0] for p in ("forward", "input")] == [tensorcore.TALL] * 2
    assert tensorcore.TALL not in tensorcore.TILES and tensorcore.TALL in tensorcore.CONV_TILES
