"""The Dense kernels (kernels/gemm.cu) against the numpy backend.

Each case runs the op under the numpy backend and under a kernel backend, compares every output,
and checks that the kernel backend launched exactly the op's kernels (no NumPy compute).
"""
import math

import numpy as np
import pytest

from checks import assert_close, compare_with_numpy, run_on_backend, thread_order
from gpunet import backend, layers
from gpunet.backend import kernel_source
from gpunet.primitives import dense as ops


def _normal(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


# (batch, in, out): tile-sized edges (64), one past them, batch 1, one and 67 channels; C with
# more rows than columns and the other way round (gemm.cu puts the longer side on grid axis x).
SHAPES = [(1, 1, 1), (5, 67, 3), (33, 17, 65), (64, 100, 10), (70, 65, 129), (1, 3, 67), (130, 20, 70)]


@pytest.mark.parametrize("batch, fan_in, units", SHAPES)
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_forward(kernel_backend, rng, batch, fan_in, units, use_bias):
    x, w = _normal(rng, (batch, fan_in)), _normal(rng, (fan_in, units))
    b = _normal(rng, (units,)) if use_bias else None
    y, = compare_with_numpy(kernel_backend, lambda: ops.dense_forward(x, w, b), ["dense_forward"])
    assert y.shape == (batch, units)


@pytest.mark.parametrize("batch, fan_in, units", SHAPES)
def test_dense_backward(kernel_backend, rng, batch, fan_in, units):
    x, w, dy = _normal(rng, (batch, fan_in)), _normal(rng, (fan_in, units)), _normal(rng, (batch, units))
    kernels = ["dense_backward_input", "dense_backward_filter"]   # db: a row of the filter product
    dx, dw, db = compare_with_numpy(kernel_backend, lambda: ops.dense_backward(dy, x, w), kernels)
    assert (dx.shape, dw.shape, db.shape) == ((batch, fan_in), (fan_in, units), (units,))


@pytest.mark.parametrize("need_dx, need_db, need_dw, kernels", [
    (False, True, True, ["dense_backward_filter"]),
    (True, False, True, ["dense_backward_input", "dense_backward_filter"]),
    (False, False, True, ["dense_backward_filter"]),
    (True, False, False, ["dense_backward_input"]),      # a frozen layer: dx only
    (False, True, False, ["dense_backward_bias"]),
])
def test_dense_backward_skips_unneeded_gradients(kernel_backend, rng, need_dx, need_db, need_dw, kernels):
    x, w, dy = _normal(rng, (9, 5)), _normal(rng, (5, 4)), _normal(rng, (9, 4))
    grads = compare_with_numpy(kernel_backend, lambda: ops.dense_backward(dy, x, w, need_dx=need_dx, need_db=need_db,
                                                                need_dw=need_dw), kernels)
    assert [g is not None for g in grads] == [need_dx, need_dw, need_db]


def test_frozen_dense_layer_computes_only_the_input_gradient(kernel_backend, rng):
    x, dy = _normal(rng, (6, 7)), _normal(rng, (6, 3))
    weights = [_normal(rng, (7, 3)), _normal(rng, (3,))]

    def forward_backward():
        layer = layers.Dense(3, activation="tanh", trainable=False)
        layer.build(x.shape)
        layer.set_weights(weights)
        layer.forward(backend.current().asarray(x), training=True)
        dx = layer.backward(backend.current().asarray(dy))
        assert layer.grads == []
        return dx

    expected, _ = run_on_backend("numpy", forward_backward)
    actual, launched = run_on_backend(kernel_backend, forward_backward)
    assert [k for k in launched if k.startswith("dense")] == ["dense_forward", "dense_backward_input"]
    assert_close(actual[0], expected[0], what="frozen Dense dx")


def test_dense_bias_gradient_of_many_rows(kernel_backend, rng):
    # 300 rows: each of a block's 8 row lanes sums many rows before the tree adds the lanes.
    x, w, dy = _normal(rng, (300, 2)), _normal(rng, (2, 33)), _normal(rng, (300, 33))
    kernels = ["dense_backward_input", "dense_backward_filter"]   # db: a row of the filter product
    compare_with_numpy(kernel_backend, lambda: ops.dense_backward(dy, x, w), kernels)


def test_dense_layer_on_3d_input(kernel_backend, rng):
    """The layer folds (batch, steps, in) into rows for the kernels and unfolds the results."""
    x, dy = _normal(rng, (2, 5, 7)), _normal(rng, (2, 5, 3))
    weights = [_normal(rng, (7, 3)), _normal(rng, (3,))]

    def forward_backward():
        layer = layers.Dense(3, activation="relu")
        layer.build(x.shape)
        layer.set_weights(weights)
        y = layer.forward(backend.current().asarray(x), training=True)
        dx = layer.backward(backend.current().asarray(dy))
        return [y, dx, *layer.grads]

    # The ReLU in dense_forward's epilogue, its gradient from the output; db a row of the filter product.
    launched = ["dense_forward", "dense_backward_input", "dense_backward_filter"]
    expected, _ = run_on_backend("numpy", forward_backward)
    actual, kernels = run_on_backend(kernel_backend, forward_backward)
    assert [k for k in kernels if k.startswith("dense")] == launched
    for k, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert_close(a, e, what=f"Dense output {k}")
    assert actual[0].shape == (2, 5, 3) and actual[1].shape == (2, 5, 7)


def test_dense_gradients_are_bit_identical_across_runs(kernel_backend, rng):
    x, w, dy = _normal(rng, (37, 70)), _normal(rng, (70, 66)), _normal(rng, (37, 66))
    with thread_order("ascending"):
        first, _ = run_on_backend(kernel_backend, lambda: ops.dense_backward(dy, x, w))
    with thread_order("descending"):
        second, _ = run_on_backend(kernel_backend, lambda: ops.dense_backward(dy, x, w))
    for name, a, b in zip(("dx", "dw", "db"), first, second):
        assert a.tobytes() == b.tobytes(), f"{name} differs between two runs"


def test_dense_kernels_refuse_float64(kernel_backend, rng):
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    with backend.use(kernel_backend):
        with pytest.raises(TypeError, match=r"dense_forward .* float32 or bfloat16 or float16 kernels.*received .* float64"):
            ops.dense_forward(x, w)
        with pytest.raises(TypeError, match=r"dense_backward .* float32 or bfloat16 or float16 kernels.*received .* float64"):
            ops.dense_backward(rng.standard_normal((3, 2)), x, w)


# op, arguments (x, w, b / dy, x, w), message: each shape quoted with the one it must match.
MISMATCHES = [
    ("dense_forward", [(3, 5), (4, 2), None], r"dense_forward: x has shape \(3, 5\); expected \(3, 4\) "
                                              r"for w of shape \(4, 2\)"),
    ("dense_forward", [(3, 3), (4, 2), None], r"dense_forward: x has shape \(3, 3\); expected \(3, 4\)"),
    ("dense_forward", [(3, 4), (4, 2), (3,)], r"dense_forward: b has shape \(3,\); expected \(2,\) "
                                              r"for w of shape \(4, 2\)"),
    ("dense_forward", [(3, 4, 1), (4, 2), None], r"dense_forward: x has shape \(3, 4, 1\); expected \(batch, 4\)"),
    ("dense_forward", [(3, 4), (4,), None], r"dense_forward: w has shape \(4,\); expected a 2-D kernel"),
    ("dense_backward", [(7, 2), (3, 4), (4, 2)], r"dense_backward: dy has shape \(7, 2\); expected \(3, 2\) "
                                                 r"for x of shape \(3, 4\) and w of shape \(4, 2\)"),
    ("dense_backward", [(3, 3), (3, 4), (4, 2)], r"dense_backward: dy has shape \(3, 3\); expected \(3, 2\)"),
    ("dense_backward", [(3, 2), (3, 5), (4, 2)], r"dense_backward: x has shape \(3, 5\); expected \(3, 4\)"),
]


@pytest.mark.parametrize("op, shapes, message", MISMATCHES)
def test_dense_ops_refuse_shapes_that_do_not_match(kernel_backend, op, shapes, message):
    """Both backends raise the same error (kernels would read past the arrays' ends)."""
    arrays = [None if s is None else np.ones(s, np.float32) for s in shapes]
    for name in ("numpy", kernel_backend):
        with backend.use(name):
            with pytest.raises(ValueError, match=message):
                getattr(ops, op)(*arrays)


@pytest.mark.parametrize("m, n", [(4_194_241, 1), (1, 4_194_241)])
def test_dense_grid_fits_cuda_limits_for_millions_of_rows_or_columns(kernel_backend, m, n):
    """More than 65,535 tiles of 64 along one side of a product stay on grid axis x."""
    x, w, dy = np.ones((m, 1), np.float32), np.ones((1, n), np.float32), np.ones((m, n), np.float32)
    grids = {}
    with backend.use(kernel_backend) as be:
        be.launch = lambda file, kernel, grid, block, args: grids.setdefault(kernel, grid)  # not run
        ops.dense_forward(x, w)
        ops.dense_backward(dy, x, w)
    products = {"dense_forward": (m, n), "dense_backward_input": (m, 1), "dense_backward_filter": (1, n)}
    for kernel, (rows, cols) in products.items():
        grid = tuple(grids[kernel])
        assert all(g <= limit for g, limit in zip(grid, kernel_source.GRID_LIMITS)), (kernel, grid)
        assert sorted(grid) == sorted((math.ceil(rows / 64), math.ceil(cols / 64))), (kernel, grid)
