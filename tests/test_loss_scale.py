"""LossScaleOptimizer (issue 11 item 2): Keras 3's scale sequence, skipped steps, no host sync.

The expected sequence is Keras 3.15's own (tests/keras_fixtures/make_loss_scale_fixture.py wrote
loss_scale_optimizer.json with keras.optimizers.LossScaleOptimizer on its numpy backend).
"""
import json
import pathlib

import numpy as np
import pytest

import gpunet as gn
from gpunet import backend, optimizers
from gpunet.primitives import launch

FIXTURE = json.loads((pathlib.Path(__file__).parent / "keras_fixtures" / "loss_scale_optimizer.json").read_text())


def _gradient(kind, scale):
    if kind == "inf":
        return np.array([np.inf, 1.0], np.float32)
    if kind == "nan":
        return np.array([1.0, np.nan], np.float32)
    return np.array([0.25, -0.5], np.float32) * np.float32(scale)


@pytest.mark.parametrize("name", ["numpy", "cudasim"])
def test_scale_sequence_matches_keras(name):
    """Scale before / after each step, the inner iterations, the growth counter and the weights."""
    with backend.use(name) as be:
        opt = optimizers.LossScaleOptimizer(optimizers.SGD(FIXTURE["learning_rate"]),
                                            initial_scale=FIXTURE["initial_scale"],
                                            dynamic_growth_steps=FIXTURE["dynamic_growth_steps"])
        variable = be.asarray(np.array(FIXTURE["start"], np.float32))
        for k, row in enumerate(FIXTURE["steps"]):
            scale = opt.dynamic_scale
            opt.apply([be.asarray(_gradient(row["grad"], scale))], [variable])
            got = [scale, opt.dynamic_scale, opt.iterations, opt.step_counter,
                   np.asarray(be.to_numpy(variable)).tolist()]
            expected = [row["scale_before"], row["scale_after"], row["iterations"], row["step_counter"], row["value"]]
            assert got == expected, f"{name} step {k} ({row['grad']}): got {got}, Keras {expected}"


@pytest.mark.parametrize("name", ["numpy", "cudasim"])
def test_non_finite_gradient_never_reaches_weights_or_slots(name):
    """Adam under loss scaling with a NaN step and an inf step equals Adam without those steps, bit for bit."""
    rng = np.random.default_rng(3)
    shapes = [(3, 4), (4,)]
    starts = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    finite = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]
    with backend.use(name) as be:
        plain, scaled = [be.asarray(p) for p in starts], [be.asarray(p) for p in starts]
        reference = optimizers.Adam(0.01)
        for grads in finite:
            reference.apply([be.asarray(g) for g in grads], plain)
        opt = optimizers.LossScaleOptimizer(optimizers.Adam(0.01), initial_scale=2.0 ** 10)
        bad = [[g.copy() for g in finite[0]] for _ in range(2)]
        bad[0][0][1, 2], bad[1][1][3] = np.nan, np.inf
        for grads in [finite[0], bad[0], finite[1], bad[1], finite[2]]:
            scale = np.float32(opt.dynamic_scale)
            opt.apply([be.asarray(g * scale) for g in grads], scaled)
        assert opt.iterations == 3 and opt.dynamic_scale == 2.0 ** 8
        for k, (a, b) in enumerate(zip(plain, scaled)):
            np.testing.assert_array_equal(be.to_numpy(a), be.to_numpy(b), err_msg=f"{name}: weight {k}")
        for slot in ("momentum", "velocity"):
            for k in range(2):
                np.testing.assert_array_equal(be.to_numpy(reference.slot(slot, k)),
                                              be.to_numpy(opt.inner_optimizer.slot(slot, k)),
                                              err_msg=f"{name}: {slot} {k}")


def _tiny_model(dtype):
    gn.utils.set_random_seed(0)
    return gn.Sequential([gn.layers.Input((6,), dtype=dtype), gn.layers.Dense(8, activation="relu", dtype=dtype),
                          gn.layers.Dense(1, dtype=dtype)])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # float16 overflow is the point
def test_fp16_training_with_a_huge_initial_scale_recovers():
    """float16 overflows at 65504: a scale of 2**40 makes every scaled gradient inf. The scaler skips
    those steps (weights untouched), halves the scale until the gradients fit, then trains."""
    with backend.use("numpy"):   # float16 kernels come with the kernel families' templating (issue 11)
        _fp16_recovers()


def _fp16_recovers():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6)).astype(np.float16)
    y = (x[:, :1].astype(np.float32) * 0.5 + 0.25).astype(np.float16)
    model = _tiny_model("float16")
    opt = optimizers.LossScaleOptimizer(optimizers.SGD(0.05), initial_scale=2.0 ** 40)
    model.compile(optimizer=opt, loss="mse")
    start = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x, y)
    assert opt.iterations == 0 and opt.dynamic_scale == 2.0 ** 39, "the first step overflows and is skipped"
    for a, b in zip(start, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    first = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, batch_size=64, epochs=60, verbose=0, shuffle=False)
    skipped = 1 + 60 - opt.iterations
    print(f"fp16: scale {opt.dynamic_scale:g} after {skipped} skipped steps; loss {first:.4f} -> "
          f"{history.history['loss'][-1]:.4f}")
    assert 20 <= skipped <= 35 and opt.dynamic_scale <= 2.0 ** 20
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert history.history["loss"][-1] < 0.5 * first


def test_fit_under_loss_scaling_never_syncs(kernel_backend):
    """Unscaling, the skip decision and the scale update stay on the device: fit runs under strict_sync,
    and a non-finite step is still skipped (the scale halves) without the host looking."""
    if kernel_backend != "cudasim":
        pytest.skip("strict_sync on cuda is covered by test_sync_free's cuda half")
    with backend.use("cudasim"):
        rng = np.random.default_rng(1)
        x, y = rng.standard_normal((16, 6)).astype(np.float32), rng.standard_normal((16, 1)).astype(np.float32)
        model = _tiny_model("float32")
        opt = optimizers.LossScaleOptimizer(optimizers.Adam(0.01), initial_scale=2.0 ** 200 / 2.0 ** 73)
        model.compile(optimizer=opt, loss="mse")
        before = launch.launch_count()
        with backend.strict_sync():
            model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        assert launch.launch_count() > before
        # 2**127 overflows float32 gradients (inf): the first step is skipped, then the scale fits
        assert opt.dynamic_scale < 2.0 ** 127 and opt.iterations >= 2 and opt.iterations < 4


def test_config_state_and_bad_arguments():
    opt = optimizers.LossScaleOptimizer(optimizers.Adam(0.003), initial_scale=64.0, dynamic_growth_steps=7)
    assert opt.learning_rate == pytest.approx(0.003) and opt.iterations == 0
    opt.learning_rate = 0.01
    assert opt.inner_optimizer.learning_rate == 0.01
    config = opt.get_config()
    assert set(config) == set(FIXTURE["config"]) and config["inner_optimizer"]["class_name"] == "Adam"
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert isinstance(again, optimizers.LossScaleOptimizer) and again.dynamic_growth_steps == 7
    assert again.initial_scale == 64.0 and again.inner_optimizer.learning_rate == 0.01
    keras_config = dict(FIXTURE["config"], inner_optimizer=FIXTURE["config"]["inner_optimizer"])
    from_keras = optimizers.LossScaleOptimizer.from_config(keras_config)
    assert isinstance(from_keras.inner_optimizer, optimizers.SGD) and from_keras.initial_scale == 8.0
    params = [np.zeros(3, np.float32)]
    opt.apply([np.array([np.nan, 0, 0], np.float32)], params)
    opt.apply([np.ones(3, np.float32)], params)
    state = opt.get_state()
    assert state["dynamic_scale"] == 32.0 and state["step_counter"] == 1 and state["iterations"] == 1
    fresh = optimizers.LossScaleOptimizer(optimizers.Adam(0.01), initial_scale=64.0, dynamic_growth_steps=7)
    fresh.set_state(state)
    assert fresh.dynamic_scale == 32.0 and fresh.step_counter == 1 and fresh.iterations == 1
    with pytest.raises(ValueError, match="initial_scale must be a finite number > 0; received initial_scale=0"):
        optimizers.LossScaleOptimizer(optimizers.SGD(), initial_scale=0)
    with pytest.raises(ValueError, match="does not support clipnorm; set clipnorm on the inner_optimizer"):
        optimizers.LossScaleOptimizer(optimizers.SGD(), clipnorm=1.0)
    with pytest.raises(TypeError, match="inner_optimizer must be a gn.optimizers.Optimizer"):
        optimizers.LossScaleOptimizer("adam")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the float16 overflow is the point
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_scaled_seed_in_16_bit_matches_numpy(dtype):
    """The seed kernel reads T, multiplies in float32 and rounds once, as the NumPy reference; a scale
    too large for float16 overflows to inf there (the scaler then skips the step)."""
    from gpunet.primitives import optim_state, precision
    t = precision.dtype_of(dtype)
    dy = (np.random.default_rng(4).standard_normal(300) * 0.3).astype(t)
    for scale in (2.0 ** 15, 2.0 ** 3 * 1.25):
        with backend.use("numpy"):
            expected = optim_state.scale_seed(dy, scale)
        with backend.use("cudasim"):
            state = optim_state.StepState(scale=scale)
            got = backend.current().to_numpy(optim_state.scale_seed(backend.current().asarray(dy, t), state))
        assert got.dtype == t
        np.testing.assert_array_equal(got.view(np.uint16), expected.view(np.uint16))
    if dtype == "float16":
        with backend.use("numpy"):
            overflowed = optim_state.scale_seed(dy, 2.0 ** 20)
        assert not np.isinf(expected.astype(np.float32)).any() and np.isinf(overflowed.astype(np.float32)).any()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_float32_loss_gradient_is_scaled_before_it_rounds_to_float16():
    """Under mixed_float16 the loss reads float32 predictions (as Keras casts y_pred), so the seed
    kernel gets a float32 gradient and rounds once, after the scale: a mean-reduced gradient of
    1e-8 (a 262k-pixel mask) would be 0 in fp16 before scaling; scaled by 2**15 it is a normal."""
    from gpunet.primitives import optim_state
    dy = np.full(64, 1e-8, np.float32) * np.linspace(1, 2, 64, dtype=np.float32)
    assert not dy.astype(np.float16).any()                 # rounding first would lose it all
    with backend.use("numpy"):
        expected = optim_state.scale_seed(dy, 2.0 ** 15, np.float16)
    assert expected.dtype == np.float16 and np.all(expected > 0)
    np.testing.assert_allclose(expected.astype(np.float32), dy * 2.0 ** 15, rtol=2.0 ** -11)
    with backend.use("cudasim"):
        state = optim_state.StepState(scale=2.0 ** 15)
        got = backend.current().to_numpy(optim_state.scale_seed(backend.current().asarray(dy), state, np.float16))
    np.testing.assert_array_equal(got.view(np.uint16), expected.view(np.uint16))
    with backend.use("numpy"), pytest.raises(TypeError, match="loss_scale_seed"):
        optim_state.scale_seed(dy.astype(np.float16), 2.0, np.float32)


@pytest.mark.parametrize("name", ["numpy", "cudasim"])
def test_penalty_gradients_carry_the_loss_scale(name):
    """Kernel and activity penalties: training under a LossScaleOptimizer gives the weights plain SGD
    gives (the penalty gradients are scaled with the loss gradient, then unscaled with it)."""
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((16, 5)).astype(np.float32), rng.standard_normal((16, 3)).astype(np.float32)

    def trained(wrap):
        gn.utils.set_random_seed(3)
        model = gn.Sequential([gn.Input((5,)), gn.layers.Dense(4, activation="tanh", kernel_regularizer=gn.regularizers.L2(0.2),
                                                                activity_regularizer=gn.regularizers.L1(0.05)),
                               gn.layers.Dense(3, kernel_regularizer=gn.regularizers.L1L2(0.01, 0.1))])
        sgd = gn.optimizers.SGD(0.1)
        model.compile(optimizer=optimizers.LossScaleOptimizer(sgd, initial_scale=2.0 ** 10) if wrap else sgd, loss="mse")
        for _ in range(3):
            model.train_on_batch(x, y)
        return model.get_weights()
    with backend.use(name):
        plain, scaled = trained(False), trained(True)
    for a, b in zip(plain, scaled):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
