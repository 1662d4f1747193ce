"""A Keras 3 ``.keras`` file of a functional model with a shared layer, written once (not run in
CI): ``shared_layer.keras`` (Inputs a, b; Dense "shared" called on a, on b and on its own second
output; Concatenate; Dense head) and ``shared_layer.io.npz`` (inputs x, z and Keras's prediction y).
Run as ``cd tests/keras_fixtures && KERAS_BACKEND=jax python make_shared_layer_fixtures.py``.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    keras.utils.set_random_seed(5)
    layers = keras.layers
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    shared = layers.Dense(4, activation="relu", name="shared")
    first, second = shared(a), shared(b)
    out = layers.Dense(1, name="head")(layers.Concatenate(name="cat")([first, shared(second)]))
    model = keras.Model([a, b], out)
    model.save(os.path.join(HERE, "shared_layer.keras"))
    rng = np.random.default_rng(0)
    x, z = rng.random((3, 4), dtype=np.float32), rng.random((3, 4), dtype=np.float32)
    np.savez(os.path.join(HERE, "shared_layer.io.npz"), x=x, z=z, y=np.asarray(model.predict([x, z], verbose=0)))


if __name__ == "__main__":
    main()
