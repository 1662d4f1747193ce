"""The cases of the keras.ops added in round 4 (gpunet/ops/array_extra.py, math_extra.py), in the
form of autodiff_cases.py: name, function of (o, *inputs) written against a keras.ops-like
namespace ``o`` (gn.ops in the tests, keras.ops under JAX in
tests/autodiff_fixtures/make_ops_extra_jax.py), and per input a kind and shape. cumprod's inputs
are normal draws, never 0 (its gradient divides by x)."""
import numpy as np


def _moments(o, a, axes, keepdims=False):
    m, v = o.moments(a, axes, keepdims=keepdims)
    return o.add(m, o.multiply(v, 3.0))


def _grid_ij(o, a, b, c):
    x, y, z = o.meshgrid(a, b, c, indexing="ij")
    return o.add(o.multiply(x, y), o.square(z))


CASES = [
    ("rsqrt", lambda o, a: o.rsqrt(a), [("pos", (2, 3))]),
    ("cumsum_axis", lambda o, a: o.cumsum(a, axis=-2), [("x", (2, 3, 2))]),
    ("cumsum_flat", lambda o, a: o.cumsum(a), [("x", (2, 3))]),
    ("cumprod_axis", lambda o, a: o.cumprod(a, axis=0), [("x", (3, 4))]),
    ("cumprod_flat", lambda o, a: o.cumprod(a), [("pos", (2, 3))]),
    ("flip", lambda o, a: o.multiply(o.flip(a, axis=(0, 2)), a), [("x", (2, 3, 2))]),
    ("flip_all", lambda o, a: o.square(o.flip(a)), [("x", (3, 2))]),
    ("roll", lambda o, a: o.multiply(o.roll(a, 2, axis=1), a), [("x", (2, 5))]),
    ("roll_flat", lambda o, a: o.square(o.roll(a, -3)), [("x", (2, 3))]),
    ("roll_axes", lambda o, a: o.multiply(o.roll(a, (1, -1), axis=(0, 1)), a), [("x", (3, 4))]),
    ("tile", lambda o, a: o.square(o.tile(a, (2, 1, 3))), [("x", (2, 3))]),
    ("tile_int", lambda o, a: o.tile(a, 2), [("x", (2, 3))]),
    ("repeat", lambda o, a: o.square(o.repeat(a, 2, axis=1)), [("x", (2, 3))]),
    ("repeat_flat", lambda o, a: o.square(o.repeat(a, 3)), [("x", (2, 2))]),
    ("repeat_each", lambda o, a: o.square(o.repeat(a, np.array([2, 0, 1]), axis=0)), [("x", (3, 2))]),
    ("pad_constant", lambda o, a: o.square(o.pad(a, ((1, 2), (0, 1)), constant_values=1.5)), [("x", (2, 3))]),
    ("pad_int", lambda o, a: o.square(o.pad(a, 1)), [("x", (2, 3))]),
    ("pad_reflect", lambda o, a: o.square(o.pad(a, ((2, 1), (1, 2)), mode="reflect")), [("x", (3, 4))]),
    ("pad_symmetric", lambda o, a: o.square(o.pad(a, ((1, 2), (2, 0)), mode="symmetric")), [("x", (3, 4))]),
    ("pad_edge", lambda o, a: o.square(o.pad(a, ((1, 1), (0, 2)), mode="edge")), [("x", (2, 3))]),
    ("pad_wrap", lambda o, a: o.square(o.pad(a, ((2, 1), (1, 1)), mode="wrap")), [("x", (3, 4))]),
    ("moments", lambda o, a: _moments(o, a, [0, 2]), [("x", (2, 3, 4))]),
    ("moments_keepdims", lambda o, a: _moments(o, a, -1, keepdims=True), [("x", (3, 4))]),
    ("norm", lambda o, a: o.norm(a), [("x", (2, 3, 2))]),
    ("norm_2", lambda o, a: o.norm(a, ord=2, axis=1), [("x", (3, 4))]),
    ("norm_1", lambda o, a: o.norm(a, ord=1, axis=-1, keepdims=True), [("x", (3, 4))]),
    ("norm_inf", lambda o, a: o.norm(a, ord=np.inf, axis=0), [("x", (3, 4))]),
    ("norm_3", lambda o, a: o.norm(a, ord=3, axis=1), [("x", (3, 4))]),
    ("norm_fro", lambda o, a: o.norm(a, ord="fro", axis=(0, 2)), [("x", (2, 3, 2))]),
    ("norm_matrix_1", lambda o, a: o.norm(a, ord=1), [("x", (3, 4))]),
    ("sort", lambda o, a: o.multiply(o.sort(a, axis=0), o.arange(3.0)[:, None]), [("x", (3, 4))]),
    ("sort_last", lambda o, a: o.square(o.sort(a)), [("x", (2, 5))]),
    ("top_k", lambda o, a: o.square(o.top_k(a, 2)[0]), [("x", (3, 5))]),
    ("meshgrid", lambda o, a, b: o.multiply(*o.meshgrid(a, o.square(b))), [("x", (3,)), ("x", (2,))]),
    ("meshgrid_ij", lambda o, a, b, c: _grid_ij(o, a, b, c), [("x", (2,)), ("x", (3,)), ("x", (2,))]),
    ("einsum_batch", lambda o, a, b: o.einsum("bhqd,bhkd->bhqk", a, b), [("x", (2, 2, 3, 4)), ("x", (2, 2, 2, 4))]),
    ("einsum_ellipsis", lambda o, a, b: o.einsum("...i,i->...", a, b), [("x", (2, 3, 4)), ("x", (4,))]),
    ("einsum_chain", lambda o, a, b, c: o.einsum("ab,bc,cd->da", a, b, c), [("x", (2, 3)), ("x", (3, 4)), ("x", (4, 2))]),
    ("einsum_implicit", lambda o, a, b: o.einsum("ij,kj", a, o.square(b)), [("x", (3, 4)), ("x", (2, 4))]),
    ("einsum_unary", lambda o, a: o.square(o.einsum("abc->ca", a)), [("x", (2, 3, 4))]),
    ("norm_matrix_inf", lambda o, a: o.norm(a, ord=-np.inf, axis=(1, 0)), [("x", (3, 4))]),
]
