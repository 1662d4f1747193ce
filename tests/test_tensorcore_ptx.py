"""cudasim's emulation of the tensor-core PTX (gpunet/backend/cudasim_tensor.h), one wrapper of
kernels/mma.cuh at a time, against a NumPy model of the PTX ISA's fragment layouts written
independently here: lane l has groupID g = l // 4 and threadID_in_group t = l % 4; a 32-bit
register holding two 16-bit values keeps the lower-indexed one in its low half. Plus the
cudasim checks that come with it: misaligned bases, launch bounds, partial warps."""
import pathlib

import ml_dtypes
import numpy as np
import pytest

from gpunet.backend import cudasim

FILE = pathlib.Path(__file__).parent / "kernels" / "tensorcore.cu"
I32 = np.int32
LANE = np.arange(32)
G, T = LANE // 4, LANE % 4


@pytest.fixture
def sim():
    return cudasim.CudasimBackend()


def bits16(values, dtype):
    return np.asarray(values, dtype).view(np.uint16).astype(np.uint32)


def pack(lo, hi, dtype):
    return bits16(lo, dtype) | (bits16(hi, dtype) << 16)


def c_registers(c):
    return np.stack([c[G, 2 * T], c[G, 2 * T + 1], c[G + 8, 2 * T], c[G + 8, 2 * T + 1]], 1).astype(np.float32)


def tf32_registers(a, b):
    a32 = a.astype(np.float32).view(np.uint32)
    b32 = b.astype(np.float32).view(np.uint32)
    ra = np.stack([a32[G, T], a32[G + 8, T], a32[G, T + 4], a32[G + 8, T + 4]], 1)
    rb = np.stack([b32[T, G], b32[T + 4, G]], 1)
    return ra, rb


def half_registers(a, b, dtype):
    ra = np.stack([pack(a[G, 2 * T], a[G, 2 * T + 1], dtype), pack(a[G + 8, 2 * T], a[G + 8, 2 * T + 1], dtype),
                   pack(a[G, 2 * T + 8], a[G, 2 * T + 9], dtype),
                   pack(a[G + 8, 2 * T + 8], a[G + 8, 2 * T + 9], dtype)], 1)
    rb = np.stack([pack(b[2 * T, G], b[2 * T + 1, G], dtype), pack(b[2 * T + 8, G], b[2 * T + 9, G], dtype)], 1)
    return ra, rb


def run_mma(be, ra, rb, c, kind):
    d = be.empty((32, 4))
    be.launch(FILE, "mma_lanes", 1, 32, [np.ascontiguousarray(ra, np.uint32), np.ascontiguousarray(rb, np.uint32),
                                         c_registers(c), d, I32(kind)])
    return d


@pytest.mark.parametrize("kind, dtype", [(1, ml_dtypes.bfloat16), (2, np.float16)])
def test_mma_m16n8k16_follows_the_fragment_layout(sim, rng, kind, dtype):
    a = rng.standard_normal((16, 16)).astype(dtype)
    b = rng.standard_normal((16, 8)).astype(dtype)
    c = rng.standard_normal((16, 8)).astype(np.float32)
    d = run_mma(sim, *half_registers(a, b, dtype), c, kind)
    expected = a.astype(np.float64) @ b.astype(np.float64) + c
    np.testing.assert_allclose(d, c_registers(expected), rtol=1e-6, atol=1e-6)


def test_mma_m16n8k8_tf32_reads_the_top_19_bits(sim, rng):
    a = rng.standard_normal((16, 8)).astype(np.float32)   # not tf32 values: the mma truncates them
    b = rng.standard_normal((8, 8)).astype(np.float32)
    c = rng.standard_normal((16, 8)).astype(np.float32)
    d = run_mma(sim, *tf32_registers(a, b), c, 0)

    def truncated(x):
        return (x.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32).astype(np.float64)
    np.testing.assert_allclose(d, c_registers(truncated(a) @ truncated(b) + c), rtol=1e-6, atol=1e-6)
    assert not np.allclose(d, c_registers(a.astype(np.float64) @ b + c), rtol=1e-7, atol=0)


@pytest.mark.parametrize("count", [1, 2, 4])
@pytest.mark.parametrize("trans", [0, 1])
def test_ldmatrix_follows_the_fragment_layout(sim, rng, count, trans):
    matrices = rng.integers(0, 2 ** 16, size=(4, 8, 8), dtype=np.uint16)
    out = sim.empty((32, 4), np.uint32)
    sim.launch(FILE, "ldmatrix_lanes", 1, 32, [matrices.reshape(-1), out, I32(count), I32(trans)])
    expected = np.zeros((32, 4), np.uint32)
    for i in range(count):
        m = matrices[i].astype(np.uint32)
        lo, hi = (m[2 * T, G], m[2 * T + 1, G]) if trans else (m[G, 2 * T], m[G, 2 * T + 1])
        expected[:, i] = lo | (hi << 16)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("src_bytes", [16, 12, 4, 0])
def test_cp_async_lands_at_wait_group_with_zero_fill(sim, rng, src_bytes):
    src = rng.standard_normal(256).astype(np.float32)
    seen = sim.empty((3, 32, 8))
    sim.launch(FILE, "cp_async_lanes", 1, 32, [src, seen, I32(src_bytes)])
    first = src[:128].reshape(32, 4).copy()
    first[:, src_bytes // 4:] = 0.0
    second = src[128:].reshape(32, 4)
    np.testing.assert_array_equal(seen[0], -1.0)   # nothing lands before a wait
    np.testing.assert_array_equal(seen[1], np.concatenate([first, np.full((32, 4), -1.0)], 1))
    np.testing.assert_array_equal(seen[2], np.concatenate([first, second], 1))


def test_cp_async_alignment_and_the_misaligned_base_mode(sim, rng):
    src = rng.standard_normal(140).astype(np.float32)
    out = sim.empty(128)
    sim.launch(FILE, "cp_async_offset", 1, 32, [src, out, I32(4)])
    np.testing.assert_array_equal(out, src[4:132])
    with pytest.raises(RuntimeError, match="cp.async.cg.shared.global.*not aligned to the copy size 16"):
        sim.launch(FILE, "cp_async_offset", 1, 32, [src, out, I32(1)])
    sim.misalign = 4           # every array now starts 4 bytes past a 256-byte boundary
    with pytest.raises(RuntimeError, match="not aligned to the copy size 16"):
        sim.launch(FILE, "cp_async_offset", 1, 32, [src, out, I32(4)])
    sim.launch(FILE, "cp_async_offset", 1, 32, [src, out, I32(3)])   # 4 + 12 bytes: aligned again
    np.testing.assert_array_equal(out, src[3:131])
    sim.misalign = 2
    with pytest.raises(ValueError, match="misalign must be a multiple of 4"):
        sim.launch(FILE, "cp_async_offset", 1, 32, [src, out, I32(4)])


def test_cp_async_never_waited_for_fails_the_launch(sim, rng):
    src = rng.standard_normal(128).astype(np.float32)
    with pytest.raises(RuntimeError, match="returned with copies not waited for"):
        sim.launch(FILE, "cp_async_unwaited", 2, 32, [src, sim.empty(64)])
    out = sim.empty(128)    # what the failed launch left pending is dropped, not blamed on this one
    sim.launch(FILE, "cp_async_offset", 1, 32, [src, out, I32(0)])
    np.testing.assert_array_equal(out, src)


def test_collectives_need_the_whole_warp(sim):
    with pytest.raises(RuntimeError, match=r"mma_lanes.*mma.sync.m16n8k8.*needs all 32 lanes"):
        sim.launch(FILE, "mma_lanes", 1, 16, [np.zeros(128, np.uint32), np.zeros(64, np.uint32),
                                               np.zeros(128, np.float32), sim.empty(128), I32(0)])


def test_launch_bounds_are_enforced(sim):
    with pytest.raises(ValueError, match=r"'mma_lanes' declares __launch_bounds__\(32\); a block of .* has 64 threads"):
        sim.launch(FILE, "mma_lanes", 1, 64, [np.zeros(256, np.uint32), np.zeros(128, np.uint32),
                                               np.zeros(256, np.float32), sim.empty(256), I32(0)])


def tf32_model(x):
    """cvt.rna.tf32.f32: add half of the dropped 13 bits' range, then drop them (inf/NaN kept)."""
    u = x.view(np.uint32)
    finite = (u & 0x7F800000) != 0x7F800000
    return np.where(finite, (u + np.uint32(0x1000)) & np.uint32(0xFFFFE000), u).astype(np.uint32).view(np.float32)


def test_conversions_round_to_nearest(sim, rng):
    special = np.array([0.0, -0.0, np.inf, -np.inf, 65504.0, 65519.99, 65520.0, 1e-8, 2.0 ** -24, 2.0 ** -25,
                        3 * 2.0 ** -26, 2.0 ** -14 * 0.75, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 1 + 2.0 ** -8,
                        1 + 3 * 2.0 ** -8, 3.0e38, -1.5e-40], np.float32)
    ties = (rng.integers(1, 2 ** 20, 200) << 12 | 0x1000).astype(np.uint32).view(np.float32)   # tf32 ties
    ties = ties[np.isfinite(ties)]   # NaN payloads differ between converters: NaN is checked below
    x = np.concatenate([special, ties, rng.standard_normal(300).astype(np.float32) * 10.0 ** rng.integers(-9, 6, 300)])
    x = x.astype(np.float32)
    n = x.size
    tf, bf, hf, back = sim.empty(n), sim.empty(n, ml_dtypes.bfloat16), sim.empty(n, np.float16), sim.empty(2 * n)
    sim.launch(FILE, "conversions", -(-n // 128), 128, [x, tf, bf, hf, back, I32(n)])
    np.testing.assert_array_equal(tf.view(np.uint32), tf32_model(x).view(np.uint32))
    np.testing.assert_array_equal(bf.view(np.uint16), x.astype(ml_dtypes.bfloat16).view(np.uint16))
    with np.errstate(over="ignore"):   # 3e38 and 65520 overflow float16 to inf, as intended
        half = x.astype(np.float16)
    np.testing.assert_array_equal(hf.view(np.uint16), half.view(np.uint16))
    np.testing.assert_array_equal(back[0::2], x.astype(ml_dtypes.bfloat16).astype(np.float32))
    np.testing.assert_array_equal(back[1::2], half.astype(np.float32))
    nan = np.full(1, np.nan, np.float32)
    sim.launch(FILE, "conversions", 1, 32, [nan, tf[:1], bf[:1], hf[:1], back[:2], I32(1)])
    assert np.isnan(tf[0]) and np.isnan(bf[0].astype(np.float32)) and np.isnan(hf[0]) and np.isnan(back[:2]).all()
