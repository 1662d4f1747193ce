"""Split-K for gemm.cu's FFMA dense products: a skinny product whose 64 x 64 output tiles would
leave most SMs idle (the small CNN's 64 x 3136 @ 3136 x 128 makes 2 tiles) splits K, each split
writing float32 partial sums, and the last block of each output tile to arrive adds them in a fixed
order (then the bias and the activation, or the folded gradient): one launch, no float atomics,
the same bits on every run. Against the unsplit
product the summation order differs: within 2e-6 relative to the sum of |products| (float32
rounding of two orders), tested here on cudasim; against NumPy as every dense test is."""
import numpy as np
import pytest

from gpunet import backend
from gpunet.primitives import dense, epilogue, launch

from checks import assert_close


def test_which_products_split():
    # the small CNN's first Dense: the forward (2 tiles) splits 16 ways, the input gradient
    # (64 x 3136: 49 tiles) 2 ways, the weight gradient (3137 x 128 with the bias row: 100 tiles)
    # fills the SMs; its second Dense (64 x 128 @ 128 x 10) is too small to matter
    assert dense.gemm_splits(64, 3136, 128) == (16, 208)
    assert dense.gemm_splits(64, 128, 3136) == (2, 64)
    assert dense.gemm_splits(3137, 64, 128)[0] == 1 and dense.gemm_splits(64, 128, 10)[0] == 1


def _products(rng, m, k, n):
    """dense_forward with bias and ReLU, dense_backward with a folded ReLU (the layer before's)."""
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    dy = rng.standard_normal((m, n)).astype(np.float32)
    gate = np.maximum(x, 0)   # the output of the ReLU before: dx is gated where it is 0
    be = backend.current()
    relu = epilogue.Epilogue("relu")
    y = dense.dense_forward(be.asarray(x), be.asarray(w), be.asarray(b), activation=relu)
    dx, dw, db = dense.dense_backward(be.asarray(dy), be.asarray(x), be.asarray(w), fold=(be.asarray(gate), relu))
    return [np.array(be.to_numpy(a)) for a in (y, dx, dw, db)], (x, w, b, dy)


def _run(monkeypatch, shape, min_fmas):
    """The products of ``shape`` on cudasim with split-K for products of at least ``min_fmas``."""
    dense._gemm_plan.cache_clear()
    monkeypatch.setattr(dense, "_SPLIT_MIN_FMAS", min_fmas)
    try:
        with backend.use("cudasim"):
            return _products(np.random.default_rng(0), *shape)
    finally:
        dense._gemm_plan.cache_clear()


# Small shapes (the size threshold lowered) with ragged edges: (8, 200, 128) splits its forward 3
# ways and its input gradient 2 ways, (5, 300, 70) its forward 4 ways.
@pytest.mark.parametrize("shape, split_dx", [((8, 200, 128), True), ((5, 300, 70), False)])
def test_split_products_against_unsplit_and_numpy(monkeypatch, shape, split_dx):
    m, k, n = shape
    monkeypatch.setattr(dense, "_SPLIT_MIN_FMAS", 0)
    assert dense.gemm_splits(m, k, n)[0] > 1 and (dense.gemm_splits(m, n, k)[0] > 1) == split_dx
    split, _ = _run(monkeypatch, shape, 0)
    again, _ = _run(monkeypatch, shape, 0)
    whole, (x, w, b, dy) = _run(monkeypatch, shape, 2 ** 62)   # nothing splits
    for a, c in zip(split, again):
        assert a.tobytes() == c.tobytes(), "split-K is deterministic"
    # against the unsplit product: within float32 rounding of the two summation orders
    bound_y = np.abs(x) @ np.abs(w) + np.abs(b)
    bound_dx = np.abs(dy) @ np.abs(w.T)
    np.testing.assert_array_less(np.abs(split[0] - whole[0]), 2e-6 * bound_y + 1e-30)
    np.testing.assert_array_less(np.abs(split[1] - whole[1]), 2e-6 * bound_dx + 1e-30)
    assert split[2].tobytes() == whole[2].tobytes() and split[3].tobytes() == whole[3].tobytes()
    # against NumPy in float64
    assert_close(split[0], np.maximum(x.astype(np.float64) @ w + b, 0), rtol=1e-5, atol=1e-5, what="y")
    assert_close(split[1], (dy.astype(np.float64) @ w.T) * (x > 0), rtol=1e-5, atol=1e-5, what="dx")
