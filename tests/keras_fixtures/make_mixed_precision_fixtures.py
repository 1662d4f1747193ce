"""Write ``mixed.keras`` and ``mixed.io.npz`` with real Keras, once (not run in CI).

A small CNN made under ``keras.mixed_precision.set_global_policy("mixed_bfloat16")`` whose last
layer is ``Activation("softmax", dtype="float32")`` (Keras's advice for mixed models), with
non-trivial weights, saved with ``model.save("mixed.keras")``; ``mixed.io.npz`` holds ``x``, Keras's
``y = model.predict(x)`` (bf16 compute on the JAX CPU backend) and ``w00, w01, ...`` =
``model.get_weights()`` (float32, as every variable of a mixed model). Run as::

    cd tests/keras_fixtures && KERAS_BACKEND=jax python make_mixed_precision_fixtures.py

(Keras 3.15.1, JAX CPU backend.)
"""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def make_mixed_fixture():
    keras.backend.clear_session()
    keras.utils.set_random_seed(70)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = keras.Sequential([
        keras.Input((6, 6, 2)),
        layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.BatchNormalization(),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(5),
        layers.Activation("softmax", dtype="float32"),
    ])
    keras.mixed_precision.set_global_policy("float32")
    rng = np.random.default_rng(71)
    model.set_weights([(rng.standard_normal(w.shape) * 0.5).astype("float32") if i != 5
                       else rng.uniform(0.5, 1.5, w.shape).astype("float32")   # BN moving_variance > 0
                       for i, w in enumerate(model.get_weights())])
    x = np.random.default_rng(72).standard_normal((3, 6, 6, 2)).astype("float32")
    y = model.predict(x, verbose=0)
    assert y.dtype == np.float32 and all(w.dtype == np.float32 for w in model.get_weights())
    weights = {f"w{i:02d}": w for i, w in enumerate(model.get_weights())}
    np.savez(os.path.join(HERE, "mixed.io.npz"), x=x, y=y, **weights)
    model.save(os.path.join(HERE, "mixed.keras"))
    policies = {layer.name: layer.dtype_policy.name for layer in model.layers}
    print("mixed.keras:", json.dumps(policies))


if __name__ == "__main__":
    make_mixed_fixture()
