"""Keras 3's loss and weights after two SGD steps of small models with regularizers and
constraints, written once to ``regularizers.npz`` (not run in CI). Per case ``<i>``:
``<i>_w<k>`` the initial weights, ``<i>_loss<s>`` train_on_batch's loss at step s,
``<i>_after<k>`` the weights after both steps, ``<i>_losses`` ``model.losses`` summed after them
(on the last batch's activity). Inputs ``x`` (6, 5, 5, 2), targets ``y_dense`` (6, 3).
Run as ``cd tests/keras_fixtures && KERAS_BACKEND=jax python make_regularizer_fixtures.py``.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from regularizer_models import conv_model, dense_model  # noqa: E402  (the models, shared with the test)

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    rng = np.random.default_rng(3)
    arrays = {"x": rng.normal(0, 1, (6, 5, 5, 2)).astype("float32"),
              "y_dense": rng.normal(0, 1, (6, 3)).astype("float32")}
    for index, build in enumerate([conv_model, dense_model]):
        keras.utils.set_random_seed(index)
        model = build(keras)
        # Biases start away from 0: the L1 penalty's gradient at exactly 0 is backend-dependent
        # (JAX's abs gives 1, TensorFlow's and gpunet's sign give 0).
        model.set_weights([w if w.ndim > 1 else rng.normal(0, 0.2, w.shape).astype("float32")
                           for w in model.get_weights()])
        for k, w in enumerate(model.get_weights()):
            arrays[f"{index}_w{k}"] = w
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        for s in range(2):
            arrays[f"{index}_loss{s}"] = np.float64(model.train_on_batch(arrays["x"], arrays["y_dense"]))
        for k, w in enumerate(model.get_weights()):
            arrays[f"{index}_after{k}"] = w
        model(arrays["x"])
        arrays[f"{index}_losses"] = np.float64(sum(float(l) for l in model.losses))
        print(index, [arrays[f"{index}_loss{s}"] for s in range(2)], arrays[f"{index}_losses"])
    np.savez(os.path.join(HERE, "regularizers.npz"), **arrays)


if __name__ == "__main__":
    main()
