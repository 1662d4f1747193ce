"""bf16 / fp16 through the elementwise family (issue 11): the epilogue store, activations, merges,
elementwise_nd, regularizers, cast; the kernels on cudasim against the NumPy reference.

Tolerances, derived. Kernels and reference both compute in float32 and round once to the 16-bit
type T. For a map that is exact in float32 (ReLU, a bias add, a merge of two or three operands
whose float32 sum rounds at most once either way, a max) both sides hold the same float32 value
before the rounding: the results are equal bit for bit. For a transcendental map (sigmoid, tanh,
exp ...) expf / tanhf and NumPy's float32 routines differ by a few float32 ulp (2**-23 relative),
which moves the one rounding to T by at most 1 ulp of T (2**-7 bf16, 2**-10 fp16 relative) when
the float32 value sits next to a rounding boundary: we assert <= 1 ulp of T, counted exactly on
the bit patterns. A reduction (softmax's row sum) adds a float32 summation-order error of about
cols * 2**-24 relative, far below half an ulp of T, so it is 1 ulp of T too.

The reference's round-once rule is proved by computing the same map in float64 on the same 16-bit
inputs: the reference is within 1 ulp of T of it (a float32 intermediate is 2**-23-accurate, and
one rounding adds at most half an ulp of T).
"""
import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, run_on_backend
from gpunet import backend
from gpunet.primitives import activation as A
from gpunet.primitives import elementwise_nd as E
from gpunet.primitives import epilogue, gather, merge, precision, regularize

HALF = {"bfloat16": precision.BFLOAT16, "float16": precision.FLOAT16}
ACTS = [None, epilogue.Epilogue("relu"), epilogue.Epilogue("leaky_relu", 0.2), epilogue.Epilogue("elu", 1.0),
        epilogue.Epilogue("sigmoid"), epilogue.Epilogue("tanh")]
EXACT = {None, "relu", "leaky_relu"}   # float32-exact maps (leaky: one multiply, rounded once either way)


def _ordered(a):
    """The 16-bit values' bit patterns as integers that count ulps (-0 and +0 both 0)."""
    bits = np.asarray(a).view(np.uint16).astype(np.int64)
    return np.where(bits & 0x8000, -(bits & 0x7FFF), bits)


def assert_ulps(actual, expected, ulps, what, atol=0.0):
    """actual and expected (one 16-bit dtype, one shape) differ by at most ``ulps`` units in the
    last place of that type, or by at most ``atol``; NaN must meet NaN."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, \
        f"{what}: {actual.dtype} {actual.shape} vs {expected.dtype} {expected.shape}"
    actual, expected = np.atleast_1d(actual), np.atleast_1d(expected)
    nan_a, nan_e = np.isnan(actual.astype(np.float32)), np.isnan(expected.astype(np.float32))
    assert np.array_equal(nan_a, nan_e), f"{what}: NaN at different places"
    distance = np.abs(_ordered(actual) - _ordered(expected))
    distance[nan_a] = 0
    with np.errstate(invalid="ignore"):   # inf - inf: equal bits already count 0
        distance[np.abs(actual.astype(np.float64) - expected.astype(np.float64)) <= atol] = 0
    if distance.max(initial=0) > ulps:
        i = np.unravel_index(int(np.argmax(distance)), distance.shape)
        raise AssertionError(f"{what}: {int((distance > ulps).sum())} of {distance.size} elements differ by more "
                             f"than {ulps} ulp; worst at {tuple(int(k) for k in i)}: got {actual[i]!r}, "
                             f"expected {expected[i]!r} ({int(distance[i])} ulp)")


def _compare(kernel_backend, fn, ulps, what, atol=0.0):
    """fn() on the kernel backend and on numpy: outputs of one dtype and shape, within ``ulps``."""
    actual, launched = run_on_backend(kernel_backend, fn)
    expected, _ = run_on_backend("numpy", fn)
    assert launched, f"{what}: no kernel launched"
    for k, (a, e) in enumerate(zip(actual, expected)):
        name = what[k] if isinstance(what, (list, tuple)) else f"{what} output {k}"
        assert_ulps(a, e, ulps[k] if isinstance(ulps, (list, tuple)) else ulps, name, atol)
    return actual


# -- epilogue.store: a float32 product finished as T ------------------------------------------

@pytest.mark.parametrize("name", sorted(HALF))
def test_store_bias_activation_matches_numpy(kernel_backend, rng, name):
    acc = (rng.standard_normal((13, 24)) * 3).astype(np.float32)
    bias = rng.standard_normal(24).astype(np.float32)
    outputs = _compare(kernel_backend, lambda: [epilogue.store(acc, name, bias, act) for act in ACTS],
                       [0 if (a and a.name) in EXACT else 1 for a in ACTS], "epilogue.store")
    assert all(y.dtype == HALF[name] and y.shape == acc.shape for y in outputs)
    np.testing.assert_array_equal(outputs[0], (acc + bias).astype(HALF[name]))   # a bias add: one rounding


@pytest.mark.parametrize("name", sorted(HALF))
def test_store_without_bias_is_one_rounding(kernel_backend, rng, name):
    """bias=None must not read a bias (a placeholder read past its end gave NaN in every column but 0)."""
    acc = (rng.standard_normal((6, 4)) * 3).astype(np.float32)
    (y,), _ = run_on_backend(kernel_backend, lambda: epilogue.store(acc, name))
    np.testing.assert_array_equal(y, acc.astype(HALF[name]))


@pytest.mark.parametrize("name", sorted(HALF))
def test_store_folded_gradient_matches_numpy(kernel_backend, rng, name):
    acc = rng.standard_normal((9, 40)).astype(np.float32)
    gates = {a.name: epilogue.activate(rng.standard_normal((9, 40)).astype(np.float32), a).astype(HALF[name])
             for a in ACTS[1:]}
    _compare(kernel_backend, lambda: [epilogue.store(acc, name, fold=(gates[a.name], a)) for a in ACTS[1:]],
             [0, 0, 1, 1, 1], "epilogue.store fold")


def test_store_float32_is_the_unfused_kernels_bit_for_bit(kernel_backend, rng):
    acc = rng.standard_normal((7, 33)).astype(np.float32)
    bias = rng.standard_normal(33).astype(np.float32)
    act = epilogue.Epilogue("sigmoid")
    (fused, unfused), _ = run_on_backend(kernel_backend, lambda: [
        epilogue.store(acc, np.float32, bias, act), epilogue.activate(acc + bias, act)])
    assert fused.dtype == np.float32
    np.testing.assert_array_equal(fused, unfused)


@pytest.mark.reference
@pytest.mark.parametrize("name", sorted(HALF))
def test_store_reference_rounds_once(rng, name):
    acc = (rng.standard_normal((11, 16)) * 3).astype(np.float32)
    bias = rng.standard_normal(16).astype(np.float32)
    z = acc.astype(np.float64) + bias
    exact = {"sigmoid": 1 / (1 + np.exp(-z)), "tanh": np.tanh(z), "elu": np.where(z > 0, z, np.expm1(z))}
    for act, value in exact.items():
        y = epilogue.store(acc, name, bias, epilogue.Epilogue(act, 1.0 if act == "elu" else 0.0))
        assert_ulps(y, value.astype(HALF[name]), 1, f"store {act} against float64")


def test_store_refuses_mismatched_arguments(kernel_backend):
    acc = np.zeros((4, 6), np.float32)

    def bad(**kwargs):
        return lambda: epilogue.store(**{"acc": acc, "dtype": "bfloat16", **kwargs})
    with pytest.raises(ValueError, match=r"bias has shape \(5,\); expected \(6,\)"):
        run_on_backend(kernel_backend, bad(bias=np.zeros(5, np.float32)))
    with pytest.raises(ValueError, match="dtype bfloat16"):
        run_on_backend(kernel_backend, bad(fold=(np.zeros((4, 6), np.float32), epilogue.Epilogue("relu"))))
    with pytest.raises(TypeError, match="float32 product.*float64"):
        run_on_backend(kernel_backend, bad(dtype=np.float64))


# -- activations: every forward and backward of activation.py -----------------------------------

def _activation_cases(x, dy, alpha):
    """(name, zero-ulp?, thunk) for every activation op on 16-bit x (and dy of x's shape); call it
    on the backend that runs the thunks (sigmoid, tanh and softmax run here, for their backward)."""
    sig, tanh = A.sigmoid_forward(x), A.tanh_forward(x)
    soft = A.softmax_forward(x)
    cases = [("relu", True, lambda: A.relu_forward(x)), ("relu'", True, lambda: A.relu_backward(dy, x)),
             ("relu6 slope threshold", False, lambda: A.relu_forward(x, 6.0, 0.1, 0.5)),
             ("relu6 slope threshold'", False, lambda: A.relu_backward(dy, x, 6.0, 0.1, 0.5)),
             ("leaky", True, lambda: A.leaky_relu_forward(x, 0.2)),
             ("leaky'", True, lambda: A.leaky_relu_backward(dy, x, 0.2)),
             ("elu", False, lambda: A.elu_forward(x, 0.7)), ("elu'", False, lambda: A.elu_backward(dy, x, 0.7)),
             ("sigmoid", False, lambda: sig), ("sigmoid'", False, lambda: A.sigmoid_backward(dy, sig)),
             ("tanh", False, lambda: tanh), ("tanh'", False, lambda: A.tanh_backward(dy, tanh)),
             ("softmax", False, lambda: soft), ("softmax'", False, lambda: A.softmax_backward(dy, soft)),
             ("softmax axis 0", False, lambda: A.softmax_forward(x, axis=0)),
             ("prelu", False, lambda: A.prelu_forward(x, alpha)),
             ("prelu'", False, lambda: A.prelu_backward(dy, x, alpha)[0]),
             ("fused sigmoid'", False, lambda: epilogue.activation_gradient(dy, sig, epilogue.Epilogue("sigmoid")))]
    for name in A.UNARY:
        cases += [(name, False, lambda name=name: A.unary_forward(name, x)),
                  (name + "'", False, lambda name=name: A.unary_backward(name, dy, x))]
    return cases


@pytest.mark.parametrize("name", sorted(HALF))
def test_activations_match_numpy(kernel_backend, rng, name):
    x = (rng.standard_normal((6, 40)) * 3).astype(HALF[name])
    dy = rng.standard_normal((6, 40)).astype(HALF[name])
    alpha = rng.uniform(0.05, 0.5, 40).astype(np.float32)
    cases = _activation_cases(x, dy, alpha)   # for the names: run_on_backend builds them again
    # The kernels' expf / erff / tanhf differ from NumPy's float32 (or float64) routines by a few
    # float32 ulp; where f(x) cancels (gelu, silu, mish far below 0: f ~ 1e-6 from terms ~ 1)
    # that is up to 2**-23 absolute, hence atol 1e-6 beside the 1-ulp bound.
    outputs = _compare(kernel_backend, lambda: [thunk() for _, _, thunk in _activation_cases(x, dy, alpha)],
                       [0 if exact else 1 for _, exact, _ in cases], [c[0] for c in cases], atol=1e-6)
    assert all(y.dtype == HALF[name] and y.shape == x.shape for y in outputs)


@pytest.mark.parametrize("name", sorted(HALF))
def test_prelu_alpha_gradient_is_float32(kernel_backend, rng, name):
    x = rng.standard_normal((5, 3, 8)).astype(HALF[name])
    dy = rng.standard_normal((5, 3, 8)).astype(HALF[name])
    alpha = rng.uniform(0.05, 0.5, (1, 8)).astype(np.float32)
    (dalpha,), _ = run_on_backend(kernel_backend, lambda: A.prelu_backward(dy, x, alpha)[1])
    (expected,), _ = run_on_backend("numpy", lambda: A.prelu_backward(dy, x, alpha)[1])
    assert dalpha.dtype == np.float32 and dalpha.shape == (1, 8)
    # float32 sums of 15 products of 16-bit values (exact in float32): summation order only
    assert_close(dalpha, expected, rtol=1e-5, atol=1e-6, what="prelu dalpha")


@pytest.mark.reference
@pytest.mark.parametrize("name", sorted(HALF))
def test_activation_reference_rounds_once(rng, name):
    x = (rng.standard_normal((4, 30)) * 3).astype(HALF[name])
    x64 = x.astype(np.float64)
    exact = {"sigmoid": (A.sigmoid_forward, 1 / (1 + np.exp(-x64))), "tanh": (A.tanh_forward, np.tanh(x64)),
             "elu": (lambda v: A.elu_forward(v, 1.0), np.where(x64 > 0, x64, np.expm1(x64))),
             "softmax": (A.softmax_forward, np.exp(x64) / np.exp(x64).sum(-1, keepdims=True))}
    exact.update({op: (lambda v, op=op: A.unary_forward(op, v), A.UNARY[op][0](x64))
                  for op in ("gelu", "silu", "softplus", "mish", "selu")})
    for op, (fn, value) in exact.items():
        # float32 intermediates: 1 ulp of T, or 2**-23 absolute where f(x) cancels (see above)
        assert_ulps(fn(x), np.asarray(value, np.float64).astype(HALF[name]), 1, f"{op} against float64", 1e-6)


# -- merges (elementwise.cu): one float32 operation per kernel, so bit for bit -----------------

@pytest.mark.parametrize("name", sorted(HALF))
def test_merges_match_numpy_bit_for_bit(kernel_backend, rng, name):
    a, b, c, dy = (rng.standard_normal((3, 5, 17)).astype(HALF[name]) for _ in range(4))
    c[0, 0, :3] = [np.nan, a[0, 0, 1], -np.inf]   # NaN wins, ties go to the first input

    def run():
        maximum, winner = merge.extreme_forward([a, b, c], "maximum")
        minimum, low = merge.extreme_forward([a, b, c], "minimum")
        return [merge.subtract_forward(a, b), *merge.subtract_backward(dy), merge.multiply_forward([a, b]),
                merge.multiply_forward([a, b, c]), *merge.multiply_backward(dy, [a, b]),
                *merge.average_backward(dy, 3), maximum, minimum, *merge.extreme_backward(dy, winner, 3),
                winner.astype(a.dtype), low.astype(a.dtype)]
    outputs = _compare(kernel_backend, run, 0, "merge")
    assert all(y.dtype == HALF[name] for y in outputs)


@pytest.mark.reference
@pytest.mark.parametrize("name", sorted(HALF))
def test_merge_reference_rounds_once(rng, name):
    a, b = ((rng.standard_normal(300) * 10.0 ** rng.integers(-3, 3, 300)).astype(HALF[name]) for _ in range(2))
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    # a 16-bit product is exact in float32 (8 or 11 mantissa bits twice): one rounding, 0 ulp;
    # a difference may round in float32 first when the exponents are far apart: 1 ulp.
    assert_ulps(merge.multiply_forward([a, b]), (a64 * b64).astype(HALF[name]), 0, "multiply against float64")
    assert_ulps(merge.subtract_forward(a, b), (a64 - b64).astype(HALF[name]), 1, "subtract against float64")


# -- gn.ops.cast: the cast kernels forward, the cast back to the input's dtype on the tape -------

@pytest.mark.parametrize("name", sorted(HALF))
def test_ops_cast_runs_the_cast_kernels_with_its_gradient(kernel_backend, rng, name):
    x = rng.standard_normal((4, 9)).astype(np.float32)
    w = rng.standard_normal((4, 9)).astype(np.float32)

    def run():
        with gn.GradientTape() as tape:
            tx = gn.ops.convert_to_tensor(x)
            tape.watch(tx)
            low = gn.ops.cast(tx, name)
            loss = gn.ops.sum(gn.ops.cast(low, "float32") * w)
        return [low.data, tape.gradient(loss, tx).data]
    (low, dx), launched = run_on_backend(kernel_backend, run)
    assert low.dtype == HALF[name] and dx.dtype == np.float32
    np.testing.assert_array_equal(low.view(np.uint16), x.astype(HALF[name]).view(np.uint16))
    # d(loss)/dx = w rounded to the 16-bit type (the gradient passes the cast back) and widened
    np.testing.assert_array_equal(dx, w.astype(HALF[name]).astype(np.float32))
    assert launched.count("cast_from_float") == 2 and launched.count("cast_to_float") == 2, launched


# -- elementwise_nd (gn.ops' array level): broadcasting maps, reductions, copies ----------------

@pytest.mark.parametrize("name", sorted(HALF))
def test_broadcast_and_unary_ops_match_numpy(kernel_backend, rng, name):
    a = rng.standard_normal((3, 1, 5)).astype(HALF[name])
    b = rng.standard_normal((4, 5)).astype(HALF[name])
    a[0, 0, :2] = b[0, :2]   # equal elements for the comparisons
    positive = np.abs(a) + a.dtype.type(0.5)
    cond = rng.standard_normal((4, 1)) > 0
    maps = ["add", "subtract", "multiply", "divide", "maximum", "minimum"]   # one float32 op: exact
    exact = [lambda op=op: E.binary(op, a, b) for op in maps] + [
        lambda: E.binary("less", a, b).astype(a.dtype), lambda: E.binary("equal", a, b).astype(a.dtype),
        lambda: E.where(cond, a, b), lambda: E.transpose(a, (2, 0, 1)), lambda: E.broadcast_to(a, (2, 3, 4, 5)),
        *(lambda op=op: E.unary(op, a) for op in ("negative", "square", "abs", "sign"))]
    library = [lambda: E.binary("power", positive, b), *(lambda op=op: E.unary(op, positive) for op in
                                                         ("sqrt", "exp", "log", "log1p"))]   # powf, expf ...: 1 ulp
    thunks = exact + library
    outputs = _compare(kernel_backend, lambda: [t() for t in thunks], [0] * len(exact) + [1] * len(library),
                       "elementwise_nd")
    assert all(y.dtype == HALF[name] for y in outputs)


@pytest.mark.parametrize("name", sorted(HALF))
def test_reductions_match_numpy(kernel_backend, rng, name):
    x = rng.standard_normal((6, 7, 40)).astype(HALF[name])
    x[0, 0, 3] = x[0, 0, 9] = x.max() + 1   # a tie: the first column wins
    calls = [("sum", (2,)), ("mean", (0, 2)), ("max", (1,)), ("min", None), ("sum", None)]
    # A float32 sum of cols terms differs between summation orders by <= cols * 2**-24 * sum|x|;
    # rounded once to T that is 1 ulp of T, or that bound where the sum cancels below it.
    atol = x.size * 2.0 ** -24 * float(np.abs(x.astype(np.float64)).sum())
    actual = _compare(kernel_backend, lambda: [E.reduce(op, x, axis) for op, axis in calls], 1, "reduce", atol)
    assert [y.dtype for y in actual] == [HALF[name]] * len(calls)
    (arg_max, arg_min), _ = run_on_backend(kernel_backend, lambda: [E.arg_reduce("argmax", x, 2),
                                                                    E.arg_reduce("argmin", x, 1)])
    np.testing.assert_array_equal(arg_max, np.argmax(x.astype(np.float32), axis=2))
    np.testing.assert_array_equal(arg_min, np.argmin(x.astype(np.float32), axis=1))
    assert arg_max.dtype == np.int32 and arg_max[0, 0] == 3


@pytest.mark.reference
@pytest.mark.parametrize("name", sorted(HALF))
def test_elementwise_nd_reference_rounds_once(rng, name):
    x = rng.uniform(0.5, 2.0, (5, 64)).astype(HALF[name])
    x64 = x.astype(np.float64)
    # 64 terms: the float32 sum is within 64 * 2**-24 relative, far below half an ulp of T: 1 ulp
    assert_ulps(E.reduce("sum", x, 1), x64.sum(1).astype(HALF[name]), 1, "sum against float64")
    assert_ulps(E.reduce("mean", x, 1), x64.mean(1).astype(HALF[name]), 1, "mean against float64")
    assert_ulps(E.unary("exp", x), np.exp(x64).astype(HALF[name]), 1, "exp against float64")
    assert_ulps(E.binary("divide", x, x[::-1]), (x64 / x64[::-1]).astype(HALF[name]), 1, "divide against float64")


# -- regularizers: an activity penalty on 16-bit activations ------------------------------------

@pytest.mark.parametrize("name", sorted(HALF))
def test_penalty_on_16_bit_activations(kernel_backend, rng, name):
    w = rng.standard_normal((12, 25)).astype(HALF[name])
    grad = rng.standard_normal((12, 25)).astype(HALF[name])

    def run():
        g = backend.current().asarray(grad.copy(), dtype=grad.dtype)   # updated in place
        return [regularize.penalty(w, 0.01, 0.02, divisor=4), regularize.add_penalty_gradient(w, g, 0.01, 0.02, 0.5)]
    (total, g), _ = run_on_backend(kernel_backend, run)
    (expected_total, expected_g), _ = run_on_backend("numpy", run)
    assert total.dtype == np.float32 and g.dtype == HALF[name]
    # float32 partial sums of 300 terms against a float64 sum: 300 * 2**-24 relative
    assert_close(total, expected_total, rtol=300 * 2.0 ** -24, atol=0, what="penalty")
    assert_ulps(g, expected_g, 1, "penalty gradient")   # one rounding; a fused multiply-add may move it 1 ulp


@pytest.mark.parametrize("name", sorted(HALF))
def test_slices_and_take_match_numpy(kernel_backend, rng, name):
    x = rng.standard_normal((4, 6, 5)).astype(HALF[name])
    dy = rng.standard_normal((4, 3, 5)).astype(HALF[name])
    index = np.array([1, 5, 1])   # taken twice: take's gradient adds in float32, rounds once
    key = (slice(None), slice(0, 6, 2))

    def run():
        return [gather.slice_forward(x, key), gather.slice_backward(dy, x.shape, key),
                gather.take_forward(x, index, axis=1), gather.take_backward(dy, index, x.shape, axis=1)]
    outputs = _compare(kernel_backend, run, 0, ["slice", "slice'", "take", "take'"])
    assert all(y.dtype == HALF[name] for y in outputs)
    np.testing.assert_array_equal(outputs[0].view(np.uint16), x[key].view(np.uint16))
