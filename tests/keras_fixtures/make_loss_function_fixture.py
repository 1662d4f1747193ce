"""Writes loss_functions.npz with Keras 3 (run by hand; CI never imports keras): each of Keras's
loss functions (keras.losses.mean_squared_error ...) on fixed inputs, per-sample values."""
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(11)
probs = rng.dirichlet(np.ones(5), (4, 3)).astype("float32")          # (4, 3, 5) rows summing to 1
onehot = np.eye(5, dtype="float32")[rng.integers(0, 5, (4, 3))]
labels = rng.integers(0, 5, (4, 3)).astype("int32")
logits = rng.normal(0, 2, (4, 3, 5)).astype("float32")
real = rng.normal(0, 2, (4, 3, 5)).astype("float32")
target = rng.normal(0, 2, (4, 3, 5)).astype("float32")
positive = rng.uniform(0.1, 3, (4, 3, 5)).astype("float32")
binary = (rng.random((4, 3, 5)) > 0.5).astype("float32")
unit = rng.uniform(0.05, 0.95, (4, 3, 5)).astype("float32")
L = keras.losses
out = dict(probs=probs, onehot=onehot, labels=labels, logits=logits, real=real, target=target, positive=positive,
           binary=binary, unit=unit)
cases = {
    "mean_squared_error": L.mean_squared_error(target, real),
    "mean_absolute_error": L.mean_absolute_error(target, real),
    "mean_absolute_percentage_error": L.mean_absolute_percentage_error(target, real),
    "mean_squared_logarithmic_error": L.mean_squared_logarithmic_error(positive, real),
    "kl_divergence": L.kl_divergence(onehot, probs),
    "poisson": L.poisson(positive, unit),
    "huber": L.huber(target, real, delta=1.5),
    "log_cosh": L.log_cosh(target, real),
    "hinge": L.hinge(binary, real),
    "squared_hinge": L.squared_hinge(binary, real),
    "binary_crossentropy": L.binary_crossentropy(binary, unit),
    "binary_crossentropy_logits_smooth": L.binary_crossentropy(binary, real, from_logits=True, label_smoothing=0.1),
    "categorical_crossentropy": L.categorical_crossentropy(onehot, probs),
    "categorical_crossentropy_logits_smooth": L.categorical_crossentropy(onehot, logits, from_logits=True,
                                                                         label_smoothing=0.2),
    "sparse_categorical_crossentropy": L.sparse_categorical_crossentropy(labels, probs),
    "sparse_categorical_crossentropy_logits_ignore": L.sparse_categorical_crossentropy(labels, logits, from_logits=True,
                                                                                       ignore_class=2),
}
out.update({f"out_{k}": np.asarray(v) for k, v in cases.items()})
np.savez(os.path.join(HERE, "loss_functions.npz"), **out)
print("keras", keras.__version__, {k: np.asarray(v).shape for k, v in cases.items()})
