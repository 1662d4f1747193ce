"""A Python-function loss reads sample weights in float32 (the loss value's dtype), not in a
16-bit y_pred's dtype, which would round them."""
import ml_dtypes
import numpy as np

import gpunet as gn
from gpunet import ops
from gpunet.autodiff.functions import LossFunctionWrapper


def _squared(y_true, y_pred):
    return ops.mean(ops.square(y_pred - y_true), axis=-1)


def test_function_loss_keeps_sample_weights_float32():
    bf16 = np.dtype(ml_dtypes.bfloat16)
    rng = np.random.default_rng(3)
    y_pred = rng.standard_normal((4, 3)).astype(bf16)
    y_true = rng.standard_normal((4, 3)).astype(bf16)
    weight = np.array([1.001, 0.3, 2.0, 0.7], np.float32)     # bfloat16 holds 1.001 as 1.0
    backend = gn.backend.current()
    value = LossFunctionWrapper(_squared).device_value(backend.asarray(y_true, bf16), backend.asarray(y_pred, bf16),
                                                       backend.asarray(weight))
    value = np.asarray(backend.to_numpy(value))
    assert value.dtype == np.float32
    per_sample = np.asarray(_squared(y_true, y_pred)).astype(np.float64)   # the function's own bf16 values
    expected = float(np.sum(per_sample * weight.astype(np.float64)) / 4)
    assert abs(float(value) - expected) <= 2e-6 * abs(expected), (float(value), expected)
