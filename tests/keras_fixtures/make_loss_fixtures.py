"""Keras 3's values and gradients for the losses, written once to ``losses.npz`` (not run in CI).

For each case: ``<i>_y`` (y_true), ``<i>_p`` (y_pred), ``<i>_value`` = ``loss(y_true, y_pred)``
and ``<i>_grad`` = its gradient with respect to y_pred (``jax.grad``), float64 inputs cast to
float32 as Keras computes; ``cases`` is the JSON list of ``[class name, kwargs, input kind]``.
Run as ``cd tests/keras_fixtures && KERAS_BACKEND=jax python make_loss_fixtures.py`` (Keras 3.15.1).
"""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = [
    ["Huber", {}, "real"], ["Huber", {"delta": 0.5}, "real"], ["LogCosh", {}, "real"],
    ["Poisson", {}, "counts"], ["MeanSquaredLogarithmicError", {}, "positive"],
    ["MeanAbsolutePercentageError", {}, "real"], ["KLDivergence", {}, "distributions"],
    ["CosineSimilarity", {}, "real"], ["Hinge", {}, "binary"], ["Hinge", {}, "signs"],
    ["SquaredHinge", {}, "binary"], ["CategoricalHinge", {}, "one_hot"],
    ["BinaryFocalCrossentropy", {}, "binary"],
    ["BinaryFocalCrossentropy", {"apply_class_balancing": True, "gamma": 1.5, "label_smoothing": 0.1}, "binary"],
    ["BinaryFocalCrossentropy", {"from_logits": True, "alpha": 0.4}, "binary_logits"],
    ["CategoricalFocalCrossentropy", {}, "one_hot"],
    ["CategoricalFocalCrossentropy", {"from_logits": True, "label_smoothing": 0.1, "gamma": 3.0}, "one_hot_logits"],
    ["Dice", {}, "mask"], ["Tversky", {"alpha": 0.3, "beta": 0.7}, "mask"],
    ["CategoricalCrossentropy", {"label_smoothing": 0.1}, "one_hot"],
    ["CategoricalCrossentropy", {"label_smoothing": 0.2, "from_logits": True}, "one_hot_logits"],
    ["BinaryCrossentropy", {"label_smoothing": 0.2}, "binary"],
    ["BinaryCrossentropy", {"label_smoothing": 0.1, "from_logits": True}, "binary_logits"],
]


def inputs(kind, rng):
    shape = (2, 3, 3, 1) if kind == "mask" else (4, 5)
    if kind == "real":
        return rng.normal(0, 1, shape), rng.normal(0, 1.5, shape)
    if kind == "counts":
        return rng.integers(0, 4, shape).astype(float), rng.uniform(0.1, 3, shape)
    if kind == "positive":
        return rng.uniform(0, 3, shape), rng.uniform(0, 3, shape)
    if kind == "distributions":
        y, p = rng.uniform(0, 1, shape), rng.uniform(0.01, 1, shape)
        return y / y.sum(-1, keepdims=True), p / p.sum(-1, keepdims=True)
    if kind in ("binary", "mask"):
        return rng.integers(0, 2, shape).astype(float), rng.uniform(0.02, 0.98, shape)
    if kind == "signs":
        return rng.choice([-1.0, 1.0], shape), rng.normal(0, 1, shape)
    if kind == "binary_logits":
        return rng.integers(0, 2, shape).astype(float), rng.normal(0, 2, shape)
    labels = np.eye(shape[-1])[rng.integers(0, shape[-1], shape[0])]
    if kind == "one_hot":
        p = rng.uniform(0.05, 1, shape)
        return labels, p / p.sum(-1, keepdims=True) * 1.3   # rows not summing to 1
    return labels, rng.normal(0, 2, shape)   # one_hot_logits


def main():
    rng = np.random.default_rng(7)
    arrays = {"cases": np.array(json.dumps(CASES))}
    for index, (name, kwargs, kind) in enumerate(CASES):
        y, p = (a.astype("float32") for a in inputs(kind, rng))
        loss = getattr(keras.losses, name)(**kwargs)
        value = float(loss(y, p))
        grad = np.asarray(jax.grad(lambda q: loss(y, q))(p))
        arrays.update({f"{index}_y": y, f"{index}_p": p, f"{index}_value": np.float64(value), f"{index}_grad": grad})
        print(f"{index:2d} {name} {kwargs}: {value:.6f}")
    np.savez(os.path.join(HERE, "losses.npz"), **arrays)


if __name__ == "__main__":
    main()
