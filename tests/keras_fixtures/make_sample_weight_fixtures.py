"""Keras 3 reference values for sample_weight / class_weight (run with KERAS_BACKEND=jax)."""
# Not run in CI (needs keras + jax): writes sample_weights.npz / .json in the current folder.
import numpy as np, keras, json
rng = np.random.default_rng(3)
out = {}
# losses with per-sample and per-pixel weights
yp = rng.random((4, 3, 3, 5)).astype("float32") + 0.05; yp /= yp.sum(-1, keepdims=True)
lab = rng.integers(0, 5, (4, 3, 3))
onehot = np.eye(5, dtype="float32")[lab]
wpix = rng.random((4, 3, 3)).astype("float32"); ws = rng.random(4).astype("float32")
logits = rng.standard_normal((4, 3, 3, 5)).astype("float32")
yb = (rng.random((4, 3, 3, 2)) > 0.5).astype("float32"); pb = rng.random((4, 3, 3, 2)).astype("float32") * 0.9 + 0.05
xb = rng.standard_normal((4, 3, 3, 2)).astype("float32")
L = keras.losses
cases = {
 "scce_pix": L.SparseCategoricalCrossentropy()(lab, yp, sample_weight=wpix),
 "cce_pix": L.CategoricalCrossentropy()(onehot, yp, sample_weight=wpix),
 "cce_logits_pix": L.CategoricalCrossentropy(from_logits=True)(onehot, logits, sample_weight=wpix),
 "scce_logits_pix": L.SparseCategoricalCrossentropy(from_logits=True)(lab, logits, sample_weight=wpix),
 "bce_pix": L.BinaryCrossentropy()(yb, pb, sample_weight=wpix),
 "bce_logits_pix": L.BinaryCrossentropy(from_logits=True)(yb, xb, sample_weight=wpix),
 "mse_pix": L.MeanSquaredError()(yb, pb, sample_weight=wpix),
 "mae_pix": L.MeanAbsoluteError()(yb, pb, sample_weight=wpix),
 "mse_sample": L.MeanSquaredError()(yb[:, 0, 0], pb[:, 0, 0], sample_weight=ws),
 "scce_sample": L.SparseCategoricalCrossentropy()(lab[:, 0, 0], yp[:, 0, 0], sample_weight=ws),
}
# fit with class_weight: one SGD step, and evaluate with sample_weight + weighted_metrics
x = rng.standard_normal((6, 4)).astype("float32"); y = np.array([0, 1, 2, 2, 1, 0])
k = rng.standard_normal((4, 3)).astype("float32") * 0.5; b = np.zeros(3, "float32")
def model():
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    m.set_weights([k, b]); return m
m = model(); m.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
h = m.fit(x, y, batch_size=6, epochs=1, class_weight={0: 2.0, 2: 0.5}, shuffle=False, verbose=0)
sw = rng.random(6).astype("float32")
m2 = model(); m2.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                         weighted_metrics=["accuracy"])
ev = m2.evaluate(x, y, sample_weight=sw, batch_size=4, verbose=0, return_dict=True)
np.savez("sample_weights.npz", yp=yp, lab=lab, wpix=wpix, ws=ws, logits=logits, yb=yb, pb=pb, xb=xb, x=x, y=y, k=k, sw=sw,
         kernel_after_class_weight=m.get_weights()[0], bias_after_class_weight=m.get_weights()[1],
         **{k_: np.asarray(v) for k_, v in cases.items()})
json.dump({"fit_class_weight_loss": h.history["loss"][0], "evaluate_sample_weight": ev}, open("sample_weights.json", "w"), indent=1)
print(json.load(open("sample_weights.json")))
