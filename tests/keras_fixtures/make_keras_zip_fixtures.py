"""Write the ``.keras`` fixtures in this folder with real Keras, once (not run in CI).

The same four models as ``make_keras_fixtures.py`` (same seeds, same non-trivial weights), saved
with ``model.save("<name>.keras")``; each must reproduce the ``y`` of ``<name>.io.npz``, so
the tests compare gpunet's predictions on these files with Keras's own. Also
``lambda.keras``: a model with a Lambda layer, which gpunet must refuse to load (it would run
code from the file). Run as::

    cd tests/keras_fixtures && KERAS_BACKEND=jax python make_keras_zip_fixtures.py

(Keras 3.15.1, JAX CPU backend.)
"""
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

from make_keras_fixtures import HERE, INPUT_SHAPES, MODELS, make_weights_nontrivial  # noqa: E402


def make_zip_fixture(name, seed):
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = MODELS[name]()
    make_weights_nontrivial(model, np.random.default_rng(seed + 1))
    recorded = np.load(os.path.join(HERE, f"{name}.io.npz"))
    np.testing.assert_allclose(model.predict(recorded["x"], verbose=0), recorded["y"], rtol=1e-5, atol=1e-6)
    path = os.path.join(HERE, f"{name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(recorded["x"], verbose=0), recorded["y"], rtol=1e-5, atol=1e-6)
    print(f"{name}.keras: reproduces {name}.io.npz")


def make_misc_fixture():
    """The layers the four models lack: Activation, ReLU, AveragePooling2D, Dropout, Reshape,
    regularizers and constraints; saved with its inputs and outputs as misc.io.npz."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(60)
    model = keras.Sequential([
        keras.Input((6, 6, 2)),
        layers.Conv2D(3, 3, activation="tanh", kernel_regularizer="l2",
                      kernel_constraint=keras.constraints.MaxNorm(1.5, axis=[0, 1, 2])),
        layers.Activation("sigmoid"), layers.ReLU(max_value=0.6, threshold=0.1), layers.AveragePooling2D(2),
        layers.Dropout(0.3), layers.Reshape((6, 2)), layers.Flatten(),
        layers.Dense(4, activation="softmax", bias_regularizer=keras.regularizers.L1L2(0.01, 0.02)),
    ])
    make_weights_nontrivial(model, np.random.default_rng(61))
    x = np.random.default_rng(62).standard_normal((2, 6, 6, 2)).astype("float32")
    y = model.predict(x, verbose=0)
    np.savez(os.path.join(HERE, "misc.io.npz"), x=x, y=y)
    model.save(os.path.join(HERE, "misc.keras"))


def make_lambda_fixture():
    keras.backend.clear_session()
    inputs = keras.Input((3,))
    outputs = layers.Dense(2)(layers.Lambda(lambda t: t * 2.0)(inputs))
    keras.Model(inputs, outputs).save(os.path.join(HERE, "lambda.keras"))


if __name__ == "__main__":
    for index, model_name in enumerate(MODELS):
        make_zip_fixture(model_name, seed=10 * (index + 1))
    make_misc_fixture()
    make_lambda_fixture()
