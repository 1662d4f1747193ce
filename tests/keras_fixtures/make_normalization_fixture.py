"""Writes normalization.keras and normalization.io.npz with Keras 3 (run by hand; CI never imports
keras): a Normalization layer adapted on batches, in a model saved as .keras, with its input,
the adapted statistics and the model's output."""
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
import keras
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(7)
x = rng.normal(3.0, 2.0, (24, 5, 5, 3)).astype("float32")
norm = keras.layers.Normalization(axis=-1, name="norm")
norm.adapt(x)   # (a list of batches would need tensorflow in Keras 3.15)
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((5, 5, 3)), norm, keras.layers.Flatten(), keras.layers.Dense(2)])
model.save(os.path.join(HERE, "normalization.keras"))
everything = keras.layers.Normalization(axis=None)
everything.adapt(x)
np.savez(os.path.join(HERE, "normalization.io.npz"), x=x, mean=np.asarray(norm.mean), variance=np.asarray(norm.variance),
         count=np.asarray(norm.count), y=np.asarray(model.predict(x, verbose=0)),
         normalized=np.asarray(norm(x)), mean_all=np.asarray(everything.mean), variance_all=np.asarray(everything.variance))
print("keras", keras.__version__, "mean", np.asarray(norm.mean).ravel(), "count", np.asarray(norm.count))
