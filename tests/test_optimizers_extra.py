"""Adagrad, Adadelta, Adamax, Nadam and Lion: three steps equal to Keras 3.15's
(tests/keras_fixtures/optimizers.npz, from make_optimizer_fixtures.py) on numpy and on the
kernels, slots in Keras's saved order, and each fused kernel equal to the NumPy reference."""
import json
import os

import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, compare_with_numpy
from gpunet.primitives import optim_extra as ops
from gpunet.saving.optimizer_state import keras_variables

FIXTURE = os.path.join(os.path.dirname(__file__), "keras_fixtures", "optimizers.npz")
with np.load(FIXTURE) as _data:
    KERAS = {key: _data[key] for key in _data.files}
CASES = json.loads(str(KERAS["cases"]))
IDS = [f"{i}-{name}" for i, (name, _) in enumerate(CASES)]


def _steps(index, backend_name):
    name, kwargs = CASES[index]
    with gn.backend.use(backend_name) as be:
        optimizer = getattr(gn.optimizers, name)(**kwargs)
        params = [be.asarray(KERAS["w0"].copy()), be.asarray(KERAS["w1"].copy())]
        history = []
        for s in range(3):
            optimizer.apply([be.asarray(KERAS[f"g{s}_0"]), be.asarray(KERAS[f"g{s}_1"])], params)
            history.append([np.array(be.to_numpy(p)) for p in params])
        return optimizer, history


@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_three_steps_match_keras(index):
    optimizer, history = _steps(index, "numpy")
    for s, params in enumerate(history):
        for k, p in enumerate(params):
            assert_close(p, KERAS[f"{index}_after{s}_{k}"], rtol=2e-6, atol=2e-6, what=f"step {s} variable {k}")
    # The saved variables in Keras's order (Nadam: Keras adds its schedule product at the end).
    ours = [array for _, array in keras_variables(optimizer)]
    keras_paths = json.loads(str(KERAS[f"{index}_vars"]))
    count = len(keras_paths) - (1 if CASES[index][0] == "Nadam" else 0)
    assert len(ours) == count
    for j in range(2, count):
        if CASES[index][0] == "Adafactor" and keras_paths[j].endswith("velocity") and ours[j].ndim >= 2:
            continue   # a factored weight's velocity: Keras recomputes it from r and c each step
        assert_close(ours[j], KERAS[f"{index}_var{j}"], rtol=2e-5, atol=2e-6, what=keras_paths[j])
    again = gn.optimizers.deserialize(gn.optimizers.serialize(optimizer))
    assert again.get_config() == optimizer.get_config()


@pytest.mark.parametrize("index", [0, 2, 5, 7, 9, 11, 12], ids=[IDS[i] for i in [0, 2, 5, 7, 9, 11, 12]])
def test_three_steps_on_kernels_match_keras(kernel_backend, index):
    _, history = _steps(index, kernel_backend)
    for k, p in enumerate(history[-1]):
        assert_close(p, KERAS[f"{index}_after2_{k}"], rtol=2e-6, atol=3e-6, what=f"variable {k}")


def test_defaults_and_names_are_keras():
    assert gn.optimizers.get("adagrad").get_config()["initial_accumulator_value"] == 0.1
    assert gn.optimizers.Adadelta().rho == 0.95 and gn.optimizers.Lion().beta_2 == 0.99
    assert [gn.optimizers.get(n).name for n in ("adamax", "nadam", "lion")] == ["adamax", "nadam", "lion"]
    with pytest.raises(ValueError, match=r"Lion beta_1 must be in the \(0, 1\] range.*received beta_1=0"):
        gn.optimizers.Lion(beta_1=0)


def test_adagrad_state_resumes_exactly():
    be = gn.backend.current()
    first = gn.optimizers.Adagrad(0.1)
    params = [be.asarray(KERAS["w0"].copy())]
    first.apply([be.asarray(KERAS["g0_0"])], params)
    second = gn.optimizers.Adagrad(0.1)
    second.set_state(first.get_state())
    copy = [be.asarray(be.to_numpy(params[0]).copy())]
    first.apply([be.asarray(KERAS["g1_0"])], params)
    second.apply([be.asarray(KERAS["g1_0"])], copy)
    np.testing.assert_array_equal(be.to_numpy(params[0]), be.to_numpy(copy[0]))


def test_model_trains_with_each():
    x = np.random.default_rng(0).standard_normal((32, 4)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5], [0.0]], dtype="float32")
    # Adadelta starts slowly (its step size grows from sqrt(epsilon)): it only has to improve.
    for name, rate, factor in [("Adagrad", 0.3, 0.5), ("Adadelta", 5.0, 0.9), ("Adamax", 0.05, 0.5),
                               ("Nadam", 0.05, 0.5), ("Lion", 0.02, 0.5), ("Adafactor", 0.3, 0.5)]:
        model = gn.Sequential([gn.Input((4,)), gn.layers.Dense(1)])
        model.compile(optimizer=getattr(gn.optimizers, name)(rate), loss="mse")
        losses = model.fit(x, y, epochs=10, batch_size=8, verbose=0).history["loss"]
        assert losses[-1] < factor * losses[0], (name, losses)


KERNEL_CASES = [
    ("adagrad_update", lambda p, g, s: ops.adagrad_update(p, g, s[0], 0.1, 1e-7, 0.01), 1),
    ("adadelta_update", lambda p, g, s: ops.adadelta_update(p, g, s[0], s[1], 1.0, 0.95, 1e-7, 0.0), 2),
    ("adamax_update", lambda p, g, s: ops.adamax_update(p, g, s[0], s[1], 0.01, 0.9, 0.999, 1e-7, 3, 0.1), 2),
    ("nadam_update", lambda p, g, s: ops.nadam_update(p, g, s[0], s[1], 0.01, 0.9, 0.999, 1e-7, 4, 0.0), 2),
    ("lion_update", lambda p, g, s: ops.lion_update(p, g, s[0], 0.01, 0.9, 0.99, 0.05), 1)]


@pytest.mark.parametrize("kernel, step, slots", KERNEL_CASES, ids=[c[0] for c in KERNEL_CASES])
@pytest.mark.parametrize("shape", [(1,), (3, 3, 2, 5), (1000,)])
def test_fused_kernels_match_numpy(kernel_backend, rng, kernel, step, slots, shape):
    p0 = rng.normal(0, 1, shape).astype("float32")
    g = rng.normal(0, 1, shape).astype("float32")
    s0 = [np.abs(rng.normal(0, 1, shape)).astype("float32") for _ in range(slots)]

    def run():
        be = gn.backend.current()
        p, state = be.asarray(p0.copy()), [be.asarray(s.copy()) for s in s0]
        step(p, be.asarray(g), state)
        return [p, *state]
    compare_with_numpy(kernel_backend, run, [kernel])


@pytest.mark.parametrize("shape", [(7,), (5, 9), (2, 3, 4, 6)])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adafactor_kernels_match_numpy(kernel_backend, rng, shape, weight_decay):
    from gpunet.primitives import optim_adafactor
    p0 = rng.normal(0, 1, shape).astype("float32")
    g = rng.normal(0, 1, shape).astype("float32")
    factored = len(shape) >= 2
    r0 = np.abs(rng.normal(0, 1, shape[:-1])).astype("float32") if factored else None
    c0 = np.abs(rng.normal(0, 1, shape[:-2] + shape[-1:])).astype("float32") if factored else None
    v0 = None if factored else np.abs(rng.normal(0, 1, shape)).astype("float32")

    def run():
        be = gn.backend.current()
        p = be.asarray(p0.copy())
        r, c, v = (None if a is None else be.asarray(a.copy()) for a in (r0, c0, v0))
        optim_adafactor.adafactor_update(p, be.asarray(g), r, c, v, 0.05, 3, weight_decay=weight_decay)
        return [p] + [a for a in (r, c, v) if a is not None]
    kernels = (["adafactor_decay"] if weight_decay else []) + ["penalty_sum_partials", "sum_partials_finish"]
    kernels += ["adafactor_row_col", "adafactor_row_means"] if factored else ["adafactor_velocity"]
    compare_with_numpy(kernel_backend, run, kernels + ["adafactor_u_squares", "sum_partials_finish", "adafactor_apply"])
