"""Dropout and SpatialDropout2D in bfloat16 / float16 (issue 11): the kernels on cudasim equal the
NumPy reference bit for bit (the mask is 0 or 1 / (1 - rate) rounded to the dtype; products in
float32, rounded once), and the mask is the float32 one rounded."""
import numpy as np
import pytest

from gpunet import backend
from gpunet.primitives import dropout, precision


def _run(name, fn, *arrays):
    with backend.use(name) as be:
        outs = fn(*[be.asarray(a, a.dtype) for a in arrays])
        return [np.asarray(be.to_numpy(o)) for o in outs]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("spatial", [False, True])
def test_dropout_16_bit_kernels_equal_numpy(dtype, spatial):
    t = precision.dtype_of(dtype)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5, 3, 4)).astype(t)
    dy = rng.standard_normal((2, 5, 3, 4)).astype(t)
    forward = dropout.spatial_dropout2d_forward if spatial else dropout.dropout_forward
    backward = dropout.spatial_dropout2d_backward if spatial else dropout.dropout_backward

    def step(x, dy):
        y, mask = forward(x, 0.3, 11)
        return y, mask, backward(dy, mask)

    expected, got = _run("numpy", step, x, dy), _run("cudasim", step, x, dy)
    for what, e, g in zip(("y", "mask", "dx"), expected, got):
        assert g.dtype == t, what
        np.testing.assert_array_equal(g.view(np.uint16), e.view(np.uint16), err_msg=f"{dtype} {what}")
    y32, mask32 = forward(x.astype(np.float32), 0.3, 11)
    np.testing.assert_array_equal(expected[1], mask32.astype(t))   # the same mask, rounded
