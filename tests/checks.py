"""Shared test helpers: finite-difference gradient checks, a comparison that says where it failed,
an op's output and tape gradients, running a function on a backend while counting its kernel launches, cudasim thread orders, the
examples' backend."""
import contextlib
import os

import numpy as np


def assert_close(actual, expected, rtol=1e-4, atol=1e-5, what="value"):
    """Fail at the first element where |actual - expected| > atol + rtol * |expected|, quoting both."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    bound = atol + rtol * np.abs(expected.astype(np.float64))
    error = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    # Equal values match (inf == inf included); any other NaN in the error counts as bad.
    bad = ~((error <= bound) | (actual == expected))
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements differ; first at {index}: "
            f"got {actual[index]!r}, expected {expected[index]!r}, tolerance {bound[index]:.3g} "
            f"(atol {atol} + rtol {rtol} * |expected|)")


def numeric_gradients(forward, inputs, dy, eps=1e-6):
    """Central differences of sum(forward(*inputs) * dy) with respect to every input (float64)."""
    grads = []
    for x in inputs:
        g = np.zeros_like(x)
        flat, gflat = x.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            keep = flat[i]
            flat[i] = keep + eps
            plus = np.sum(np.asarray(forward(*inputs)) * dy)
            flat[i] = keep - eps
            minus = np.sum(np.asarray(forward(*inputs)) * dy)
            flat[i] = keep
            gflat[i] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads


def check_backward(forward, backward, inputs, seed=0, rtol=1e-5, atol=1e-7, eps=1e-6):
    """Compare ``backward(dy)`` with central differences of ``forward`` in float64.

    ``forward(*inputs) -> y`` must be a pure function of its inputs; ``backward(dy)`` returns the
    gradients with respect to every input, in order, for the most recent forward call.
    """
    inputs = [np.array(x, dtype=np.float64) for x in inputs]
    y = np.asarray(forward(*inputs))
    dy = np.random.default_rng(seed).standard_normal(y.shape)
    analytic = backward(dy)
    if not isinstance(analytic, (list, tuple)):
        analytic = [analytic]
    numeric = numeric_gradients(forward, inputs, dy, eps)
    assert len(analytic) == len(numeric), f"backward returned {len(analytic)} gradients for {len(numeric)} inputs"
    for k, (a, n) in enumerate(zip(analytic, numeric)):
        assert_close(np.asarray(a), n, rtol=rtol, atol=atol, what=f"gradient of input {k}")


def tape_run(fn, inputs, wrt, dy):
    """[output, gradient of each input in ``wrt``] as the active backend's arrays: ``fn(gpunet.ops,
    *tensors)`` recorded on gn.GradientTape and differentiated with output gradient ``dy``."""
    import gpunet as gn
    from gpunet import ops
    tensors = [ops.convert_to_tensor(x) for x in inputs]
    with gn.GradientTape() as tape:
        tape.watch([tensors[i] for i in wrt])
        out = fn(ops, *tensors)
    grads = tape.gradient(out, [tensors[i] for i in wrt], output_gradients=dy)
    return [out.data] + [g.data for g in grads]


def run_on_backend(name, fn):
    """``fn()`` under backend ``name``: (NumPy copies of its outputs as a list, None kept, and
    the names of the kernels it launched, in order). A tuple or list result is its outputs."""
    from gpunet import backend
    launched = []
    with backend.use(name) as be:
        if be.runs_kernels:
            real_launch = be.launch

            def counting_launch(file, kernel, grid, block, args):
                launched.append(kernel)
                real_launch(file, kernel, grid, block, args)
            be.launch = counting_launch
        out = fn()
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        return [None if a is None else np.array(be.to_numpy(a)) for a in outs], launched


def compare_with_numpy(kernel_backend, fn, kernels, what=None):
    """``fn()`` on ``kernel_backend`` launches exactly ``kernels``, in order, and its outputs
    equal the numpy backend's: as many, float32, the same shapes, None where numpy gives None.
    Returns the kernel backend's outputs (NumPy copies)."""
    what = what or (kernels[0] if kernels else "fn")
    expected, _ = run_on_backend("numpy", fn)
    actual, launched = run_on_backend(kernel_backend, fn)
    assert launched == list(kernels), f"{what}: launched {launched}, expected {list(kernels)}"
    assert len(actual) == len(expected), f"{what}: {len(actual)} outputs, numpy gives {len(expected)}"
    for k, (a, e) in enumerate(zip(actual, expected)):
        if e is None:
            assert a is None, f"{what} output {k} should be None"
            continue
        assert a.dtype == np.float32 and a.shape == e.shape, f"{what} output {k}: {a.dtype} {a.shape} vs {e.shape}"
        assert_close(a, e, what=f"{what} output {k}")
    return actual


def example_backend():
    """The backend the examples' tests run them on: cuda under GPUNET_BACKEND=cuda, else numpy.

    Not cudasim: it runs every GPU thread as a CPU thread, which turns the examples' seconds
    into many minutes (the U-Net's --quick run passed 300 s); test_kernels_model.py trains
    whole models on the kernels under cudasim instead."""
    return "cuda" if os.environ.get("GPUNET_BACKEND") == "cuda" else "numpy"


@contextlib.contextmanager
def thread_order(order):
    """cudasim backends made inside run each block's threads in ``order`` ("ascending",
    "descending", "alternate"). Two runs of a float atomicAdd in one fixed order add in the same
    order and agree bit for bit; in two orders they differ, so determinism tests use both."""
    previous = os.environ.get("GPUNET_CUDASIM_ORDER")
    os.environ["GPUNET_CUDASIM_ORDER"] = order
    try:
        yield
    finally:
        if previous is None:
            del os.environ["GPUNET_CUDASIM_ORDER"]
        else:
            os.environ["GPUNET_CUDASIM_ORDER"] = previous

