"""gn.random (uniform, normal, SeedGenerator) and the layers that draw from it (GaussianNoise,
GaussianDropout): kernels against the NumPy reference, Keras's seeding rules, statistics,
gradients, graph replays, and a VAE-style model whose sampling layer draws inside call()."""
import numpy as np
import pytest

import gpunet as gn
from gpunet import backend, ops
from gpunet.primitives import random as random_ops
from checks import assert_close

L = gn.layers


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_kernels_draw_the_reference_numbers(dtype):
    """Uniform draws are bit-identical; normal ones pass logf / cosf, a few float32 ulps apart
    (then one 16-bit rounding)."""
    dtype = np.dtype(dtype) if dtype == "float32" else gn.mixed_precision.bfloat16 \
        if hasattr(gn.mixed_precision, "bfloat16") else np.dtype(__import__("ml_dtypes").bfloat16)
    with backend.use("numpy"):
        u = random_ops.uniform((37, 5), -2.0, 3.0, 11, dtype)
        z = random_ops.normal((37, 5), 1.0, 0.5, 11, dtype)
    with backend.use("cudasim"):
        be = backend.current()
        u_kernel = be.to_numpy(random_ops.uniform((37, 5), -2.0, 3.0, 11, dtype))
        z_kernel = be.to_numpy(random_ops.normal((37, 5), 1.0, 0.5, 11, dtype))
    assert np.array_equal(u, u_kernel)
    tolerance = 1e-5 if dtype == np.float32 else 2 ** -7
    assert_close(z_kernel.astype(np.float32), z.astype(np.float32), rtol=tolerance, atol=tolerance)


def test_draws_have_their_distribution():
    u = ops.convert_to_numpy(gn.random.uniform((20000,), 2.0, 4.0, seed=1))
    z = ops.convert_to_numpy(gn.random.normal((20000,), -1.0, 3.0, seed=1))
    assert u.min() >= 2.0 and u.max() < 4.0 and abs(u.mean() - 3.0) < 0.02
    assert abs(z.mean() + 1.0) < 0.06 and abs(z.std() - 3.0) < 0.06
    assert abs(np.mean(np.abs(z + 1.0) < 3.0) - 0.6827) < 0.01   # the one-sigma share of a normal


def test_seeds_follow_keras():
    same = [ops.convert_to_numpy(gn.random.normal((4,), seed=7)) for _ in range(2)]
    assert np.array_equal(*same), "an int seed gives the same numbers every call"
    generator = gn.random.SeedGenerator(7)
    first, second = (ops.convert_to_numpy(gn.random.normal((4,), seed=generator)) for _ in range(2))
    assert not np.array_equal(first, second), "a SeedGenerator advances"
    gn.utils.set_random_seed(3)
    a = ops.convert_to_numpy(gn.random.uniform((4,)))
    gn.utils.set_random_seed(3)
    assert np.array_equal(a, ops.convert_to_numpy(gn.random.uniform((4,))))
    with pytest.raises(ValueError, match="SeedGenerator"):
        gn.random.normal((2,), seed="7")


def test_gaussian_noise_and_dropout_in_training_only():
    x = np.ones((64, 32), np.float32)
    noise, drop = L.GaussianNoise(0.5, seed=1), L.GaussianDropout(0.2, seed=1)
    assert np.array_equal(np.asarray(noise(x)), x) and np.array_equal(np.asarray(drop(x)), x)
    be = backend.current()
    noisy = be.to_numpy(noise.forward(be.asarray(x), training=True))
    dropped = be.to_numpy(drop.forward(be.asarray(x), training=True))
    assert abs(noisy.std() - 0.5) < 0.03 and abs(noisy.mean() - 1.0) < 0.03
    assert abs(dropped.std() - np.sqrt(0.2 / 0.8)) < 0.03 and abs(dropped.mean() - 1.0) < 0.03
    dy = be.asarray(np.full((64, 32), 2.0, np.float32))
    assert np.array_equal(be.to_numpy(noise.backward(dy)), be.to_numpy(dy))
    assert_close(be.to_numpy(drop.backward(dy)), 2.0 * dropped, rtol=1e-6, atol=0)
    assert noise.get_config()["stddev"] == 0.5 and "rate" not in noise.get_config()
    with pytest.raises(ValueError, match="stddev must be a number >= 0"):
        L.GaussianNoise(-1.0)


def test_gaussian_dropout_replays_fresh_noise_under_jit():
    """A seeded GaussianDropout counts its calls in device memory as Dropout does: the replayed
    steps equal the eager ones bit for bit."""
    def fit(jit):
        gn.utils.set_random_seed(0)
        model = gn.Sequential([L.Input((6,)), L.Dense(8, activation="relu"), L.GaussianDropout(0.3, seed=4),
                               L.Dense(2)])
        model.compile(optimizer="adam", loss="mse", jit_compile=jit)
        rng = np.random.default_rng(0)
        model.fit(rng.standard_normal((32, 6)).astype(np.float32), rng.standard_normal((32, 2)).astype(np.float32),
                  batch_size=8, epochs=2, verbose=0, shuffle=False)
        return model
    with backend.use("cudasim"):
        eager, jit = fit(False), fit(True)
        for a, b in zip(eager.get_weights(), jit.get_weights()):
            assert np.array_equal(a, b)
        assert jit.layers[1]._calls == 8


class Sampling(L.Layer):
    """A VAE's reparameterisation: z_mean + exp(0.5 * z_log_var) * eps, eps ~ N(0, 1)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = gn.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        eps = gn.random.normal(tuple(z_mean.shape), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * eps


class VAE(gn.Model):
    def __init__(self):
        super().__init__()
        self.hidden, self.mean, self.log_var = L.Dense(8, activation="relu"), L.Dense(2), L.Dense(2)
        self.sampling, self.decode = Sampling(), L.Dense(6, activation="sigmoid")
        self.total_tracker, self.kl_tracker = gn.metrics.Mean(name="loss"), gn.metrics.Mean(name="kl_loss")

    def call(self, x):
        h = self.hidden(x)
        return self.decode(self.sampling([self.mean(h), self.log_var(h)]))

    @property
    def metrics(self):
        return [self.total_tracker, self.kl_tracker]

    def train_step(self, data):
        x = data[0]
        with gn.GradientTape() as tape:
            h = self.hidden(x, training=True)
            z_mean, z_log_var = self.mean(h), self.log_var(h)
            reconstruction = self.decode(self.sampling([z_mean, z_log_var]))
            recon = ops.mean(ops.sum(gn.losses.binary_crossentropy(x[..., None], reconstruction[..., None]), axis=1))
            kl = ops.mean(ops.sum(-0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var)), axis=1))
            total = recon + kl
        self.optimizer.apply(tape.gradient(total, self.trainable_weights), self.trainable_weights)
        self.total_tracker.update_state(total)
        self.kl_tracker.update_state(kl)
        return {m.name: m.result() for m in self.metrics}


def test_a_vae_with_a_sampling_layer_trains():
    rng = np.random.default_rng(0)
    x = (rng.random((64, 6)) < np.array([0.9, 0.9, 0.1, 0.1, 0.5, 0.8])).astype(np.float32)
    vae = VAE()
    vae.compile(optimizer=gn.optimizers.Adam(0.02))
    history = vae.fit(x, epochs=8, batch_size=16, verbose=0).history
    assert set(history) >= {"loss", "kl_loss"}
    assert history["loss"][-1] < 0.85 * history["loss"][0], history["loss"]


class Jitter(L.Layer):
    def call(self, inputs, training=None):
        return inputs + 0.01 * gn.random.normal(tuple(inputs.shape)) if training else inputs


def test_a_draw_inside_a_captured_step_falls_back_to_eager():
    with backend.use("cudasim"):
        model = gn.Sequential([L.Input((4,)), Jitter(), L.Dense(1)])
        model.compile(optimizer="sgd", loss="mse", jit_compile=True)
        x = np.ones((16, 4), np.float32)
        with pytest.warns(UserWarning, match="trains eagerly.*seed on the host"):
            model.fit(x, np.zeros((16, 1), np.float32), batch_size=4, epochs=1, verbose=0)
