"""Adagrad, Adadelta, Adamax, Nadam and Lion update every parameter in one launch on the kernel
backends, the rate, the per-step constants and the skip flag read from the device step state:
equal bit for bit to one launch per parameter with the constants from the host (the path a
subclass with its own update_step still takes), across a schedule, a host-set step count
(Nadam's running product recomputed) and skipped steps; and a training step with them is
captured by jit_compile=True."""
import numpy as np
import pytest

import gpunet as gn
from gpunet import backend, optimizers
from gpunet.primitives import launch

NAMES = ["Adagrad", "Adadelta", "Adamax", "Nadam", "Lion"]


def _per_parameter(cls):
    """The same optimizer through the per-parameter path (a subclass keeping its own update_step)."""
    return type(f"PerParameter{cls.__name__}", (cls,),
                {"update_step": lambda self, *args: cls.update_step(self, *args)})


def _run(cls, steps=5):
    rng = np.random.default_rng(1)
    be = backend.current()
    params = [be.asarray(rng.standard_normal(shape).astype(np.float32)) for shape in [(3, 7), (7,), (300,)]]
    optimizer = cls(optimizers.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.7), weight_decay=0.01)
    launches = []
    for s in range(steps):
        if s == 3:
            optimizer.iterations = 9   # the host sets the count: Nadam's product is recomputed from it
        grads = [be.asarray(rng.standard_normal(p.shape).astype(np.float32)) for p in params]
        before = launch.launch_count()
        optimizer._apply(params, grads)
        launches.append(launch.launch_count() - before)
    return [np.array(be.to_numpy(p)) for p in params], optimizer, launches


@pytest.mark.parametrize("name", NAMES)
def test_one_launch_equals_one_per_parameter(name):
    cls = getattr(optimizers, name)
    with backend.use("cudasim"):
        fused, optimizer, launches = _run(cls)
        split, reference, split_launches = _run(_per_parameter(cls))
        assert optimizer._fuses() and not reference._fuses()
        for a, b in zip(fused, split):
            np.testing.assert_array_equal(a, b)
        assert optimizer.iterations == reference.iterations == 11
        assert launches == [1] * 5 and split_launches == [3] * 5


def test_nadam_skipped_steps_keep_its_schedule():
    """Under a LossScaleOptimizer whose first scale overflows, skipped steps leave Nadam's running
    product alone: the parameters equal those of the numpy backend's loop."""
    def run(name):
        with backend.use(name) as be:
            rng = np.random.default_rng(2)
            params = [be.asarray(rng.standard_normal((40,)).astype(np.float32))]
            optimizer = optimizers.LossScaleOptimizer(optimizers.Nadam(0.05), initial_scale=2.0 ** 127,
                                                      dynamic_growth_steps=2)
            for _ in range(6):
                with np.errstate(over="ignore"):   # the overflowing scale: an inf gradient, a skipped step
                    grad = rng.standard_normal((40,)).astype(np.float32) * np.float32(optimizer.dynamic_scale)
                optimizer._apply(params, [be.asarray(grad)])
            return np.array(be.to_numpy(params[0])), optimizer.iterations
    (host, host_steps), (device, device_steps) = run("numpy"), run("cudasim")
    assert host_steps == device_steps < 6
    np.testing.assert_allclose(device, host, rtol=2e-6, atol=2e-6)


def test_training_with_them_is_captured():
    from test_jit_compile import _fit
    with backend.use("cudasim"):
        for make in (lambda: optimizers.Lion(0.01),
                     lambda: optimizers.LossScaleOptimizer(optimizers.Nadam(0.02), initial_scale=2.0 ** 126)):
            eager, eager_logs, _, _ = _fit(False, make)
            jit, jit_logs, _, prof = _fit(True, make)
            assert jit_logs == eager_logs and prof.kernels[("(graph)", "cuda_graph")].launches == 3
            for a, b in zip(eager.get_weights(), jit.get_weights()):
                np.testing.assert_array_equal(a, b)
