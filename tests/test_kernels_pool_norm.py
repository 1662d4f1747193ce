"""The pooling and batch-norm kernels (kernels/pool.cu, kernels/norm.cu) against the NumPy reference.

Every op runs once on the numpy backend and once on a kernel backend with the same float32
inputs; outputs, gradients and what forward saves for backward (argmax, mean, inv_std) or
hands on (the batch variance) must agree. Argmax is compared exactly, gradients of the kernels
must repeat bit for bit.
"""
import numpy as np
import pytest

from gpunet import backend
from gpunet.primitives import norm, pool

from checks import assert_close, thread_order

POOL_CASES = [
    # x shape, pool_size, strides, padding
    ((2, 7, 9, 3), (2, 2), (2, 2), "valid"),
    ((1, 7, 9, 1), (3, 3), (2, 2), "same"),
    ((2, 5, 6, 67), (3, 3), (1, 1), "same"),      # overlapping windows, 67 channels
    ((1, 8, 7, 3), (2, 3), (3, 1), "valid"),
    ((2, 6, 5, 1), (3, 2), (2, 3), "same"),
    ((1, 4, 5, 3), (3, 3), (3, 3), "valid"),      # trailing rows and columns no window reaches
]


def _on(name, op, *args, **kwargs):
    """``op`` under backend ``name``: array arguments moved there, array results back as NumPy."""
    with backend.use(name) as be:
        args = [be.asarray(a, a.dtype) if isinstance(a, np.ndarray) else a for a in args]
        out = op(*args, **kwargs)
        if isinstance(out, tuple):
            return tuple(be.to_numpy(o) for o in out)
        return be.to_numpy(out)


def _both(kernel_backend, op, *args, **kwargs):
    return _on("numpy", op, *args, **kwargs), _on(kernel_backend, op, *args, **kwargs)


def _normal(rng, shape, offset=0.0, scale=1.0):
    return (offset + scale * rng.standard_normal(shape)).astype(np.float32)


@pytest.mark.parametrize("shape, pool_size, strides, padding", POOL_CASES)
def test_max_pool_matches_numpy(kernel_backend, rng, shape, pool_size, strides, padding):
    x = _normal(rng, shape)
    (y_ref, argmax_ref), (y, argmax) = _both(kernel_backend, pool.max_pool2d_forward, x, pool_size, strides,
                                             padding)
    assert_close(y, y_ref, what="max pool y")
    np.testing.assert_array_equal(argmax, argmax_ref)
    assert argmax.dtype == np.int32
    dy = _normal(rng, y_ref.shape)
    dx_ref = _on("numpy", pool.max_pool2d_backward, dy, argmax_ref, shape)
    geometry = dict(pool_size=pool_size, strides=strides, padding=padding)
    assert_close(_on(kernel_backend, pool.max_pool2d_backward, dy, argmax_ref, shape, **geometry), dx_ref,
                 what="max pool dx")
    # Without the geometry every cell scans its whole plane: slower, the same sums.
    assert_close(_on(kernel_backend, pool.max_pool2d_backward, dy, argmax_ref, shape), dx_ref,
                 what="max pool dx (no geometry)")


@pytest.mark.parametrize("values", ["equal", "quantised", "minus_inf", "nan"])
@pytest.mark.parametrize("pool_size, strides, padding", [((3, 3), (1, 1), "same"), ((2, 2), (2, 2), "valid"),
                                                         ((3, 2), (2, 1), "same")])
def test_max_pool_ties_and_special_values(kernel_backend, rng, values, pool_size, strides, padding):
    shape = (2, 6, 7, 3)
    if values == "equal":
        x = np.full(shape, 0.5, np.float32)
    elif values == "quantised":
        x = np.round(rng.standard_normal(shape)).astype(np.float32)   # mostly -1, 0, 1: many ties
    else:
        x = np.round(rng.standard_normal(shape)).astype(np.float32)
        hit = rng.random(shape) < 0.3
        x[hit] = -np.inf if values == "minus_inf" else np.nan
        if values == "minus_inf":
            x[0, :, :, 1] = -np.inf                                   # a whole plane of -inf
    (y_ref, argmax_ref), (y, argmax) = _both(kernel_backend, pool.max_pool2d_forward, x, pool_size, strides,
                                             padding)
    np.testing.assert_array_equal(y, y_ref)      # NaN where the reference has NaN
    np.testing.assert_array_equal(argmax, argmax_ref)
    dy = _normal(rng, y_ref.shape)
    dx_ref = _on("numpy", pool.max_pool2d_backward, dy, argmax_ref, shape)
    dx = _on(kernel_backend, pool.max_pool2d_backward, dy, argmax_ref, shape, pool_size=pool_size,
             strides=strides, padding=padding)
    assert_close(dx, dx_ref, what="max pool dx")


@pytest.mark.parametrize("shape, pool_size, strides, padding", POOL_CASES)
def test_avg_pool_matches_numpy(kernel_backend, rng, shape, pool_size, strides, padding):
    x = _normal(rng, shape)
    y_ref, y = _both(kernel_backend, pool.avg_pool2d_forward, x, pool_size, strides, padding)
    assert_close(y, y_ref, what="avg pool y")
    dy = _normal(rng, y_ref.shape)
    dx_ref, dx = _both(kernel_backend, pool.avg_pool2d_backward, dy, shape, pool_size, strides, padding)
    assert_close(dx, dx_ref, what="avg pool dx")


@pytest.mark.parametrize("shape", [(2, 5, 7, 67), (1, 1, 1, 1), (3, 19, 17, 3), (1, 4, 6, 1)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_avg_pool_matches_numpy(kernel_backend, rng, shape, keepdims):
    x = _normal(rng, shape, offset=1.0)
    y_ref, y = _both(kernel_backend, pool.global_avg_pool2d_forward, x, keepdims)
    assert_close(y, y_ref, what="global avg y")
    dy = _normal(rng, y_ref.shape)
    dx_ref, dx = _both(kernel_backend, pool.global_avg_pool2d_backward, dy, shape)
    assert_close(dx, dx_ref, what="global avg dx")


NORM_SHAPES = [(2, 5, 7, 67), (300, 67), (3, 20, 21, 1), (70, 3), (1, 1, 1, 3), (1, 3)]


def _norm_inputs(rng, shape):
    c = shape[-1]
    x = _normal(rng, shape, offset=3.0, scale=2.0)
    gamma, beta = _normal(rng, (c,), 1.0, 0.5), _normal(rng, (c,))
    moving_mean, moving_var = _normal(rng, (c,)), (0.5 + rng.random(c)).astype(np.float32)
    return x, gamma, beta, moving_mean, moving_var, _normal(rng, shape)


@pytest.mark.parametrize("shape", NORM_SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_training_matches_numpy(kernel_backend, rng, shape, affine):
    x, gamma, beta, _, _, dy = _norm_inputs(rng, shape)
    gamma, beta = (gamma, beta) if affine else (None, None)
    ref, out = _both(kernel_backend, norm.batch_norm_train_forward, x, gamma, beta, 1e-3)
    for name, a, b in zip(("y", "mean", "inv_std", "var"), out, ref):
        assert_close(a, b, what=f"batch norm {name}")
    _, mean, inv_std, _ = ref   # one set of saved statistics for both backwards
    ref, out = _both(kernel_backend, norm.batch_norm_backward, dy, x, gamma, mean, inv_std)
    for name, a, b in zip(("dx", "dgamma", "dbeta"), out, ref):
        assert_close(a, b, what=f"batch norm {name}")


@pytest.mark.parametrize("shape", NORM_SHAPES)
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_inference_matches_numpy(kernel_backend, rng, shape, affine):
    x, gamma, beta, moving_mean, moving_var, dy = _norm_inputs(rng, shape)
    gamma, beta = (gamma, beta) if affine else (None, None)
    y_ref, y = _both(kernel_backend, norm.batch_norm_inference_forward, x, gamma, beta, moving_mean, moving_var,
                     1e-3)
    assert_close(y, y_ref, what="batch norm inference y")
    ref, out = _both(kernel_backend, norm.batch_norm_inference_backward, dy, x, gamma, moving_mean, moving_var,
                     1e-3)
    for name, a, b in zip(("dx", "dgamma", "dbeta"), out, ref):
        assert_close(a, b, what=f"batch norm inference {name}")


@pytest.mark.parametrize("channels", [1, 3, 67])
def test_moving_stats_update_in_place(kernel_backend, rng, channels):
    moving_mean, moving_var = _normal(rng, (channels,)), (0.5 + rng.random(channels)).astype(np.float32)
    mean, var = _normal(rng, (channels,)), (0.5 + rng.random(channels)).astype(np.float32)
    var[0] = 0.0                                          # a constant channel
    results = {}
    for name in ("numpy", kernel_backend):
        with backend.use(name) as be:
            stats = [be.asarray(moving_mean.copy()), be.asarray(moving_var.copy())]   # updated in place
            norm.batch_norm_update_moving_stats(*stats, be.asarray(mean), be.asarray(var), 0.9)
            results[name] = [be.to_numpy(s) for s in stats]
    for what, a, b in zip(("moving_mean", "moving_var"), results[kernel_backend], results["numpy"]):
        assert_close(a, b, what=what)
    assert_close(results[kernel_backend][1], 0.9 * moving_var + 0.1 * var, rtol=1e-6, what="moving_var")
    assert not np.array_equal(results["numpy"][0], moving_mean)     # it did update


@pytest.mark.parametrize("std", [1e-4, 1e-3])
def test_moving_variance_far_below_epsilon_is_the_batch_variance(kernel_backend, rng, std):
    # Rebuilt as 1 / inv_std**2 - epsilon, a variance far below epsilon lost its digits
    # (1.7% off at std 1e-4, epsilon 1e-3); Keras stores the batch variance itself.
    x = _normal(rng, (2, 5, 7, 3), offset=0.5, scale=std)
    expected = x.astype(np.float64).reshape(-1, 3).var(axis=0)
    for name in ("numpy", kernel_backend):
        with backend.use(name) as be:
            _, mean, _, var = norm.batch_norm_train_forward(be.asarray(x, np.float32), None, None, 1e-3)
            moving_mean, moving_var = be.asarray(np.zeros(3), np.float32), be.asarray(np.ones(3), np.float32)
            norm.batch_norm_update_moving_stats(moving_mean, moving_var, mean, var, 0.0)
            assert_close(be.to_numpy(moving_var), expected, rtol=1e-5, atol=0,
                         what=f"moving variance on {name}")


def _gradients(name, rng):
    """Every gradient kernel of this family once, on inputs drawn from ``rng``."""
    x, gamma, _, moving_mean, moving_var, dy = _norm_inputs(rng, (3, 9, 11, 67))
    mean, inv_std = _on("numpy", norm.batch_norm_train_forward, x, gamma, None, 1e-3)[1:3]
    px = _normal(rng, (2, 9, 8, 3))
    argmax = _on("numpy", pool.max_pool2d_forward, px, (3, 3), (2, 2), "same")[1]
    pdy = _normal(rng, argmax.shape)
    return [
        *_on(name, norm.batch_norm_train_forward, x, gamma, None, 1e-3)[1:],
        *_on(name, norm.batch_norm_backward, dy, x, gamma, mean, inv_std),
        *_on(name, norm.batch_norm_inference_backward, dy, x, gamma, moving_mean, moving_var, 1e-3),
        _on(name, pool.max_pool2d_backward, pdy, argmax, px.shape, pool_size=(3, 3), strides=(2, 2),
            padding="same"),
        _on(name, pool.avg_pool2d_backward, pdy, px.shape, (3, 3), (2, 2), "same"),
    ]


def test_gradients_are_bit_identical_across_runs(kernel_backend):
    with thread_order("ascending"):
        first = _gradients(kernel_backend, np.random.default_rng(7))
    with thread_order("descending"):
        second = _gradients(kernel_backend, np.random.default_rng(7))
    for k, (a, b) in enumerate(zip(first, second)):
        assert a.tobytes() == b.tobytes(), f"output {k} differs between two identical runs"


OP_KERNELS = [
    # op, arguments (float32 unless noted), kernels it must launch
    (pool.max_pool2d_forward, ("x", (2, 2), (2, 2), "valid"), {"max_pool2d_forward"}),
    (pool.max_pool2d_backward, ("y", "argmax", (1, 4, 4, 3)), {"max_pool2d_backward"}),
    (pool.avg_pool2d_forward, ("x", (2, 2), (2, 2), "valid"), {"avg_pool2d_forward"}),
    (pool.avg_pool2d_backward, ("y", (1, 4, 4, 3), (2, 2), (2, 2), "valid"), {"avg_pool2d_backward"}),
    (pool.global_avg_pool2d_forward, ("x",), {"global_avg_pool2d_forward"}),
    (pool.global_avg_pool2d_backward, ("c", (1, 4, 4, 3)), {"global_avg_pool2d_backward"}),
    (norm.batch_norm_train_forward, ("x", "c", None, 1e-3), {"batch_norm_statistics", "batch_norm_normalize"}),
    (norm.batch_norm_backward, ("x", "x", None, "c", "c"), {"batch_norm_backward_sums", "batch_norm_backward_input"}),
    (norm.batch_norm_inference_forward, ("x", None, "c", "c", "c", 1e-3),
     {"batch_norm_inv_std", "batch_norm_normalize"}),
    (norm.batch_norm_inference_backward, ("x", "x", "c", "c", "c", 1e-3),
     {"batch_norm_inv_std", "batch_norm_backward_sums", "batch_norm_inference_backward_input"}),
    (norm.batch_norm_update_moving_stats, ("c", "c", "c", "c", 0.99), {"batch_norm_update_moving_stats"}),
]


@pytest.mark.parametrize("op, args, kernels", OP_KERNELS, ids=[op.__name__ for op, _, _ in OP_KERNELS])
def test_every_op_runs_its_kernels(kernel_backend, monkeypatch, op, args, kernels):
    arrays = {"x": np.ones((1, 4, 4, 3), np.float32), "y": np.ones((1, 2, 2, 3), np.float32),
              "c": np.ones(3, np.float32), "argmax": np.zeros((1, 2, 2, 3), np.int32)}
    with backend.use(kernel_backend) as be:
        launched = []
        real_launch = be.launch
        monkeypatch.setattr(be, "launch", lambda file, kernel, *rest, **kw:
                            launched.append(kernel) or real_launch(file, kernel, *rest, **kw))
        op(*[be.asarray(arrays[a], arrays[a].dtype) if isinstance(a, str) and a in arrays else a
            for a in args])
    assert set(launched) == kernels


@pytest.mark.parametrize("op, call", [
    ("max_pool2d_forward", lambda x: pool.max_pool2d_forward(x, (2, 2), (2, 2), "valid")),
    ("avg_pool2d_backward", lambda x: pool.avg_pool2d_backward(x, x.shape, (1, 1), (1, 1), "valid")),
    ("global_avg_pool2d_forward", lambda x: pool.global_avg_pool2d_forward(x)),
    ("batch_norm_train_forward", lambda x: norm.batch_norm_train_forward(x, None, None, 1e-3)),
    ("batch_norm_inference_backward",
     lambda x: norm.batch_norm_inference_backward(x, x, None, x[0, 0, 0], x[0, 0, 0], 1e-3)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_kernel_paths_refuse_float64(kernel_backend, op, call):
    with backend.use(kernel_backend) as be:
        x = be.asarray(np.ones((1, 4, 4, 3)), np.float64)
        with pytest.raises(TypeError, match=f"{op} .*float32"):
            call(x)
