"""Mixed precision end to end on a kernel backend (issue 11): a small CNN under mixed_bfloat16 /
mixed_float16 trains with the templated kernels (cudasim; a GPU's cuda backend for float16) as
it does on the numpy reference, from the same weights and batches."""
import numpy as np
import pytest
from sklearn.datasets import load_digits

import gpunet as gn
from gpunet import layers, mixed_precision

from checks import assert_close


def _cnn():
    return gn.Sequential([
        gn.Input((8, 8, 1)),
        layers.Conv2D(4, 3, padding="same", activation="relu"), layers.BatchNormalization(),
        layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10),
        layers.Activation("softmax", dtype="float32")])


def _train(backend_name, policy, x, y, weights):
    with gn.backend.use(backend_name):
        mixed_precision.set_global_policy(policy)
        model = _cnn()
        mixed_precision.set_global_policy("float32")
        model.set_weights(weights)
        model.compile(optimizer=gn.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
        losses = [float(model.train_on_batch(x[i:i + 16], y[i:i + 16])) for i in (0, 16, 0)]
        return losses, model.predict(x[:8], verbose=0), model.get_weights(), model.layers[0].compute_dtype


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_a_mixed_cnn_trains_on_the_kernels_as_on_numpy(kernel_backend, policy):
    if kernel_backend == "cuda" and policy == "mixed_bfloat16":
        pytest.skip("bfloat16 on the cuda backend: CuPy has no bfloat16 dtype (docs/mixed-precision.md)")
    digits = load_digits()
    x, y = (digits.images[:32] / 16.0).astype(np.float32)[..., None], digits.target[:32]
    with gn.backend.use("numpy"):
        weights = _cnn().get_weights()
    ref_losses, ref_pred, ref_weights, _ = _train("numpy", policy, x, y, weights)
    losses, pred, trained, compute = _train(kernel_backend, policy, x, y, weights)
    assert compute == policy.split("_")[1] and pred.dtype == np.float32
    assert all(w.dtype == np.float32 for w in trained)
    # Both round each activation once to the 16-bit type; float32 sums in another order move a
    # value by an ulp of the 16-bit type now and then, and three steps carry that into the weights
    # (measured: losses within 2e-4 relative, predictions 5e-5, weights 2e-4 apart).
    assert_close(losses, ref_losses, rtol=2e-3, atol=1e-4, what="losses")
    assert_close(pred, ref_pred, rtol=1e-2, atol=1e-3, what="predictions")
    for got, want in zip(trained, ref_weights, strict=True):
        assert_close(got, want, rtol=1e-2, atol=1e-3, what="trained weights")
