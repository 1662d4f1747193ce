"""LayerNormalization, GroupNormalization and PReLU: the kernels (kernels/group_norm.cu,
activation.cu) against the numpy reference on cudasim, the reference against float64 central
differences, the layers against values real Keras computed (weights from Keras's files)."""
import numpy as np
import pytest

import gpunet as gn
from checks import check_backward, compare_with_numpy
from gpunet import layers
from gpunet.primitives import group_norm
from keras_layers import check_against_keras

CASES = {
    "layer_normalization": layers.LayerNormalization,
    "layer_normalization_rms": lambda: layers.LayerNormalization(rms_scaling=True),
    "layer_normalization_nocenter": lambda: layers.LayerNormalization(center=False, epsilon=1e-5),
    "group_normalization": lambda: layers.GroupNormalization(groups=2),
    "group_normalization_default": layers.GroupNormalization,
}


@pytest.mark.parametrize("name", list(CASES))
def test_layer_matches_keras(name):
    check_against_keras(CASES[name](), name, from_file=True)


@pytest.mark.parametrize("name", ["layer_normalization", "layer_normalization_rms", "group_normalization"])
def test_layer_matches_keras_on_kernels(kernel_backend, name):
    check_against_keras(CASES[name](), name, kernel_backend)


GROUP_CASES = [   # shape, groups, pixels per sample, rms
    ((4, 6), 1, 1, False), ((1, 300), 1, 1, False), ((2, 3, 4, 6), 2, 12, False),
    ((3, 5), 1, 1, True), ((2, 3, 3, 8), 4, 9, True), ((1, 5, 7, 4), 4, 35, False),
]


@pytest.mark.parametrize("shape, groups, pixels, rms", GROUP_CASES)
def test_group_norm_kernels_match_numpy(kernel_backend, rng, shape, groups, pixels, rms):
    x = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
    gamma, beta = rng.standard_normal((2, shape[-1])).astype(np.float32)
    y, mean, inv_std = compare_with_numpy(
        kernel_backend, lambda: group_norm.group_norm_forward(x, gamma, beta, groups, pixels, 1e-3, rms),
        ["group_norm_forward"])
    dy = rng.standard_normal(shape).astype(np.float32)
    compare_with_numpy(kernel_backend,
                       lambda: group_norm.group_norm_backward(dy, x, gamma, mean, inv_std, groups, pixels, rms),
                       ["group_norm_backward", "bias_backward", "bias_backward"])


@pytest.mark.reference
@pytest.mark.parametrize("shape, groups, pixels, rms", GROUP_CASES[:5])
def test_group_norm_gradients_match_finite_differences(rng, shape, groups, pixels, rms):
    x = rng.standard_normal(shape) * 2 + 1
    gamma, beta = rng.standard_normal((2, shape[-1]))

    def backward(dy):
        _, mean, inv_std = group_norm.group_norm_forward(x, gamma, beta, groups, pixels, 1e-3, rms)
        dx, dgamma, dbeta = group_norm.group_norm_backward(dy, x, gamma, mean, inv_std, groups, pixels, rms)
        return [dx, dgamma, np.zeros_like(dbeta) if rms else dbeta]   # rms has no beta
    check_backward(lambda *a: group_norm.group_norm_forward(*a, groups, pixels, 1e-3, rms)[0], backward,
                   [x, gamma, beta])


def test_keras_refusals_and_weights():
    with pytest.raises(ValueError, match=r"Number of groups \(32\) cannot be more than the number of channels \(6\)"):
        layers.GroupNormalization()(gn.Input((4, 4, 6)))
    with pytest.raises(ValueError, match=r"Number of groups \(4\) must be a multiple of the number of channels \(6\)"):
        layers.GroupNormalization(groups=4)(gn.Input((4, 4, 6)))
    with pytest.raises(ValueError, match=r"normalises over the last axis only"):
        layers.LayerNormalization(axis=1)(gn.Input((4, 6)))
    ln = layers.LayerNormalization(rms_scaling=True)
    ln(gn.Input((5,)))
    assert ln.weight_names == ["gamma"]
    gnorm = layers.GroupNormalization(groups=2, center=False)
    gnorm(gn.Input((3, 3, 4)))
    assert gnorm.weight_names == ["gamma"] and gnorm.get_config()["groups"] == 2


@pytest.mark.parametrize("name, make", [("prelu", layers.PReLU),
                                        ("prelu_shared", lambda: layers.PReLU(shared_axes=[1, 2]))])
def test_prelu_matches_keras(kernel_backend, name, make):
    check_against_keras(make(), name, from_file=True)
    check_against_keras(make(), name, kernel_backend)


@pytest.mark.parametrize("shape, alpha_shape", [((2, 3, 4, 5), (3, 4, 5)), ((2, 3, 4, 5), (1, 1, 5)),
                                                ((3, 4, 5), (4, 1)), ((2, 3, 4, 5), (3, 1, 1))])
def test_prelu_kernels_match_numpy(kernel_backend, rng, shape, alpha_shape):
    from gpunet.primitives import activation as ops
    x = rng.standard_normal(shape).astype(np.float32)
    alpha = rng.standard_normal(alpha_shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    compare_with_numpy(kernel_backend, lambda: ops.prelu_forward(x, alpha), ["prelu_forward"])
    compare_with_numpy(kernel_backend, lambda: ops.prelu_backward(dy, x, alpha), ["prelu_backward", "bias_backward"])


@pytest.mark.reference
@pytest.mark.parametrize("alpha_shape", [(3, 4, 5), (1, 1, 5), (3, 1, 1)])
def test_prelu_gradients_match_finite_differences(rng, alpha_shape):
    from gpunet.primitives import activation as ops
    x = rng.standard_normal((2, 3, 4, 5))
    x[np.abs(x) < 0.05] = 0.5
    alpha = rng.standard_normal(alpha_shape)
    check_backward(ops.prelu_forward, lambda dy: list(ops.prelu_backward(dy, x, alpha)), [x, alpha])


def test_prelu_layer_weights_and_errors():
    layer = layers.PReLU(shared_axes=[1, 2])
    layer(gn.Input((5, 5, 3)))
    assert layer.weight_names == ["alpha"] and layer.alpha.shape == (1, 1, 3) and not layer.get_weights()[0].any()
    with pytest.raises(ValueError, match=r"PReLU shared_axes must be None or axes >= 1"):
        layers.PReLU(shared_axes=[0])
    with pytest.raises(ValueError, match=r"PReLU 'p' expects inputs matching alpha \(1, 1, 3\)"):
        p = layers.PReLU(shared_axes=[1, 2], name="p")
        p(np.zeros((1, 4, 4, 3), np.float32))
        p(np.zeros((1, 4, 4, 2), np.float32))
