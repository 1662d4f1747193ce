"""Keras 3 reference values for a two-output model (run with KERAS_BACKEND=jax; not run in CI):
writes multi_output.npz / multi_output.json in the current folder."""
import json

import keras
import numpy as np

rng = np.random.default_rng(0)
x = rng.standard_normal((6, 4)).astype("float32")
ya = rng.integers(0, 3, 6)
yb = rng.standard_normal((6, 2)).astype("float32")
sw = rng.random(6).astype("float32")


def model():
    i = keras.Input((4,))
    h = keras.layers.Dense(5, activation="tanh", name="h")(i)
    a = keras.layers.Dense(3, activation="softmax", name="cls")(h)
    b = keras.layers.Dense(2, name="reg")(h)
    return keras.Model(i, [a, b])


start = model().get_weights()
out = {}
m = model()
m.set_weights(start)
m.compile(optimizer=keras.optimizers.SGD(0.1), loss=["sparse_categorical_crossentropy", "mse"],
          loss_weights=[1.0, 0.5], metrics=[["accuracy"], ["mae"]])
out["evaluate"] = m.evaluate(x, [ya, yb], batch_size=4, verbose=0, return_dict=True)
out["evaluate_weighted"] = m.evaluate(x, [ya, yb], sample_weight=sw, batch_size=4, verbose=0, return_dict=True)
out["fit"] = {k: v[0] for k, v in m.fit(x, {"cls": ya, "reg": yb}, batch_size=3, epochs=1, shuffle=False,
                                         verbose=0).history.items()}
after = m.get_weights()
np.savez("multi_output.npz", x=x, ya=ya, yb=yb, sw=sw, **{f"start{i}": w for i, w in enumerate(start)},
         **{f"after{i}": w for i, w in enumerate(after)})
json.dump(out, open("multi_output.json", "w"), indent=1)
print(out)
