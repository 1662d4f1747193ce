"""Every gn.ops case of autodiff_cases.py: the tape's gradient against float64 central differences,
and output and gradients against JAX's autodiff through keras.ops (committed fixtures made by
tests/autodiff_fixtures/make_jax.py; no test imports JAX)."""
import pathlib

import numpy as np
import pytest

from autodiff_cases import CASES, DIFFERENTIABLE, make_inputs, output_gradient
from checks import assert_close, numeric_gradients, tape_run
from gpunet import ops

pytestmark = pytest.mark.reference   # float64 on the numpy backend under any GPUNET_BACKEND

JAX = np.load(pathlib.Path(__file__).resolve().parent / "autodiff_fixtures" / "jax_gradients.npz")


def tape_gradients(fn, inputs, wrt, dy):
    """(output, gradient per input in ``wrt``) from gn.GradientTape with output gradient ``dy``
    (numpy arrays: these tests run on the numpy backend)."""
    out, *grads = tape_run(fn, inputs, wrt, dy)
    return out, grads


@pytest.mark.parametrize("name, fn, specs", CASES, ids=[c[0] for c in CASES])
def test_gradient_matches_finite_differences(name, fn, specs):
    inputs = make_inputs(name, specs)
    wrt = [i for i, (kind, _) in enumerate(specs) if kind in DIFFERENTIABLE]
    out = np.asarray(fn(ops, *inputs))
    dy = output_gradient(name, out.shape)
    _, grads = tape_gradients(fn, inputs, wrt, dy)

    def forward(*chosen):
        full = list(inputs)
        for i, value in zip(wrt, chosen):
            full[i] = value
        return np.asarray(fn(ops, *full))
    numeric = numeric_gradients(forward, [inputs[i] for i in wrt], dy)
    for i, g, n in zip(wrt, grads, numeric):
        assert g.dtype == np.float64
        assert_close(g, n, rtol=1e-5, atol=1e-6, what=f"{name}: gradient of input {i}")


@pytest.mark.parametrize("name, fn, specs", CASES, ids=[c[0] for c in CASES])
def test_output_and_gradient_match_jax(name, fn, specs):
    inputs = make_inputs(name, specs)
    wrt = [i for i, (kind, _) in enumerate(specs) if kind in DIFFERENTIABLE]
    expected_out = JAX[f"{name}/out"]
    out, grads = tape_gradients(fn, inputs, wrt, output_gradient(name, expected_out.shape))
    assert_close(out, expected_out, rtol=1e-5, atol=1e-6, what=f"{name}: output")
    for i, g in zip(wrt, grads):
        assert_close(g, JAX[f"{name}/grad{i}"], rtol=1e-5, atol=1e-6, what=f"{name}: gradient of input {i}")
