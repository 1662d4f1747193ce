"""Keras 3 weight files of layers that hold layers, written once (not run in CI):
``nested_layer.weights.h5`` (a functional model with a custom layer holding a Dense, a list of two
Denses, and a variable of its own) and ``subclassed.weights.h5`` (a subclassed model holding that
layer and a Dense head), with ``held_layers.io.npz``: the input ``x`` and both models' predictions.
Run as ``cd tests/keras_fixtures && KERAS_BACKEND=jax python make_held_layer_fixtures.py``; the gpunet
twins are in tests/test_saving_nested.py.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class Gate(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3, activation="tanh")
        self.convs = [keras.layers.Dense(2), keras.layers.Dense(2)]

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(2,), initializer="random_normal", name="scale")

    def call(self, x):
        return self.convs[1](self.convs[0](self.dense(x))) * self.scale


class Sub(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.g = Gate()
        self.head = keras.layers.Dense(1)

    def call(self, x):
        return self.head(self.g(x))


def main():
    keras.utils.set_random_seed(3)
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    inputs = keras.Input((4,))
    functional = keras.Model(inputs, keras.layers.Dense(1)(Gate()(inputs)))
    functional.save_weights(os.path.join(HERE, "nested_layer.weights.h5"))
    sub = Sub()
    sub(x)
    sub.save_weights(os.path.join(HERE, "subclassed.weights.h5"))
    np.savez(os.path.join(HERE, "held_layers.io.npz"), x=x, functional=np.asarray(functional.predict(x, verbose=0)),
             subclassed=np.asarray(sub.predict(x, verbose=0)))


if __name__ == "__main__":
    main()
