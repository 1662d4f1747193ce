"""Dtype policies (issue 11), Keras 3's API and semantics: gn.mixed_precision, the layers' dtype
properties, autocast through models and call() layers, float32 weights and gradients, and the
errors for what a layer cannot compute in. Training and saving across policies:
test_mixed_precision_training.py."""
import ml_dtypes
import numpy as np
import pytest

import gpunet as gn
from gpunet import layers, mixed_precision, ops
from gpunet.primitives import precision

from checks import assert_close
from test_custom_layers import Scale   # the call() layer y = x * scale + shift

# The policies' wiring on the numpy reference; end to end on cudasim once every kernel family takes
# bf16 / fp16 arrays (each family tests its own kernels against numpy in tests/test_mixed_*.py).
pytestmark = pytest.mark.reference

BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)

# name -> (compute_dtype, variable_dtype), as Keras 3.15 reports them
TABLE = {"float32": ("float32", "float32"), "mixed_bfloat16": ("bfloat16", "float32"),
         "mixed_float16": ("float16", "float32"), "bfloat16": ("bfloat16", "bfloat16"),
         "float16": ("float16", "float16"), "float64": ("float64", "float64")}


# -- the policy objects --------------------------------------------------------------------------
def test_policies_have_keras_names_dtypes_equality_and_config():
    for name, (compute, variable) in TABLE.items():
        policy = mixed_precision.DTypePolicy(name)
        assert (policy.name, policy.compute_dtype, policy.variable_dtype) == (name, compute, variable)
        assert policy == mixed_precision.Policy(name) and policy != name
        assert repr(policy) == f'<DTypePolicy "{name}">'
        assert mixed_precision.DTypePolicy.from_config(policy.get_config()) == policy
    assert mixed_precision.DTypePolicy("mixed_bfloat16") != mixed_precision.DTypePolicy("mixed_float16")


def test_global_policy_and_its_keras_config_spellings():
    assert mixed_precision.global_policy().name == "float32"
    mixed_precision.set_global_policy("mixed_bfloat16")
    assert gn.config.dtype_policy() == mixed_precision.DTypePolicy("mixed_bfloat16")
    assert mixed_precision.DTypePolicy().name == "mixed_bfloat16"   # no name: the global one, as Keras
    gn.config.set_dtype_policy(mixed_precision.DTypePolicy("mixed_float16"))
    assert mixed_precision.global_policy().compute_dtype == "float16"
    mixed_precision.set_global_policy(None)
    assert mixed_precision.global_policy().name == "float32"


def test_unknown_and_non_float_policies_are_refused_with_the_accepted_names():
    with pytest.raises(ValueError, match=r"'mixed_bfloat16'.*'mixed_float16'.*'bfloat16'") as error:
        mixed_precision.set_global_policy("mixed_bfloat")
    assert "'mixed_bfloat'" in str(error.value)
    assert mixed_precision.DTypePolicy("int32").compute_dtype == "int32"   # valid in Keras...
    with pytest.raises(ValueError, match="set_global_policy takes a floating policy.*'int32'"):
        mixed_precision.set_global_policy("int32")                          # ...but not globally


# -- layers ----------------------------------------------------------------------------------------
def test_layers_take_the_global_policy_at_construction_and_keras_properties():
    before = layers.Dense(2)
    mixed_precision.set_global_policy("mixed_bfloat16")
    after, own = layers.Dense(2), layers.Dense(2, dtype="float32")
    by_policy = layers.Conv2D(2, 3, dtype=mixed_precision.DTypePolicy("mixed_float16"))
    assert before.dtype_policy.name == "float32" and after.dtype_policy.name == "mixed_bfloat16"
    assert (after.compute_dtype, after.variable_dtype, after.dtype) == ("bfloat16", "float32", "float32")
    assert own.compute_dtype == "float32" and by_policy.compute_dtype == "float16"
    after.build((None, 3))
    assert [w.dtype for w in after.weights] == [np.float32, np.float32]
    pure = layers.Dense(2, dtype="bfloat16")
    pure.build((None, 3))
    assert [w.dtype for w in pure.weights] == [BF16, BF16] and pure.dtype == "bfloat16"
    assert after.get_config()["dtype"] == {"module": "keras", "class_name": "DTypePolicy",
                                           "config": {"name": "mixed_bfloat16"}, "registered_name": None}
    assert layers.Dense.from_config(after.get_config()).dtype_policy == after.dtype_policy


def _small_cnn(final_dtype=None):
    return gn.Sequential([
        gn.Input((6, 6, 2)),
        layers.Conv2D(4, 3, padding="same", activation="relu"), layers.BatchNormalization(),
        layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(5),
        layers.Activation("softmax", dtype=final_dtype)])


@pytest.mark.parametrize("policy, half", [("mixed_bfloat16", BF16), ("mixed_float16", F16)])
def test_outputs_have_each_layers_compute_dtype_and_a_float32_layer_casts_up(policy, half):
    mixed_precision.set_global_policy(policy)
    model = _small_cnn(final_dtype="float32")
    x = np.random.default_rng(0).standard_normal((3, 6, 6, 2)).astype(np.float32)
    a = gn.backend.current().asarray(x)
    for layer in model.layers:
        a = layer(a)
        assert a.dtype == (np.float32 if layer is model.layers[-1] else half), layer.name
    assert model.predict(x, verbose=0).dtype == np.float32
    bn = model.layers[1]
    assert all(w.dtype == np.float32 for w in bn.weights)   # statistics and gamma / beta stay float32
    reference = _small_cnn()
    reference.set_weights(model.get_weights())
    tol = 8 * float(np.finfo(half).eps) if half == F16 else 2.0 ** -5
    assert_close(model.predict(x, verbose=0), reference.predict(x, verbose=0), rtol=tol, atol=tol)


def test_weight_gradients_are_float32_and_input_gradients_the_input_dtype():
    mixed_precision.set_global_policy("mixed_bfloat16")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    dense = layers.Dense(3, activation="tanh")
    dense.build((None, 5))
    y = dense.forward(x, training=True)
    assert y.dtype == BF16
    dx = dense.backward(np.ones((4, 3), np.float32))    # a float32 gradient from a float32 loss
    assert dx.dtype == np.float32 and [g.dtype for g in dense.grads] == [np.float32, np.float32]
    bn = layers.BatchNormalization()
    bn.forward(x.astype(BF16), training=True)
    assert bn.moving_mean.dtype == np.float32 and not np.allclose(bn.moving_mean, 0)
    assert bn.backward(np.ones((4, 5), BF16)).dtype == BF16 and [g.dtype for g in bn.grads] == [np.float32] * 2


def test_call_layers_autocast_inputs_and_weights_and_return_float32_gradients():
    mixed_precision.set_global_policy("mixed_bfloat16")
    layer = Scale()
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    y = layer(x)
    assert y.dtype == BF16 and [w.dtype for w in layer.weights] == [np.float32, np.float32]
    with gn.GradientTape() as tape:
        loss = ops.sum(ops.cast(layer(ops.convert_to_tensor(x)), "float32"))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert [g.dtype for g in grads] == [np.float32, np.float32]
    assert_close(gn.ops.convert_to_numpy(grads[0]), x.astype(BF16).astype(np.float32).sum(axis=0), rtol=1e-2)
    assert_close(gn.ops.convert_to_numpy(grads[1]), [2.0, 2.0, 2.0])


# -- bad input ------------------------------------------------------------------------------------
def test_a_layer_refuses_a_dtype_it_cannot_compute_in_naming_itself():
    with pytest.raises(ValueError, match=r"Dense 'head' cannot compute in dtype 'int32'.*'float32', "
                                         r"'mixed_bfloat16'"):
        layers.Dense(2, name="head", dtype="int32")
    with pytest.raises(ValueError, match=r"Conv2D 'c'.*dtype='mixed_float32'.*expected one of"):
        layers.Conv2D(2, 3, name="c", dtype="mixed_float32")


def test_bfloat16_without_ml_dtypes_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(precision, "BFLOAT16", None)
    with pytest.raises(ImportError, match=r"Dense 'd'.*'bfloat16' needs the ml_dtypes package.*float16"):
        layers.Dense(2, name="d", dtype="mixed_bfloat16")
    with pytest.raises(ImportError, match="set_global_policy.*ml_dtypes"):
        mixed_precision.set_global_policy("bfloat16")


def test_float64_on_a_kernel_backend_names_the_layer_and_the_dtypes_it_takes():
    layer = layers.Dense(2, name="probe", dtype="float64")
    layer.build((None, 3))
    with gn.backend.use("cudasim"):
        x = gn.backend.current().asarray(np.ones((1, 3)), dtype=np.float64)
        with pytest.raises(ValueError, match=r"Dense 'probe' computes in float64.*only the numpy backend.*"
                                             r"'cudasim' backend's kernels take 'float32', 'mixed_bfloat16'"):
            layer.forward(x)


def test_the_fused_softmax_backward_of_a_mixed_dense_returns_float32_gradients():
    mixed_precision.set_global_policy("mixed_bfloat16")
    dense = layers.Dense(4, activation="softmax")
    dense.build((None, 3))
    x = np.random.default_rng(2).standard_normal((5, 3)).astype(np.float32)
    dense.forward(x, training=True)
    assert dense.logits.dtype == BF16
    dx = dense.backward_logits(np.full((5, 4), 0.125, np.float32))   # the loss's float32 gradient
    assert dx.dtype == np.float32 and [g.dtype for g in dense.grads] == [np.float32, np.float32]
    assert_close(dense.grads[1], np.full(4, 0.625), rtol=1e-6)
