"""The Dense kernels (kernels/gemm.cu) against the numpy backend.

Each case runs the op under the numpy backend and under a kernel backend, compares every output,
and checks that the kernel backend launched exactly the op's kernels (no NumPy compute).
"""
import numpy as np
import pytest

from checks import assert_close, run_on_backend, thread_order
from gpunet import backend, layers
from gpunet.ops import dense as ops


def _compare(kernel_backend, fn, kernels):
    """Kernel-backend outputs of ``fn`` equal the numpy backend's; exactly ``kernels`` were launched."""
    expected, _ = run_on_backend("numpy", fn)
    actual, launched = run_on_backend(kernel_backend, fn)
    assert launched == kernels
    for k, (a, e) in enumerate(zip(actual, expected, strict=True)):
        if e is None:
            assert a is None, f"output {k} should be None"
            continue
        assert a.dtype == np.float32, f"output {k} is {a.dtype}"
        assert_close(a, e, what=f"{kernels} output {k}")
    return actual


def _normal(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


# (batch, in, out): tile-sized edges (64), one past them, batch 1, one and 67 channels.
SHAPES = [(1, 1, 1), (5, 67, 3), (33, 17, 65), (64, 100, 10), (70, 65, 129), (1, 3, 67)]


@pytest.mark.parametrize("batch, fan_in, units", SHAPES)
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_forward(kernel_backend, rng, batch, fan_in, units, use_bias):
    x, w = _normal(rng, (batch, fan_in)), _normal(rng, (fan_in, units))
    b = _normal(rng, (units,)) if use_bias else None
    y, = _compare(kernel_backend, lambda: ops.dense_forward(x, w, b), ["dense_forward"])
    assert y.shape == (batch, units)


@pytest.mark.parametrize("batch, fan_in, units", SHAPES)
def test_dense_backward(kernel_backend, rng, batch, fan_in, units):
    x, w, dy = _normal(rng, (batch, fan_in)), _normal(rng, (fan_in, units)), _normal(rng, (batch, units))
    kernels = ["dense_backward_input", "dense_backward_filter", "dense_backward_bias"]
    dx, dw, db = _compare(kernel_backend, lambda: ops.dense_backward(dy, x, w), kernels)
    assert (dx.shape, dw.shape, db.shape) == ((batch, fan_in), (fan_in, units), (units,))


@pytest.mark.parametrize("need_dx, need_db, kernels", [
    (False, True, ["dense_backward_filter", "dense_backward_bias"]),
    (True, False, ["dense_backward_input", "dense_backward_filter"]),
    (False, False, ["dense_backward_filter"]),
])
def test_dense_backward_skips_unneeded_gradients(kernel_backend, rng, need_dx, need_db, kernels):
    x, w, dy = _normal(rng, (9, 5)), _normal(rng, (5, 4)), _normal(rng, (9, 4))
    _compare(kernel_backend, lambda: ops.dense_backward(dy, x, w, need_dx=need_dx, need_db=need_db),
             kernels)


def test_dense_bias_gradient_of_many_rows(kernel_backend, rng):
    # 300 rows: each of a block's 8 row lanes sums many rows before the tree adds the lanes.
    x, w, dy = _normal(rng, (300, 2)), _normal(rng, (2, 33)), _normal(rng, (300, 33))
    kernels = ["dense_backward_input", "dense_backward_filter", "dense_backward_bias"]
    _compare(kernel_backend, lambda: ops.dense_backward(dy, x, w), kernels)


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

    launched = ["dense_forward", "dense_backward_input", "dense_backward_filter", "dense_backward_bias"]
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
        with pytest.raises(TypeError, match=r"dense_forward .* float32 kernels; received .* float64"):
            ops.dense_forward(x, w)
        with pytest.raises(TypeError, match=r"dense_backward .* float32 kernels; received .* float64"):
            ops.dense_backward(rng.standard_normal((3, 2)), x, w)
