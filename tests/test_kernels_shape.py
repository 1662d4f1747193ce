"""The shape-op kernels (kernels/shape.cu, kernels/elementwise.cu) against the numpy backend.

Each case runs the op under the numpy backend and under a kernel backend, compares every
output, and checks that the kernel backend really launched the op's kernel (no NumPy path).
"""
import numpy as np
import pytest

from checks import assert_close, run_on_backend, thread_order
from gpunet import backend, layers
from gpunet.primitives import shape as ops


def _compare(kernel_backend, fn, kernel, launches=1):
    """Kernel-backend outputs of ``fn`` equal the numpy backend's; ``kernel`` ran ``launches`` times."""
    expected, _ = run_on_backend("numpy", fn)
    actual, launched = run_on_backend(kernel_backend, fn)
    assert launched.count(kernel) == launches and len(launched) == launches, launched
    assert len(actual) == len(expected)
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert a.dtype == np.float32, f"output {k} is {a.dtype}"
        assert_close(a, e, what=f"{kernel} output {k}")
    return actual


def _normal(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


PAD_CASES = [
    ((1, 5, 7, 1), ((1, 2), (0, 3))),
    ((2, 3, 4, 3), ((0, 0), (2, 1))),
    ((1, 4, 3, 67), ((2, 2), (1, 1))),
    ((3, 1, 1, 3), ((0, 1), (1, 0))),
]


@pytest.mark.parametrize("shape, padding", PAD_CASES)
def test_zero_pad2d(kernel_backend, rng, shape, padding):
    x = _normal(rng, shape)
    y, = _compare(kernel_backend, lambda: ops.zero_pad2d_forward(x, padding), "zero_pad2d_forward")
    dy = _normal(rng, y.shape)
    _compare(kernel_backend, lambda: ops.zero_pad2d_backward(dy, padding), "zero_pad2d_backward")


UPSAMPLE_CASES = [
    ((1, 5, 7, 1), (2, 2)),
    ((2, 3, 4, 3), (3, 2)),
    ((1, 3, 2, 67), (2, 2)),
    ((2, 1, 3, 3), (1, 3)),
    ((1, 2, 1, 1), (3, 2)),
]


@pytest.mark.parametrize("shape, size", UPSAMPLE_CASES)
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_upsample2d(kernel_backend, rng, shape, size, interpolation):
    x = _normal(rng, shape)
    forward, backward = (f"upsample2d_{interpolation}_{d}" for d in ("forward", "backward"))
    y, = _compare(kernel_backend, lambda: ops.upsample2d_forward(x, size, interpolation), forward)
    assert y.shape == (shape[0], shape[1] * size[0], shape[2] * size[1], shape[3])
    dy = _normal(rng, y.shape)
    _compare(kernel_backend, lambda: ops.upsample2d_backward(dy, size, interpolation), backward)


CONCAT_CASES = [
    ([(2, 3, 5, 1), (2, 3, 5, 3)], -1),
    ([(1, 4, 3, 3), (1, 4, 3, 67), (1, 4, 3, 1)], -1),
    ([(2, 2, 3, 3), (2, 5, 3, 3)], 1),
    ([(1, 3, 1, 2), (1, 3, 4, 2), (1, 3, 2, 2)], 2),
    ([(1, 2, 2, 3), (2, 2, 2, 3)], 0),
    ([(3, 5), (3, 67)], 1),
]


@pytest.mark.parametrize("shapes, axis", CONCAT_CASES)
def test_concat(kernel_backend, rng, shapes, axis):
    xs = [_normal(rng, s) for s in shapes]
    y, = _compare(kernel_backend, lambda: ops.concat_forward(xs, axis), "concat_forward", len(xs))
    sizes = [s[axis] for s in shapes]
    dy = _normal(rng, y.shape)
    dxs = _compare(kernel_backend, lambda: ops.concat_backward(dy, sizes, axis), "concat_backward", len(xs))
    assert [dx.shape for dx in dxs] == [tuple(s) for s in shapes]


def test_concat_of_a_strided_view(kernel_backend, rng):
    x = _normal(rng, (2, 5, 4, 3)).transpose(0, 2, 1, 3)   # not C-contiguous
    other = _normal(rng, (2, 4, 5, 2))
    _compare(kernel_backend, lambda: ops.concat_forward([x, other], -1), "concat_forward", 2)


@pytest.mark.parametrize("count", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", [(2, 5, 3, 67), (1, 3, 7, 1), (5, 3)])
def test_add(kernel_backend, rng, count, shape):
    xs = [_normal(rng, shape) for _ in range(count)]
    kernels_forward = ["add_forward_accumulate"] if count == 1 else \
        ["add_forward"] + ["add_forward_accumulate"] * (count - 2)
    expected, _ = run_on_backend("numpy", lambda: ops.add_forward(xs))
    actual, launched = run_on_backend(kernel_backend, lambda: ops.add_forward(xs))
    assert launched == kernels_forward
    assert_close(actual[0], expected[0], what="add_forward")
    dy = _normal(rng, shape)
    dxs = _compare(kernel_backend, lambda: ops.add_backward(dy, count), "add_backward", count - 1)
    assert len(dxs) == count


def test_add_backward_gives_separate_arrays(kernel_backend, rng):
    dy = _normal(rng, (2, 3, 3, 3))
    with backend.use(kernel_backend) as be:
        grads = ops.add_backward(be.asarray(dy.copy()), 3)
        grads[0] += 1.0   # a caller accumulating into one gradient must not change the others
        assert_close(be.to_numpy(grads[1]), dy, rtol=0, atol=0, what="second gradient")
        assert_close(be.to_numpy(grads[2]), dy, rtol=0, atol=0, what="third gradient")


def _backward_twice(kernel_backend, fn):
    runs = []
    for order in ("ascending", "descending"):   # cudasim: the threads of each block in another order
        with thread_order(order):
            runs.append(run_on_backend(kernel_backend, fn)[0])
    return runs


@pytest.mark.parametrize("op", ["pad", "nearest", "bilinear", "concat", "add"])
def test_gradients_are_bit_identical_across_runs(kernel_backend, rng, op):
    dy = _normal(rng, (2, 6, 6, 3))
    fn = {
        "pad": lambda: ops.zero_pad2d_backward(dy, ((1, 2), (2, 1))),
        "nearest": lambda: ops.upsample2d_backward(dy, (3, 2), "nearest"),
        "bilinear": lambda: ops.upsample2d_backward(dy, (2, 3), "bilinear"),
        "concat": lambda: ops.concat_backward(dy, [1, 2], -1),
        "add": lambda: ops.add_backward(dy, 3),
    }[op]
    first, second = _backward_twice(kernel_backend, fn)
    for a, b in zip(first, second):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("call, op", [
    (lambda x: ops.zero_pad2d_forward(x, ((1, 1), (1, 1))), "zero_pad2d_forward"),
    (lambda x: ops.upsample2d_backward(x, (2, 2), "nearest"), "upsample2d_backward"),
    (lambda x: ops.concat_forward([x, x], -1), "concat_forward"),
    (lambda x: ops.add_forward([x, x]), "add_forward"),
])
def test_kernel_path_refuses_float64(kernel_backend, call, op):
    with backend.use(kernel_backend) as be:
        x = be.asarray(np.ones((1, 2, 2, 1)), np.float64)
        # float32 (and, for the templated kernels, bfloat16 or float16): never float64
        with pytest.raises(TypeError, match=rf"{op} on the {kernel_backend} backend runs float32 .*kernels.*; "
                                            r"received an array of dtype float64"):
            call(x)


def test_kernel_path_rejects_bad_arguments(kernel_backend):
    with backend.use(kernel_backend) as be:
        a, b = be.zeros((1, 2, 2, 3), np.float32), be.zeros((1, 3, 2, 1), np.float32)
        with pytest.raises(ValueError, match=r"concat_forward along axis 3 .* \[\(1, 2, 2, 3\), \(1, 3, 2, 1\)\]"):
            ops.concat_forward([a, b], -1)
        with pytest.raises(ValueError, match=r"add_forward needs inputs of one shape"):
            ops.add_forward([a, b])
        with pytest.raises(ValueError, match=r"sizes \[1, 1\] do not add up to axis 3"):
            ops.concat_backward(a, [1, 1], -1)
        with pytest.raises(ValueError, match=r"interpolation must be one of .* received 'cubic'"):
            ops.upsample2d_forward(a, (2, 2), "cubic")
        with pytest.raises(ValueError, match=r"dy of shape \(1, 2, 2, 3\) is not 3 x 1 times an image"):
            ops.upsample2d_backward(a, (3, 1), "nearest")


@pytest.mark.parametrize("make_layer, shapes", [
    (lambda: layers.UpSampling2D((2, 3), interpolation="bilinear"), [(2, 3, 4, 3)]),
    (lambda: layers.ZeroPadding2D(((1, 0), (2, 3))), [(1, 3, 3, 67)]),
    (lambda: layers.Concatenate(), [(2, 3, 3, 1), (2, 3, 3, 3)]),
    (lambda: layers.Add(), [(2, 3, 3, 3)] * 3),
])
def test_layers_on_the_kernel_backend(kernel_backend, rng, make_layer, shapes):
    xs = [_normal(rng, s) for s in shapes]
    merge = len(shapes) > 1

    def step():
        layer = make_layer()
        y = layer.forward(xs if merge else xs[0], training=True)
        dy = np.linspace(-1, 1, y.size, dtype=np.float32).reshape(y.shape)
        dxs = layer.backward(backend.current().asarray(dy))
        return [y] + (list(dxs) if merge else [dxs])

    expected, _ = run_on_backend("numpy", step)
    actual, launched = run_on_backend(kernel_backend, step)
    assert launched and len(actual) == len(expected)
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert_close(a, e, what=f"layer output {k}")
