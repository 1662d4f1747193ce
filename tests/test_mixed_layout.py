"""bfloat16 / float16 through the layout family's kernels (pool, shape, image, norm, group_norm,
depthwise): each op on the kernel backend against the NumPy reference, and the NumPy reference in
16-bit against float64 arithmetic on the same 16-bit inputs (issue 11's round-once rule).

Tolerances, derived from where the two sides round:
* selections and copies (max pooling, padding, nearest upsampling, concatenation, crops) move
  16-bit values untouched: bit-identical.
* a map or a sum computed in float32 and rounded once to the 16-bit type: the float32 results of
  the two backends differ by a few float32 ulps (summation order), far below half a 16-bit ulp,
  so after the one rounding they agree within 1 ulp of the 16-bit type (equal unless the float32
  value sat next to a rounding boundary).
* the reference against float64: half an ulp from the final rounding plus the float32 error of
  the computation, which stays well under half an ulp for these sizes: within 1 ulp.
Reductions whose terms cancel (batch-norm's dx, dgamma) are compared relative to the size of the
terms rather than of the result, which is what a float32 summation-order difference is bounded by.
"""
import numpy as np
import pytest

from gpunet import backend
from gpunet.primitives import epilogue, norm, norm_sync, pool, precision

from checks import assert_close

HALF = {"bfloat16": precision.BFLOAT16, "float16": precision.FLOAT16}
HALVES = pytest.mark.parametrize("half", sorted(HALF))


@pytest.fixture(autouse=True)
def _references_on_numpy():
    """Direct calls (the float64 references, the error bounds) run on numpy whatever GPUNET_BACKEND
    says; each comparison names the kernel backend explicitly (``_on``)."""
    with backend.use("numpy"):
        yield


def _on(name, op, *args, **kwargs):
    """``op`` under backend ``name``: array arguments moved there (dtype kept), results back as NumPy."""
    with backend.use(name) as be:
        args = [be.asarray(a, a.dtype) if isinstance(a, np.ndarray) else a for a in args]
        out = op(*args, **kwargs)
        if isinstance(out, (tuple, list)):
            return tuple(None if o is None else be.to_numpy(o) for o in out)
        return be.to_numpy(out)


def _normal(rng, shape, dtype, offset=0.0, scale=1.0):
    return (offset + scale * rng.standard_normal(shape)).astype(np.float32).astype(dtype)


def ulp(values, dtype):
    """The spacing of ``dtype`` (bfloat16 / float16) at each of ``values``: 2**(exponent - mantissa bits),
    at least the subnormal spacing."""
    info = np.finfo(dtype) if dtype == precision.FLOAT16 else __import__("ml_dtypes").finfo(dtype)
    magnitude = np.maximum(np.abs(np.asarray(values, np.float64)), float(info.smallest_normal))
    return 2.0 ** np.floor(np.log2(magnitude)) * float(info.eps)


def assert_ulps(actual, expected, dtype, ulps=1.0, atol=0.0, what="value"):
    """|actual - expected| <= ulps * ulp(expected) of the 16-bit ``dtype`` + ``atol`` (a float32
    error bound, elementwise or scalar, for results that cancel), elementwise."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    error = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    bound = ulps * ulp(expected, dtype) + atol
    bad = ~((error <= bound) | (actual.astype(np.float64) == expected.astype(np.float64)))
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} differ by more than {ulps} ulp of "
                             f"{np.dtype(dtype).name}; first at {at}: got {actual[at]!r}, expected {expected[at]!r}")


def assert_bits(actual, expected, what="value"):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, \
        f"{what}: {actual.dtype} {actual.shape} vs {expected.dtype} {expected.shape}"
    np.testing.assert_array_equal(actual.view(np.uint16), expected.view(np.uint16), err_msg=what)


def _both(kernel_backend, op, *args, **kwargs):
    return _on("numpy", op, *args, **kwargs), _on(kernel_backend, op, *args, **kwargs)


# -- pooling -------------------------------------------------------------------------------------

POOL = dict(pool_size=(3, 3), strides=(2, 2), padding="same")   # overlapping windows, padded edges


@HALVES
def test_max_pool_is_a_selection_and_its_gradient_sums_in_float32(kernel_backend, rng, half):
    dtype = HALF[half]
    x = _normal(rng, (2, 7, 6, 5), dtype)
    (y_ref, arg_ref), (y, arg) = _both(kernel_backend, pool.max_pool2d_forward, x, **POOL)
    assert_bits(y, y_ref, "max pool y")
    np.testing.assert_array_equal(arg, arg_ref)
    dy = _normal(rng, y.shape, dtype)
    gate = np.maximum(x, 0).astype(dtype)   # the pooled ReLU's output: dx is gated by gate > 0
    fold = (gate, epilogue.Epilogue("relu"))
    dx_ref = _on("numpy", pool.max_pool2d_backward, dy, arg_ref, x.shape, **POOL, fold=fold)
    with backend.use(kernel_backend) as be:
        dx = be.to_numpy(pool.max_pool2d_backward(be.asarray(dy, dtype), be.asarray(arg_ref, np.int32), x.shape,
                                                  **POOL, fold=(be.asarray(gate, dtype), fold[1])))
    assert dx.dtype == dtype
    assert_ulps(dx, dx_ref, dtype, what="max pool dx")
    # The reference: overlapping windows' float32 sum of 16-bit dy, rounded once.
    exact = np.zeros(x.shape, np.float64)
    n, c = np.meshgrid(np.arange(2), np.arange(5), indexing="ij")
    for i in range(y.shape[1]):
        for j in range(y.shape[2]):
            rows, cols = np.divmod(arg_ref[:, i, j, :], x.shape[2])
            np.add.at(exact, (n, rows, cols, c), dy[:, i, j, :].astype(np.float64))
    assert_ulps(dx_ref, exact * (gate > 0), dtype, what="max pool dx reference")


@HALVES
def test_average_pools_round_once(kernel_backend, rng, half):
    dtype = HALF[half]
    x = _normal(rng, (2, 7, 6, 5), dtype)
    y_ref, y = _both(kernel_backend, pool.avg_pool2d_forward, x, **POOL)
    assert y.dtype == dtype
    assert_ulps(y, y_ref, dtype, what="avg pool y")
    assert_ulps(y_ref, pool.avg_pool2d_forward(x.astype(np.float64), **POOL), dtype, what="avg pool y reference")
    dy = _normal(rng, y.shape, dtype)
    dx_ref, dx = _both(kernel_backend, pool.avg_pool2d_backward, dy, x.shape, **POOL)
    assert dx.dtype == dtype
    assert_ulps(dx, dx_ref, dtype, what="avg pool dx")
    assert_ulps(dx_ref, pool.avg_pool2d_backward(dy.astype(np.float64), x.shape, **POOL), dtype,
                what="avg pool dx reference")
    g_ref, g = _both(kernel_backend, pool.global_avg_pool2d_forward, x)
    assert g.dtype == dtype
    assert_ulps(g, g_ref, dtype, what="global avg y")
    assert_ulps(g_ref, x.astype(np.float64).mean(axis=(1, 2)), dtype, what="global avg y reference")
    dg = _normal(rng, g.shape, dtype)
    dgx_ref, dgx = _both(kernel_backend, pool.global_avg_pool2d_backward, dg, x.shape)
    assert_bits(dgx, dgx_ref, "global avg dx")
    assert_ulps(dgx_ref, np.broadcast_to(dg.astype(np.float64)[:, None, None, :] / 42, x.shape), dtype,
                what="global avg dx reference")


# -- shape: padding, upsampling, concatenation ---------------------------------------------------

@HALVES
def test_copies_move_16_bit_values_untouched(kernel_backend, rng, half):
    from gpunet.primitives import shape
    dtype = HALF[half]
    x, other = _normal(rng, (2, 3, 4, 5), dtype), _normal(rng, (2, 3, 4, 2), dtype)
    pads = ((1, 2), (0, 1))
    for op, args in ((shape.zero_pad2d_forward, (x, pads)), (shape.zero_pad2d_backward, (x, ((1, 0), (1, 2)))),
                     (shape.upsample2d_forward, (x, (2, 3), "nearest"))):
        expected, actual = _both(kernel_backend, op, *args)
        assert_bits(actual, expected, op.__name__)
    joined_ref, joined = _both(kernel_backend, shape.concat_forward, [x, other], -1)
    assert_bits(joined, joined_ref, "concat_forward")
    np.testing.assert_array_equal(joined_ref[..., 5:].view(np.uint16), other.view(np.uint16))
    pieces_ref, pieces = _both(kernel_backend, shape.concat_backward, joined, [5, 2], 3)
    for a, e in zip(pieces, pieces_ref):
        assert_bits(a, e, "concat_backward")
    assert_bits(pieces[0], x, "concat_backward piece 0")


@HALVES
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_upsampling_sums_and_interpolations_round_once(kernel_backend, rng, half, interpolation):
    from gpunet.primitives import shape
    dtype, size = HALF[half], (2, 3)
    x = _normal(rng, (2, 3, 4, 5), dtype)
    if interpolation == "bilinear":
        y_ref, y = _both(kernel_backend, shape.upsample2d_forward, x, size, interpolation)
        assert y.dtype == dtype
        assert_ulps(y, y_ref, dtype, what="bilinear y")
        assert_ulps(y_ref, shape.upsample2d_forward(x.astype(np.float64), size, interpolation), dtype,
                    what="bilinear y reference")
    dy = _normal(rng, (2, 6, 12, 5), dtype)
    dx_ref, dx = _both(kernel_backend, shape.upsample2d_backward, dy, size, interpolation)
    assert dx.dtype == dtype
    assert_ulps(dx, dx_ref, dtype, what=f"{interpolation} dx")
    assert_ulps(dx_ref, shape.upsample2d_backward(dy.astype(np.float64), size, interpolation), dtype,
                what=f"{interpolation} dx reference")


@HALVES
def test_add_rounds_after_each_pairwise_add(kernel_backend, rng, half):
    from gpunet.primitives import shape
    dtype = HALF[half]
    xs = [np.array([1.0, 256.0], dtype), np.array([2 ** -8, 1.0], dtype), np.array([2 ** -8, 1.0], dtype)]
    xs = [np.concatenate([x, _normal(rng, 300, dtype)]) for x in xs]   # and some ordinary values
    total, on_kernels = _both(kernel_backend, shape.add_forward, xs)
    assert_bits(on_kernels, total, "add_forward")
    one_ref, one = _both(kernel_backend, shape.add_forward, xs[:1])
    assert_bits(one, one_ref, "add_forward of one input")
    grads = _on(kernel_backend, shape.add_backward, xs[0], 3)
    for g in grads:
        assert_bits(g, xs[0], "add_backward")
    total = total[:2]
    # ((x0 + x1) + x2), each add rounded to the 16-bit type as Keras's op-by-op Add and the kernels
    # store: bf16 (8 significant bits) loses both small terms, fp16 keeps them.
    xs = [x[:2] for x in xs]
    pairwise = ((xs[0].astype(np.float32) + xs[1]).astype(dtype).astype(np.float32) + xs[2]).astype(dtype)
    assert_bits(total, pairwise, "add_forward")
    expected = [1.0, 256.0] if dtype == precision.BFLOAT16 else [1 + 2 ** -7, 258.0]
    np.testing.assert_array_equal(total.astype(np.float64), expected)


# -- batch normalization: 16-bit x / y / dy / dx, float32 statistics and parameters -------------

EPS32 = 2.0 ** -24   # float32's unit roundoff: a float32 sum of M terms is off by <= M * EPS32 * sum |term|


def _f64(*arrays):
    return [None if a is None else np.asarray(a, np.float64) for a in arrays]


def _batch_norm_f64(x, gamma, beta, dy, epsilon):
    """Training forward and backward in float64, with the float32 error bounds of y and dx:
    M * EPS32 times the magnitude of the terms each one adds (they cancel)."""
    x, gamma, beta, dy = _f64(x, gamma, beta, dy)
    rows, c = x.size // x.shape[-1], x.shape[-1]
    mean = x.reshape(-1, c).mean(axis=0)
    inv_std = 1 / np.sqrt(((x - mean) ** 2).reshape(-1, c).mean(axis=0) + epsilon)
    x_hat = (x - mean) * inv_std
    y = x_hat * gamma + beta
    dbeta, dgamma = dy.reshape(-1, c).sum(axis=0), (dy * x_hat).reshape(-1, c).sum(axis=0)
    dx = (dy - dbeta / rows - x_hat * dgamma / rows) * inv_std * gamma
    y_atol = rows * EPS32 * (np.abs(x_hat * gamma) + np.abs(beta))
    terms = np.abs(dy) + np.abs(dy).reshape(-1, c).mean(axis=0) + np.abs(x_hat) * np.abs(dy * x_hat).reshape(
        -1, c).mean(axis=0)
    dx_atol = 2 * rows * EPS32 * terms * inv_std * np.abs(gamma)
    sums_atol = (2 * rows * EPS32 * np.abs(dy).reshape(-1, c).sum(axis=0),
                 2 * rows * EPS32 * np.abs(dy * x_hat).reshape(-1, c).sum(axis=0))
    return dict(y=y, mean=mean, inv_std=inv_std, dx=dx, dgamma=dgamma, dbeta=dbeta, y_atol=y_atol,
                dx_atol=dx_atol, sums_atol=sums_atol)


@HALVES
def test_batch_norm_training_in_16_bit_keeps_float32_statistics(kernel_backend, rng, half):
    dtype, eps = HALF[half], 1e-3
    x = _normal(rng, (4, 3, 4, 5), dtype, offset=3.0, scale=2.0)   # |mean| > std: the shifted sums
    gamma, beta = _normal(rng, 5, np.float32, 1.0, 0.3), _normal(rng, 5, np.float32, 0.0, 0.3)
    dy = _normal(rng, x.shape, dtype)
    exact = _batch_norm_f64(x, gamma, beta, dy, eps)
    ref, out = _both(kernel_backend, norm.batch_norm_train_forward, x, gamma, beta, eps)
    assert [a.dtype for a in out] == [dtype, np.float32, np.float32, np.float32]
    assert_ulps(out[0], ref[0], dtype, atol=exact["y_atol"], what="batch norm y")
    assert_ulps(ref[0], exact["y"], dtype, atol=exact["y_atol"], what="batch norm y reference")
    for k, name in ((1, "mean"), (2, "inv_std")):
        assert_close(out[k], ref[k], rtol=1e-5, atol=1e-6, what=f"batch norm {name}")
        assert_close(ref[k], exact[name], rtol=1e-5, atol=1e-6, what=f"batch norm {name} reference")
    mean, inv_std = ref[1], ref[2]
    ref, out = _both(kernel_backend, norm.batch_norm_backward, dy, x, gamma, mean, inv_std)
    assert [a.dtype for a in out] == [dtype, np.float32, np.float32]
    assert_ulps(out[0], ref[0], dtype, atol=exact["dx_atol"], what="batch norm dx")
    assert_ulps(ref[0], exact["dx"], dtype, atol=exact["dx_atol"], what="batch norm dx reference")
    for k, name, atol in ((1, "dgamma", exact["sums_atol"][1]), (2, "dbeta", exact["sums_atol"][0])):
        assert_close(out[k], ref[k], rtol=0, atol=atol, what=f"batch norm {name}")
        assert_close(ref[k], exact[name], rtol=0, atol=atol, what=f"batch norm {name} reference")
    # The synchronized backward with this rank's own sums is the plain backward.
    dx_ref, dx = _both(kernel_backend, norm_sync.batch_norm_backward_from_sums, dy, x, gamma, mean, inv_std,
                       ref[1], ref[2])
    assert dx.dtype == dtype
    assert_ulps(dx, dx_ref, dtype, atol=exact["dx_atol"], what="sync batch norm dx")
    assert_ulps(dx_ref, ref[0], dtype, atol=exact["dx_atol"], what="sync batch norm dx reference")


@HALVES
def test_batch_norm_inference_in_16_bit_with_a_folded_relu(kernel_backend, rng, half):
    dtype, eps = HALF[half], 1e-3
    x, dy = _normal(rng, (6, 7), dtype), _normal(rng, (6, 7), dtype)
    gamma, beta = _normal(rng, 7, np.float32, 1.0, 0.3), _normal(rng, 7, np.float32, 0.0, 0.3)
    moving_mean, moving_var = _normal(rng, 7, np.float32, 0.0, 0.2), (0.5 + rng.random(7)).astype(np.float32)
    relu = epilogue.Epilogue("relu")
    y_ref, y = _both(kernel_backend, norm.batch_norm_inference_forward, x, gamma, beta, moving_mean, moving_var,
                     eps, relu)
    assert y.dtype == dtype
    x64, g64, b64 = _f64(x, gamma, beta)
    inv_std = 1 / np.sqrt(np.float64(moving_var) + eps)
    terms = np.abs((x64 - moving_mean) * inv_std * g64) + np.abs(b64)
    assert_ulps(y, y_ref, dtype, atol=4 * EPS32 * terms, what="inference y")
    assert_ulps(y_ref, np.maximum((x64 - moving_mean) * inv_std * g64 + b64, 0), dtype, atol=4 * EPS32 * terms,
                what="inference y reference")
    ref, out = _both(kernel_backend, norm.batch_norm_inference_backward, dy, x, gamma, moving_mean, moving_var, eps)
    assert [a.dtype for a in out] == [dtype, np.float32, np.float32]
    assert_ulps(out[0], ref[0], dtype, what="inference dx")
    assert_ulps(ref[0], np.float64(dy) * inv_std * g64, dtype, what="inference dx reference")
    x_hat = np.abs((x64 - moving_mean) * inv_std)
    assert_close(out[1], ref[1], rtol=0, atol=12 * EPS32 * np.abs(np.float64(dy) * x_hat).sum(axis=0),
                 what="inference dgamma")
    assert_close(out[2], ref[2], rtol=0, atol=12 * EPS32 * np.abs(np.float64(dy)).sum(axis=0), what="inference dbeta")


# -- group / layer normalization ------------------------------------------------------------------

def _group_bounds(x, gamma, dy, groups, p, rms):
    """float32 error bounds of y and dx: the values of a group count n, so each statistic or
    projection is off by <= n * EPS32 times the sum of |terms| it adds, and y / dx by that times
    what multiplies it (elementwise, in x's shape)."""
    from gpunet.primitives import group_norm
    x, gamma, dy = _f64(x, gamma, dy)
    _, mean, inv_std = group_norm.group_norm_forward(x, gamma, None, groups, p, 1e-3, rms)
    grouped = lambda a: a.reshape(-1, p, groups, x.shape[-1] // groups)
    s, m = inv_std[:, None, :, None], (0 if rms else mean[:, None, :, None])
    xg, g = grouped(x), grouped(dy * gamma)
    x_hat = np.abs((xg - m) * s)
    n = p * x.shape[-1] // groups
    y_atol = 2 * n * EPS32 * x_hat * np.abs(grouped(np.broadcast_to(gamma, x.shape)))
    mean_abs = lambda a: np.abs(a).mean(axis=(1, 3), keepdims=True)
    dx_atol = 2 * n * EPS32 * s * (np.abs(g) + mean_abs(g) + x_hat * mean_abs(g * (xg - m) * s) * (s if rms else 1))
    dgamma_terms = (np.abs(grouped(dy)) * (np.abs(xg * s) if rms else x_hat)).reshape(-1, x.shape[-1])
    return y_atol.reshape(x.shape), dx_atol.reshape(x.shape), dgamma_terms.sum(axis=0)


@HALVES
@pytest.mark.parametrize("groups, p, rms", [(3, 12, False), (1, 1, True)])   # GroupNorm; rms LayerNorm
def test_group_norm_in_16_bit_keeps_float32_statistics(kernel_backend, rng, half, groups, p, rms):
    from gpunet.primitives import group_norm
    dtype, eps = HALF[half], 1e-3
    shape = (2, 3, 4, 6) if p > 1 else (5, 16)
    x, dy = _normal(rng, shape, dtype, offset=1.0), _normal(rng, shape, dtype)
    gamma, beta = _normal(rng, shape[-1], np.float32, 1.0, 0.3), _normal(rng, shape[-1], np.float32, 0.0, 0.3)
    beta = None if rms else beta
    y_atol, dx_atol, dgamma_terms = _group_bounds(x, gamma, dy, groups, p, rms)
    exact = group_norm.group_norm_forward(*_f64(x, gamma, beta), groups, p, eps, rms)
    ref, out = _both(kernel_backend, group_norm.group_norm_forward, x, gamma, beta, groups, p, eps, rms)
    assert [a.dtype for a in out] == [dtype, np.float32, np.float32]
    assert_ulps(out[0], ref[0], dtype, atol=y_atol, what="group norm y")
    assert_ulps(ref[0], exact[0], dtype, atol=y_atol, what="group norm y reference")
    for k in (1, 2):
        assert_close(out[k], ref[k], rtol=1e-5, atol=1e-6, what=f"group norm statistic {k}")
        assert_close(ref[k], exact[k], rtol=1e-5, atol=1e-6, what=f"group norm statistic {k} reference")
    mean, inv_std = ref[1], ref[2]
    exact = group_norm.group_norm_backward(*_f64(dy, x, gamma, mean, inv_std), groups, p, rms)
    ref, out = _both(kernel_backend, group_norm.group_norm_backward, dy, x, gamma, mean, inv_std, groups, p, rms)
    assert [a.dtype for a in out] == [dtype, np.float32, np.float32]
    assert_ulps(out[0], ref[0], dtype, atol=dx_atol, what="group norm dx")
    assert_ulps(ref[0], exact[0], dtype, atol=dx_atol, what="group norm dx reference")
    rows = x.size // x.shape[-1]
    dbeta_terms = np.abs(np.float64(dy)).reshape(-1, x.shape[-1]).sum(axis=0)
    for k, name, terms in ((1, "dgamma", dgamma_terms), (2, "dbeta", dbeta_terms)):
        atol = 2 * rows * EPS32 * terms
        assert_close(out[k], ref[k], rtol=0, atol=atol, what=f"group norm {name}")
        assert_close(ref[k], exact[k], rtol=0, atol=atol, what=f"group norm {name} reference")


# -- image resampling and intensity ------------------------------------------------------------

@HALVES
def test_image_kernels_round_once(kernel_backend, rng, half):
    from gpunet.primitives import image
    dtype = HALF[half]
    x = _normal(rng, (2, 5, 6, 3), dtype, offset=0.5)
    # Rotation about the centre with a shift: bilinear taps, some outside (reflect)
    angle, (cy, cx) = 0.3, (2.0, 2.5)
    a0, a1, b0, b1 = np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)
    transforms = np.array([[a0, a1, cx - a0 * cx - a1 * cy + 0.7, b0, b1, cy - b0 * cx - b1 * cy, 0, 0],
                           [1, 0, -1.5, 0, 1, 0.25, 0, 0]], np.float32)
    cases = [("resize bilinear", image.resize_forward, (x, (7, 4), "bilinear"), 0),
             ("resize nearest", image.resize_forward, (x, (3, 8), "nearest"), None),
             ("affine bilinear", image.affine_forward, (x, transforms, "bilinear", "reflect"), 0),
             ("affine nearest", image.affine_forward, (x, transforms, "nearest", "constant", 0.5), None),
             ("intensity", image.intensity_forward, (x, np.float32([1.5, 0.5]), np.float32([0.1, -0.2]),
                                                     np.float32([[0.1, 0.2, 0.3], [0.0, -0.1, 0.4]]), (0.0, 1.0)), 0)]
    for what, op, args, rounded in cases:
        expected, actual = _both(kernel_backend, op, *args)
        assert actual.dtype == dtype, what
        if rounded is None:      # nearest: a copy of a 16-bit value (or the fill value, rounded once)
            assert_bits(actual, expected, what)
        else:                    # weights and taps in float32, one rounding: 1 ulp, plus float32's
            terms = 4 * np.abs(np.float64(x)).max()   # error near a result that cancels to ~0
            assert_ulps(actual, expected, dtype, atol=8 * EPS32 * terms, what=what)
            exact = op(np.float64(x), *args[1:])
            assert_ulps(expected, exact, dtype, atol=8 * EPS32 * terms, what=f"{what} reference")
    means_ref, means = _both(kernel_backend, image.channel_means, x)
    assert means.dtype == np.float32
    assert_close(means, means_ref, rtol=1e-6, atol=1e-6, what="channel means")
    assert_close(means_ref, np.float64(x).mean(axis=(1, 2)), rtol=1e-6, atol=1e-6, what="channel means reference")


# -- depthwise convolution: activations and filter in T, weight gradients float32 --------------

@HALVES
def test_depthwise_conv_in_16_bit(kernel_backend, rng, half):
    from gpunet.primitives import depthwise
    dtype = HALF[half]
    geometry = dict(strides=(2, 1), padding=((1, 1), (1, 0)), dilation=(1, 2))
    x, w, b = _normal(rng, (2, 5, 6, 3), dtype), _normal(rng, (3, 2, 3, 2), dtype, scale=0.5), _normal(rng, 6, dtype)
    y_ref, y = _both(kernel_backend, depthwise.depthwise_conv2d_forward, x, w, b, **geometry)
    assert y.dtype == dtype
    # kh * kw + 1 = 7 float32 adds per output: <= 7 * EPS32 * (sum of |terms|) from the order
    taps = depthwise.depthwise_conv2d_forward(np.abs(np.float64(x)), np.abs(np.float64(w)), None, **geometry)
    atol = 8 * EPS32 * (taps + np.abs(np.float64(b)))
    assert_ulps(y, y_ref, dtype, atol=atol, what="depthwise y")
    assert_ulps(y_ref, depthwise.depthwise_conv2d_forward(*_f64(x, w, b), **geometry), dtype, atol=atol,
                what="depthwise y reference")
    dy = _normal(rng, y.shape, dtype)
    dx_ref, dx = _both(kernel_backend, depthwise.depthwise_conv2d_backward_input, dy, w, x.shape, **geometry)
    assert dx.dtype == dtype
    terms = depthwise.depthwise_conv2d_backward_input(np.abs(np.float64(dy)), np.abs(np.float64(w)), x.shape,
                                                      **geometry)
    assert_ulps(dx, dx_ref, dtype, atol=16 * EPS32 * terms, what="depthwise dx")
    assert_ulps(dx_ref, depthwise.depthwise_conv2d_backward_input(*_f64(dy, w), x.shape, **geometry), dtype,
                atol=16 * EPS32 * terms, what="depthwise dx reference")
    ref, out = _both(kernel_backend, depthwise.depthwise_conv2d_backward_filter, dy, x, w.shape, **geometry)
    assert [a.dtype for a in out] == [np.float32, np.float32]
    exact = depthwise.depthwise_conv2d_backward_filter(*_f64(dy, x), w.shape, **geometry)
    pixels = y.size // y.shape[-1]
    dw_terms = depthwise.depthwise_conv2d_backward_filter(np.abs(np.float64(dy)), np.abs(np.float64(x)), w.shape,
                                                          **geometry)
    for k, name in ((0, "dw"), (1, "db")):
        atol = 2 * pixels * EPS32 * dw_terms[k]
        assert_close(out[k], ref[k], rtol=0, atol=atol, what=f"depthwise {name}")
        assert_close(ref[k], exact[k], rtol=0, atol=atol, what=f"depthwise {name} reference")


def test_depthwise_casts_a_float32_filter_to_16_bit_activations(kernel_backend, rng):
    from gpunet.primitives import depthwise
    dtype, geometry = precision.BFLOAT16, dict(strides=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1))
    x, w = _normal(rng, (1, 4, 4, 2), dtype), _normal(rng, (3, 3, 2, 1), np.float32)
    y_ref, y = _both(kernel_backend, depthwise.depthwise_conv2d_forward, x, w, None, **geometry)
    cast_first = _on(kernel_backend, depthwise.depthwise_conv2d_forward, x, w.astype(dtype), None, **geometry)
    assert y.dtype == dtype
    assert_bits(y, cast_first, "float32 filter, cast as Keras's autocast does")
    taps = depthwise.depthwise_conv2d_forward(np.abs(np.float64(x)), np.abs(np.float64(w)), None, **geometry)
    assert_ulps(y, y_ref, dtype, atol=10 * EPS32 * taps, what="depthwise y, float32 filter")
