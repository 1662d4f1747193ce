import os

import numpy as np
import pytest

import gpunet as gn
from gpunet import backend


def _kernel_backends():
    """Backends that run kernels here. cudasim must run in CI: a missing compiler fails, not skips."""
    names = []
    from gpunet.backend import cupy_device
    if cupy_device.usable():
        names.append("cuda")
    names.append("cudasim")
    return names


def pytest_collection_modifyitems(items):
    """The cuda half of every kernel_backend test is marked ``cuda`` (benchmarks/gpu_check.sh runs -m cuda)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("kernel_backend") == "cuda":
            item.add_marker(pytest.mark.cuda)


@pytest.fixture(autouse=True)
def _fresh_state(request):
    """Every test starts on the suite's backend (GPUNET_BACKEND, else numpy), seeded, with fresh names.

    Tests marked ``reference`` check the NumPy reference in float64 (finite differences need
    it; the kernels are float32) and stay on numpy whatever GPUNET_BACKEND says."""
    reference = request.node.get_closest_marker("reference") is not None
    with backend.use("numpy" if reference else os.environ.get("GPUNET_BACKEND", "numpy")):
        gn.utils.set_random_seed(1234)
        gn.layers.clear_session()
        gn.config.set_float32_matmul_precision("highest")   # a test (or a docs snippet) may set "high"
        gn.mixed_precision.set_global_policy("float32")      # ... or a mixed precision policy
        yield


@pytest.fixture(params=_kernel_backends())
def kernel_backend(request):
    """Name of a backend that runs the .cu kernels (cudasim always; cuda where a GPU is seen)."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(0)
