"""dtype casts (kernels/cast.cu through primitives/cast.py) and templated-kernel plumbing.

A cast rounds once to nearest, ties to even, on the GPU (cvt.rn) as in ml_dtypes / NumPy, so the
kernels must match the NumPy reference bit for bit, NaN and infinities included."""
import numpy as np
import pytest

from checks import run_on_backend
from gpunet.backend import kernel_source
from gpunet.primitives import cast, precision

HALF = {"bfloat16": precision.BFLOAT16, "float16": precision.FLOAT16}


def _values(rng, n=777):
    """Magnitudes from 1e-8 to 1e6 (fp16 underflow, subnormals and overflow), ties, specials."""
    x = (rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 6, n)).astype(np.float32)
    x[:8] = [np.inf, -np.inf, np.nan, 65520.0, 65519.0, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -0.0]
    return x


def _bits(a):
    return np.asarray(a).view(np.uint16 if a.dtype.itemsize == 2 else np.uint32)


@pytest.mark.parametrize("name", sorted(HALF))
def test_casts_match_numpy_bit_for_bit(kernel_backend, rng, name):
    half = HALF[name]
    other = precision.FLOAT16 if half == precision.BFLOAT16 else precision.BFLOAT16
    x = _values(rng).reshape(7, 111)
    with np.errstate(over="ignore"):
        down_ref = x.astype(half)
        between_ref = down_ref.astype(np.float32).astype(other)
    (down, up, between), _ = run_on_backend(kernel_backend, lambda: [
        cast.cast(x, half), cast.cast(down_ref, np.float32), cast.cast(down_ref, other)])
    assert down.dtype == half and down.shape == x.shape
    np.testing.assert_array_equal(_bits(down), _bits(down_ref))
    np.testing.assert_array_equal(_bits(up), _bits(down_ref.astype(np.float32)))
    np.testing.assert_array_equal(_bits(between), _bits(between_ref))


def test_cast_to_own_dtype_is_the_array_itself(kernel_backend, rng):
    x = rng.standard_normal(5).astype(np.float32)
    (same,), launched = run_on_backend(kernel_backend, lambda: cast.cast(x, "float32"))
    assert launched == [] and np.array_equal(same, x)


def test_kernel_backend_refuses_a_cast_to_float64(kernel_backend):
    with pytest.raises(TypeError, match="float64"):
        run_on_backend(kernel_backend, lambda: cast.cast(np.ones(3, np.float32), np.float64))


def test_template_kernels_parse_into_one_instance_per_element_type():
    source = kernel_source.load("cast.cu")
    assert source.templates["cast_from_float"] == {
        np.dtype(np.float32): "cast_from_float<float>", precision.BFLOAT16: "cast_from_float<bf16_t>",
        precision.FLOAT16: "cast_from_float<fp16_t>"}
    signature = source.kernel("cast_to_float<bf16_t>")
    assert [p.ctype for p in signature.params] == ["const bf16_t*", "float*", "int"]
    assert [p.templated for p in signature.params] == [True, False, False]
    assert kernel_source.entry_symbol("cast_to_float<bf16_t>") == "cast_to_float__bf16_t"


def test_template_instance_comes_from_the_T_argument():
    source = kernel_source.load("cast.cu")
    x16, out = np.zeros(4, np.float16), np.zeros(4, np.float32)
    assert source.instance("cast_to_float", [x16, out, np.int32(4)]).name == "cast_to_float<fp16_t>"
    with pytest.raises(TypeError, match="element type T.*float64"):
        source.instance("cast_to_float", [np.zeros(4), out, np.int32(4)])
