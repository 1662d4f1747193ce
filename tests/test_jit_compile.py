"""compile(jit_compile=True): fit's training step captured as a (cudasim) CUDA graph and replayed.

The proof that nothing a step needs is a Python scalar frozen into a captured launch: the
replayed run equals the eager one bit for bit although the learning-rate schedule decays every
step, Dropout draws a new mask every step and a LossScaleOptimizer skips steps, and the host
changes nothing between replays.
"""
import warnings

import numpy as np
import pytest

import gpunet as gn
from gpunet import backend, optimizers
from gpunet.primitives import optim_state

L = gn.layers


def _model(jit, optimizer, extra=()):
    gn.utils.set_random_seed(0)
    model = gn.Sequential([L.Input((6,)), L.Dense(8, activation="relu"), L.Dropout(0.3, seed=3), *extra,
                           L.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer(), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=jit)
    return model


def _data(samples=36):
    rng = np.random.default_rng(0)
    return rng.standard_normal((samples, 6)).astype(np.float32), rng.integers(0, 3, samples)


def _fit(jit, optimizer, epochs=1, extra=()):
    x, y = _data()
    seen = []
    model = _model(jit, optimizer, extra)
    per_batch = gn.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(logs["loss"]))
    with gn.profiler.profile() as prof:
        history = model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, shuffle=False, callbacks=[per_batch])
    return model, history.history, seen, prof


def _adam_with_decay():
    return optimizers.Adam(optimizers.schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5))


def test_replayed_steps_equal_eager_steps_bit_for_bit():
    """36 rows in batches of 8: four of 8 and a short one of 4, for two epochs. Each size warms up
    eagerly once (steps 0 and 4), is captured at its next batch and replayed from then on: 8 of
    the 10 steps are replays, 6 of them of a graph captured at an earlier step."""
    with backend.use("cudasim"):
        eager, eager_logs, eager_losses, eager_prof = _fit(False, _adam_with_decay, epochs=2)
        jit, jit_logs, jit_losses, prof = _fit(True, _adam_with_decay, epochs=2)
        assert jit_losses == eager_losses and jit_logs == eager_logs
        for k, (a, b) in enumerate(zip(eager.get_weights(), jit.get_weights())):
            np.testing.assert_array_equal(a, b, err_msg=f"weight {k}")
        assert jit.optimizer.iterations == eager.optimizer.iterations == 10
        assert jit.layers[1]._calls == 10, "Dropout counted every replayed call in device memory"
        # the schedule advanced on the device although nothing changed on the host
        rate = jit.optimizer._step.get(optim_state.RATE)
        assert rate == pytest.approx(0.05 * 0.5 ** (9 / 2)) and jit.optimizer.learning_rate == pytest.approx(
            0.05 * 0.5 ** 5)
        replays = prof.kernels[("(graph)", "cuda_graph")].launches
        assert replays == 8 and len(prof.steps) == 10
        graph_steps = [s.launches for k, s in enumerate(prof.steps) if k not in (0, 4)]
        print(f"launches per step: eager {eager_prof.launches_per_step:.0f}, replayed {graph_steps} "
              f"(the graph + the accuracy update); {prof.graph_kernels / replays:.0f} kernels per graph")
        assert all(n == 2 for n in graph_steps) and eager_prof.steps[5].launches > 10


def test_loss_scaling_skips_inside_the_graph():
    """A LossScaleOptimizer whose scale overflows float32 gradients at first: the skipped steps, the
    halving and the growth all happen inside replays, and the result equals the eager run."""
    def scaled():
        return optimizers.LossScaleOptimizer(optimizers.SGD(0.1, momentum=0.5), initial_scale=2.0 ** 126,
                                             dynamic_growth_steps=3)
    with backend.use("cudasim"):
        eager, eager_logs, _, _ = _fit(False, scaled, epochs=2)
        jit, jit_logs, _, _ = _fit(True, scaled, epochs=2)
        assert jit_logs == eager_logs
        for a, b in zip(eager.get_weights(), jit.get_weights()):
            np.testing.assert_array_equal(a, b)
        assert (jit.optimizer.iterations, jit.optimizer.dynamic_scale, jit.optimizer.step_counter) == \
            (eager.optimizer.iterations, eager.optimizer.dynamic_scale, eager.optimizer.step_counter)
        assert eager.optimizer.iterations < 10, "some steps were skipped"


class HostReading(L.Layer):
    """A custom layer that reads a value on the host in its forward: it cannot be captured."""

    def forward(self, x, training=False):
        self.last_max = float(x.max())
        return x

    def backward(self, dy):
        self.grads = []
        return dy


def test_a_layer_reading_the_host_falls_back_to_eager_with_one_warning():
    with backend.use("cudasim"):
        eager, eager_logs, _, _ = _fit(False, _adam_with_decay, extra=[HostReading(name="peek")])
        with pytest.warns(UserWarning, match=r"jit_compile=True: model .* trains eagerly \(layer 'peek'\)") as caught:
            jit, jit_logs, _, prof = _fit(True, _adam_with_decay, extra=[HostReading(name="peek")])
        assert len([w for w in caught if "jit_compile" in str(w.message)]) == 1
        assert jit_logs == eager_logs and ("(graph)", "cuda_graph") not in prof.kernels
        for a, b in zip(eager.get_weights(), jit.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_numpy_backend_and_bad_values():
    """On numpy there is nothing to capture: jit_compile=True trains eagerly, without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eager, eager_logs, _, _ = _fit(False, _adam_with_decay)
        jit, jit_logs, _, _ = _fit(True, _adam_with_decay)
    assert jit_logs == eager_logs and jit.jit_compile is True and eager.jit_compile is False
    with pytest.raises(ValueError, match="jit_compile must be True, False or 'auto'; received 'yes'"):
        eager.compile(optimizer="adam", loss="mse", jit_compile="yes")
    eager.compile(optimizer="adam", loss="mse")
    assert eager.jit_compile is False   # "auto": eager here


def test_an_optimizer_without_a_fused_update_trains_eagerly_with_a_warning():
    with backend.use("cudasim"):
        with pytest.warns(UserWarning, match="the optimizer Adafactor updates with several launches"):
            _, logs, _, prof = _fit(True, lambda: optimizers.Adafactor(0.1))
        assert ("(graph)", "cuda_graph") not in prof.kernels and np.isfinite(logs["loss"][0])
