"""Optimizers against hand-written step-by-step references of Keras 3's update formulas."""
import math

import numpy as np
import pytest

from gpunet import optimizers
from gpunet.primitives import optim as optim_ops
from checks import assert_close

# float64 checks of the NumPy reference ops: they stay on numpy under any GPUNET_BACKEND
# (the kernels are compared with them in test_kernels_*.py)
pytestmark = pytest.mark.reference

P0 = np.array([[0.5, -1.0, 2.0], [0.25, 3.0, -0.75]])
GRADS = [np.array([[0.1, -0.2, 0.3], [0.4, -0.5, 0.6]]),
         np.array([[-0.3, 0.1, 0.2], [0.0, 0.7, -0.1]]),
         np.array([[0.05, 0.05, -0.4], [0.2, -0.6, 0.9]])]


def run(opt, grads=GRADS, p0=P0):
    param = p0.copy()
    for g in grads:
        opt.apply([g.copy()], [param])
    return param


# -- references, written out as Keras's update_step reads ------------------------------
def ref_sgd(lr, momentum, nesterov, wd=0.0):
    p, m = P0.copy(), np.zeros_like(P0)
    for g in GRADS:
        p = p - p * wd * lr
        if momentum == 0:
            p = p - g * lr
            continue
        m = m * momentum - g * lr
        p = p + (m * momentum - g * lr if nesterov else m)
    return p


def ref_adam(lr, b1, b2, eps, amsgrad=False, wd=0.0):
    p, m, v, vhat = P0.copy(), np.zeros_like(P0), np.zeros_like(P0), np.zeros_like(P0)
    for t, g in enumerate(GRADS, start=1):
        p = p - p * wd * lr
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        vhat = np.maximum(vhat, v)
        p = p - m * alpha / (np.sqrt(vhat if amsgrad else v) + eps)
    return p


def ref_rmsprop(lr, rho, momentum, eps, centered):
    p, vel, mom, avg = P0.copy(), np.zeros_like(P0), np.zeros_like(P0), np.zeros_like(P0)
    for g in GRADS:
        vel = rho * vel + (1 - rho) * g * g
        avg = rho * avg + (1 - rho) * g
        denominator = vel - avg * avg + eps if centered else vel + eps
        increment = lr * g / np.sqrt(denominator)
        mom = momentum * mom + increment
        p = p - (mom if momentum > 0 else increment)
    return p


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True), (0.5, True)])
def test_sgd_matches_keras_formula(momentum, nesterov):
    opt = optimizers.SGD(learning_rate=0.1, momentum=momentum, nesterov=nesterov)
    assert_close(run(opt), ref_sgd(0.1, momentum, nesterov), rtol=1e-12, atol=1e-14)
    assert opt.iterations == 3


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_matches_keras_formula(amsgrad):
    opt = optimizers.Adam(learning_rate=0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-3, amsgrad=amsgrad)
    assert_close(run(opt), ref_adam(0.01, 0.8, 0.95, 1e-3, amsgrad), rtol=1e-12, atol=1e-14)


def test_amsgrad_differs_from_adam_when_velocity_falls():
    # GRADS shrink in places, so v drops and the running maximum keeps the larger value.
    settings = dict(learning_rate=0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-3)
    assert not np.allclose(run(optimizers.Adam(amsgrad=True, **settings)), run(optimizers.Adam(**settings)))


def test_adamw_is_adam_after_decoupled_decay():
    opt = optimizers.AdamW(learning_rate=0.05, weight_decay=0.1)
    expected = ref_adam(0.05, 0.9, 0.999, 1e-7, wd=0.1)
    assert_close(run(opt), expected, rtol=1e-12, atol=1e-14)
    assert not np.allclose(expected, ref_adam(0.05, 0.9, 0.999, 1e-7))


@pytest.mark.parametrize("momentum, centered", [(0.0, False), (0.9, False), (0.0, True), (0.5, True)])
def test_rmsprop_matches_keras_formula(momentum, centered):
    opt = optimizers.RMSprop(learning_rate=0.01, rho=0.8, momentum=momentum, epsilon=1e-6, centered=centered)
    assert_close(run(opt), ref_rmsprop(0.01, 0.8, momentum, 1e-6, centered), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("make", [lambda: optimizers.SGD(0.1, momentum=0.9, weight_decay=0.2),
                                  lambda: optimizers.SGD(0.1, weight_decay=0.2)])
def test_sgd_weight_decay_applied_before_the_update(make):
    opt = make()
    assert_close(run(opt), ref_sgd(0.1, opt.momentum, False, wd=0.2), rtol=1e-12, atol=1e-14)


def test_adam_weight_decay_equals_adamw():
    adam, adamw = optimizers.Adam(0.05, weight_decay=0.1), optimizers.AdamW(0.05, weight_decay=0.1)
    assert np.array_equal(run(adam), run(adamw))


def test_clipnorm_rescales_each_gradient_alone():
    big, small = np.array([3.0, 4.0]), np.array([0.3, 0.4])   # norms 5 and 0.5
    p1, p2 = np.zeros(2), np.zeros(2)
    optimizers.SGD(1.0, clipnorm=1.0).apply([big, small], [p1, p2])
    assert_close(p1, [-0.6, -0.8], rtol=1e-12)
    assert_close(p2, [-0.3, -0.4], rtol=1e-12)
    assert np.array_equal(big, [3.0, 4.0]), "clipping must not change the caller's gradient"


def test_global_clipnorm_rescales_all_gradients_together():
    p1, p2 = np.zeros(2), np.zeros(1)
    optimizers.SGD(1.0, global_clipnorm=2.0).apply([np.array([3.0, 4.0]), np.array([12.0])], [p1, p2])
    # joint norm sqrt(9 + 16 + 144) = 13 -> every gradient times 2/13
    assert_close(p1, [-6 / 13, -8 / 13], rtol=1e-12)
    assert_close(p2, [-24 / 13], rtol=1e-12)


def test_global_clipnorm_of_infinite_gradient_gives_nan_like_keras():
    clipped = optim_ops.clip_by_global_norm([np.array([np.inf, 1.0]), np.array([2.0])], 1.0)
    assert np.isnan(clipped[1]).all()


def test_clipvalue_clips_elementwise():
    p = np.zeros(3)
    optimizers.SGD(1.0, clipvalue=0.5).apply([np.array([2.0, -0.25, -7.0])], [p])
    assert_close(p, [-0.5, 0.25, 0.5], rtol=1e-12)


def test_only_one_clipping_option():
    with pytest.raises(ValueError, match="only one of clipnorm, clipvalue and global_clipnorm"):
        optimizers.Adam(clipnorm=1.0, clipvalue=0.5)


@pytest.mark.parametrize("step, staircase, expected", [
    (0, False, 0.1), (5, False, 0.1 * 0.5 ** 0.5), (10, False, 0.05), (15, True, 0.05), (25, True, 0.025)])
def test_exponential_decay(step, staircase, expected):
    schedule = optimizers.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=staircase)
    assert schedule(step) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("step, expected", [(0, 1.0), (5, 0.1 + 0.9 * 0.5), (10, 0.1), (40, 0.1)])
def test_cosine_decay(step, expected):
    assert optimizers.CosineDecay(1.0, decay_steps=10, alpha=0.1)(step) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("step, expected", [(0, 0.0), (2, 0.5), (4, 1.0), (9, 0.5), (14, 0.0)])
def test_cosine_decay_with_warmup(step, expected):
    schedule = optimizers.CosineDecay(0.0, decay_steps=10, warmup_target=1.0, warmup_steps=4)
    assert schedule(step) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("rate", [optimizers.ExponentialDecay(0.1, 1, 0.5), lambda step: 0.1 * 0.5 ** step])
def test_schedule_is_evaluated_at_iterations_from_zero(rate):
    opt = optimizers.SGD(learning_rate=rate)
    p = np.zeros(1)
    for _ in range(3):
        opt.apply([np.ones(1)], [p])
    assert_close(p, [-(0.1 + 0.05 + 0.025)], rtol=1e-12)
    assert opt.current_learning_rate() == pytest.approx(0.0125) and opt.learning_rate == pytest.approx(0.0125)


def test_setting_a_float_replaces_the_schedule():
    opt = optimizers.Adam(learning_rate=optimizers.CosineDecay(0.1, 100))
    opt.learning_rate = 0.003
    opt.iterations = 50
    assert opt.learning_rate == 0.003 and opt.current_learning_rate() == 0.003
    assert opt.get_config()["learning_rate"] == 0.003


def quadratic_grad(p):
    """Gradient of sum(scale * (p - target)**2) / 2: an ill-conditioned bowl with minimum at target."""
    return np.array([1.0, 10.0, 0.5]) * (p - np.array([1.0, -2.0, 0.5]))


@pytest.mark.parametrize("make", [
    lambda: optimizers.SGD(0.1), lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: optimizers.Adam(0.05), lambda: optimizers.AdamW(0.05, weight_decay=1e-4),
    lambda: optimizers.RMSprop(0.01), lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True)])
def test_minimising_a_quadratic_converges(make):
    opt, p = make(), np.zeros(3)
    for _ in range(500):
        opt.apply([quadratic_grad(p)], [p])
    assert_close(p, [1.0, -2.0, 0.5], atol=2e-2, rtol=0)


@pytest.mark.parametrize("make", [
    lambda: optimizers.SGD(0.1, momentum=0.9), lambda: optimizers.Adam(0.01, amsgrad=True),
    lambda: optimizers.AdamW(0.01), lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    lambda: optimizers.Adam(optimizers.ExponentialDecay(0.01, 2, 0.5))])
@pytest.mark.parametrize("restore_before_first_apply", [True, False])
def test_state_round_trip_continues_identically(make, restore_before_first_apply):
    first = make()
    params = [P0.copy(), np.array([1.0, -1.0])]
    grads = [[g, g[0, :2] * 3] for g in GRADS]
    for g in grads:
        first.apply(g, params)
    state = first.get_state()
    assert list(state)[0] == "iterations" and int(state["iterations"]) == 3
    assert all(isinstance(v, np.ndarray) for v in state.values())

    second = optimizers.deserialize(optimizers.serialize(first))
    copies = [p.copy() for p in params]
    if not restore_before_first_apply:
        second.apply(grads[0], [np.zeros_like(p) for p in params])   # builds its slots first
    second.set_state(state)
    for g in grads:
        first.apply(g, params)
        second.apply(g, copies)
    for a, b in zip(params, copies):
        assert np.array_equal(a, b)
    assert second.iterations == first.iterations == 6


def test_state_order_is_documented_keras_order():
    opt = optimizers.Adam()
    opt.apply([np.ones(2), np.ones(3)], [np.zeros(2), np.zeros(3)])
    assert list(opt.get_state()) == ["iterations", "learning_rate", "momentum_0", "momentum_1",
                                     "velocity_0", "velocity_1"]


def test_set_state_rejects_a_mismatched_state():
    opt = optimizers.Adam()
    opt.apply([np.ones(2)], [np.zeros(2)])
    state = opt.get_state()
    state["velocity_0"] = np.zeros(5)
    with pytest.raises(ValueError, match="slot 'velocity_0' has shape \\(2,\\); received shape \\(5,\\)"):
        opt.set_state(state)
    assert opt.iterations == 1
    sgd = optimizers.SGD(momentum=0.9)
    sgd.apply([np.ones(2)], [np.zeros(2)])
    with pytest.raises(ValueError, match=r"expected slots \['momentum_0'\]"):
        sgd.set_state(state)


def test_pending_state_for_other_parameters_fails_on_first_apply():
    source = optimizers.Adam()
    source.apply([np.ones(2)], [np.zeros(2)])
    target = optimizers.Adam()
    target.set_state(source.get_state())
    with pytest.raises(ValueError, match="slot 'momentum_0' has shape \\(4,\\); received shape \\(2,\\)"):
        target.apply([np.ones(4)], [np.zeros(4)])


def test_float32_parameters_and_slots_stay_float32():
    opt, p = optimizers.Adam(0.01), np.ones(4, dtype=np.float32)
    opt.apply([np.full(4, 0.5, dtype=np.float32)], [p])
    assert p.dtype == np.float32 and opt.slot("velocity", 0).dtype == np.float32
    assert_close(p, np.full(4, 1 - 0.01, dtype=np.float32), rtol=1e-6)


def test_none_gradient_leaves_its_parameter_alone():
    a, b = np.ones(2), np.ones(2)
    optimizers.SGD(0.5).apply([None, np.ones(2)], [a, b])
    assert np.array_equal(a, [1.0, 1.0]) and np.array_equal(b, [0.5, 0.5])


def test_other_parameter_shapes_are_rejected():
    opt = optimizers.SGD()
    opt.apply([np.ones(2)], [np.zeros(2)])
    with pytest.raises(ValueError, match=r"built for parameters of shapes \[\(2,\)\]; received \[\(3,\)\]"):
        opt.apply([np.ones(3)], [np.zeros(3)])
    with pytest.raises(ValueError, match=r"gradient 0 has shape \(3,\); its parameter has shape \(2,\)"):
        opt.apply([np.ones(3)], [np.zeros(2)])


@pytest.mark.parametrize("identifier, cls", [("sgd", optimizers.SGD), ("Adam", optimizers.Adam),
                                             ("adamw", optimizers.AdamW), ("RMSprop", optimizers.RMSprop)])
def test_get_by_name(identifier, cls):
    opt = optimizers.get(identifier)
    assert type(opt) is cls
    assert optimizers.get(opt) is opt


def test_get_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="'sgd', 'adam', 'adamw', 'rmsprop'"):
        optimizers.get("ftrl")


@pytest.mark.parametrize("opt", [
    optimizers.SGD(0.2, momentum=0.5, nesterov=True, clipnorm=1.0),
    optimizers.Adam(optimizers.ExponentialDecay(0.1, 10, 0.9, staircase=True), amsgrad=True, clipvalue=2.0),
    optimizers.AdamW(0.002, weight_decay=0.01, global_clipnorm=3.0),
    optimizers.RMSprop(optimizers.CosineDecay(0.01, 50, alpha=0.1), rho=0.8, centered=True)])
def test_config_round_trip(opt):
    config = opt.get_config()
    again = type(opt).from_config(config)
    assert again.get_config() == config
    assert optimizers.deserialize(optimizers.serialize(opt)).get_config() == config
    assert again.current_learning_rate() == opt.current_learning_rate()


def test_keras_saved_config_with_default_extras_loads():
    config = {"name": "adam", "learning_rate": 0.001, "use_ema": False, "ema_momentum": 0.99,
              "loss_scale_factor": None, "beta_1": 0.9}
    assert optimizers.Adam.from_config(config).beta_1 == 0.9
    with pytest.raises(ValueError, match="does not support use_ema=True"):
        optimizers.Adam.from_config({**config, "use_ema": True})


@pytest.mark.parametrize("make, message", [
    (lambda: optimizers.SGD(momentum=1.5),
     "SGD: momentum must be a number in \\[0.0, 1.0\\]; received momentum=1.5"),
    (lambda: optimizers.Adam(learning_rate=-1.0), "learning_rate must be a float >= 0"),
    (lambda: optimizers.Adam(beta_1=1.0), "beta_1 must be a number in \\[0.0, 1.0\\)"),
    (lambda: optimizers.AdamW(weight_decay=None), "AdamW: weight_decay must be a float"),
    (lambda: optimizers.RMSprop(clipnorm=0), "clipnorm must be a number > 0"),
    (lambda: optimizers.ExponentialDecay(0.1, 0, 0.5),
     "ExponentialDecay: decay_steps must be a number > 0; received decay_steps=0")])
def test_bad_settings_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_apply_takes_keras_order_and_remembers_its_variables():
    """Keras 3: ``apply(grads, trainable_variables)``; a later ``apply(grads)`` updates the same ones."""
    p = np.zeros(2)
    opt = optimizers.SGD(0.5)
    with pytest.raises(ValueError, match="without trainable_variables"):
        opt.apply([np.ones(2)])
    opt.apply([np.array([1.0, -2.0])], [p])
    opt.apply([np.array([1.0, -2.0])])
    assert_close(p, [-1.0, 2.0], rtol=1e-12)


def test_layer_variables_are_keras_names_for_its_weights():
    import gpunet as gn
    model = gn.Sequential([gn.Input((3,)), gn.layers.Dense(2), gn.layers.BatchNormalization()])
    assert [id(w) for w in model.trainable_variables] == [id(w) for w in model.trainable_weights]
    assert len(model.trainable_variables) == 4 and len(model.non_trainable_variables) == 2
    assert len(model.variables) == 6
