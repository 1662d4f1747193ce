"""gn.ops.matmul on batches of matrices: one GEMM launch per product on the kernel backends (the
batch a grid axis, broadcast batch axes read with stride 0), against the numpy backend; the 2-D
and Dense-like products keep gemm.cu's dense kernels."""
import ml_dtypes
import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, run_on_backend
from gpunet import ops
from gpunet.primitives import matmul as matmul_ops

BF16 = np.dtype(ml_dtypes.bfloat16)


def _product_and_gradients(a, b, dy):
    ta, tb = ops.convert_to_tensor(a), ops.convert_to_tensor(b)
    with gn.GradientTape() as tape:
        tape.watch([ta, tb])
        y = ops.matmul(ta, tb)
    ga, gb = tape.gradient(y, [ta, tb], output_gradients=ops.convert_to_tensor(dy))
    return y.data, ga.data, gb.data


def _inputs(a_shape, b_shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(a_shape).astype(dtype), rng.standard_normal(b_shape).astype(dtype)
    out_shape = np.matmul(a.astype(np.float32), b.astype(np.float32)).shape
    return a, b, rng.standard_normal(out_shape).astype(dtype)


@pytest.mark.parametrize("a_shape, b_shape", [
    ((2, 1, 5, 7), (3, 7, 3)),      # both broadcast: (2, 3) batches
    ((3, 70, 5), (3, 5, 66)),       # two tiles each way, no broadcast
    ((5, 7), (4, 7, 9)),            # a 2-D left operand shared by every batch
    ((1, 3, 2), (2, 1, 2, 1)),      # leading axis added to a, size-1 matrices axis
])
def test_batched_matmul_is_one_launch_and_matches_numpy(kernel_backend, a_shape, b_shape):
    a, b, dy = _inputs(a_shape, b_shape, np.float32)
    expected, _ = run_on_backend("numpy", lambda: _product_and_gradients(a, b, dy))
    actual, launched = run_on_backend(kernel_backend, lambda: _product_and_gradients(a, b, dy))
    products = [k for k in launched if k.startswith("matmul_batched")]
    assert products == ["matmul_batched_nn", "matmul_batched_nt", "matmul_batched_tn"], launched
    for what, got, want in zip(("product", "da", "db"), actual, expected):
        assert got.dtype == np.float32
        assert_close(got, want, rtol=1e-5, atol=1e-5, what=f"{a_shape} @ {b_shape}: {what}")


def test_batched_matmul_bfloat16_rounds_once(kernel_backend):
    a, b, dy = _inputs((2, 1, 9, 6), (3, 6, 5), BF16, seed=1)
    expected, _ = run_on_backend("numpy", lambda: _product_and_gradients(a, b, dy))
    actual, _ = run_on_backend(kernel_backend, lambda: _product_and_gradients(a, b, dy))
    for what, got, want in zip(("product", "da", "db"), actual, expected):
        assert got.dtype == BF16 and got.shape == want.shape
        # float32 sums in another order, one rounding each: within 1 bf16 ulp (2**-7 relative)
        assert_close(got.astype(np.float32), want.astype(np.float32), rtol=2 ** -7, atol=1e-6, what=what)


def test_batches_beyond_grid_axis_z_launch_in_chunks(kernel_backend, monkeypatch):
    monkeypatch.setattr(matmul_ops, "_MAX_Z", 2)     # 5 batches: chunks of 2, 2 and 1
    a, b, dy = _inputs((5, 3, 4), (5, 4, 2), np.float32, seed=2)
    expected, _ = run_on_backend("numpy", lambda: _product_and_gradients(a, b, dy))
    actual, launched = run_on_backend(kernel_backend, lambda: _product_and_gradients(a, b, dy))
    assert launched.count("matmul_batched_nn") == 3
    for got, want in zip(actual, expected):
        assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_two_dimensional_and_dense_like_products_keep_the_dense_kernels(kernel_backend):
    a, b, dy = _inputs((2, 3, 5), (5, 4), np.float32, seed=3)
    _, launched = run_on_backend(kernel_backend, lambda: _product_and_gradients(a, b, dy))
    assert launched[:1] == ["dense_forward"] and "dense_backward_filter" in launched
    assert not [k for k in launched if k.startswith("matmul_batched")]
    a2 = a.reshape(6, 5)
    (y,), launched = run_on_backend(kernel_backend, lambda: ops.matmul(a2, b).data)
    (dense_y,), _ = run_on_backend(kernel_backend, lambda: gn.primitives.dense.dense_forward(a2, b))
    assert launched == ["dense_forward"] and np.array_equal(y, dense_y)    # the very same bits


def test_batch_axes_that_do_not_broadcast_are_refused():
    with pytest.raises(ValueError, match=r"matmul: the batch axes of shapes \(2, 3, 4\) and \(3, 4, 5\)"):
        ops.matmul(np.ones((2, 3, 4), np.float32), np.ones((3, 4, 5), np.float32))
