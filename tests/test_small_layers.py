"""Identity, Permute, UnitNormalization and ActivityRegularization against their Keras formulas,
in models (values, gradients on the tape and in fit, saving)."""
import numpy as np
import pytest

import gpunet as gn
from checks import assert_close


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_permute_moves_axes_and_its_gradient_moves_back():
    x = _x((2, 3, 4, 5))
    model = gn.Sequential([gn.Input((3, 4, 5)), gn.layers.Permute((3, 1, 2))])
    assert model.output_shape == (None, 5, 3, 4)
    assert np.array_equal(model.predict(x, verbose=0), np.transpose(x, (0, 3, 1, 2)))
    tx = gn.ops.convert_to_tensor(x)
    seed = _x((2, 5, 3, 4), seed=1)
    with gn.GradientTape() as tape:
        tape.watch(tx)
        y = gn.ops.sum(model(tx) * seed)
    grad = gn.ops.convert_to_numpy(tape.gradient(y, tx))
    assert np.array_equal(grad, np.transpose(seed, (0, 2, 3, 1)))


@pytest.mark.parametrize("dims", [(1, 1), (0, 1), (1, 3)])
def test_permute_refuses_what_is_not_a_permutation_of_the_feature_axes(dims):
    with pytest.raises(ValueError, match="permutation of 1..2"):
        gn.layers.Permute(dims)


@pytest.mark.parametrize("axis", [-1, (1, 2)])
def test_unit_normalization_gives_unit_norms(axis):
    x = _x((3, 4, 5))
    x[0, 1] = 0.0   # a zero vector stays zero (Keras caps 1/norm at 1e12)
    y = gn.Sequential([gn.Input((4, 5)), gn.layers.UnitNormalization(axis=axis)]).predict(x, verbose=0)
    norms = np.sqrt(np.sum(x.astype(np.float64) ** 2, axis=axis, keepdims=True))
    expected = np.where(norms > 0, x / np.where(norms > 0, norms, 1), 0)
    assert_close(y, expected, rtol=1e-5, atol=1e-6)


def test_activity_regularization_adds_keras_penalty_and_gradient():
    """loss = mse + (l1 * sum|h| + l2 * sum h**2) / batch, h the Dense output; fit's step equals
    one SGD step on that loss computed by hand."""
    x, y = _x((4, 3)), _x((4, 2), seed=1)
    gn.utils.set_random_seed(0)
    model = gn.Sequential([gn.Input((3,)), gn.layers.Dense(2), gn.layers.ActivityRegularization(l1=0.01, l2=0.1)])
    kernel, bias = model.get_weights()
    model.compile(optimizer=gn.optimizers.SGD(0.5), loss="mse")
    loss = model.train_on_batch(x, y)
    h = x.astype(np.float64) @ kernel + bias
    penalty = (0.01 * np.abs(h).sum() + 0.1 * (h ** 2).sum()) / 4
    assert loss == pytest.approx(np.mean((h - y) ** 2) + penalty, rel=1e-5)
    dh = 2 * (h - y) / h.size + (0.01 * np.sign(h) + 0.2 * h) / 4
    new_kernel, new_bias = model.get_weights()
    assert_close(new_kernel, kernel - 0.5 * x.T @ dh, rtol=1e-5, atol=1e-6)
    assert_close(new_bias, bias - 0.5 * dh.sum(axis=0), rtol=1e-5, atol=1e-6)


def test_small_layers_save_and_load(tmp_path):
    model = gn.Sequential([gn.Input((3, 4)), gn.layers.Identity(), gn.layers.Permute((2, 1)),
                           gn.layers.UnitNormalization(), gn.layers.ActivityRegularization(l2=0.5),
                           gn.layers.Flatten(), gn.layers.Dense(2)])
    x = _x((2, 3, 4))
    path = str(tmp_path / "small.keras")
    model.save(path)
    loaded = gn.models.load_model(path)
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    assert loaded.layers[3].l2 == 0.5 and loaded.layers[1].dims == (2, 1)
    assert np.array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
