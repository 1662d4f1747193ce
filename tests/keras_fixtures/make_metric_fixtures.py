"""Keras 3's results for the confusion-matrix and score metrics, written once to ``metrics.npz``
(not run in CI). Each case updates a fresh Keras metric with two batches ``<i>_y0, <i>_p0`` and
``<i>_y1, <i>_p1`` and records ``<i>_result``; ``cases`` is the JSON list of
``[class name, kwargs, input kind]``. Run as
``cd tests/keras_fixtures && KERAS_BACKEND=jax python make_metric_fixtures.py`` (Keras 3.15.1).
"""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = [
    ["MeanIoU", {"num_classes": 4}, "ids"],
    ["MeanIoU", {"num_classes": 4, "ignore_class": 0, "sparse_y_pred": False}, "ids_scores"],
    ["IoU", {"num_classes": 4, "target_class_ids": [1, 3]}, "ids"],
    ["BinaryIoU", {}, "binary"], ["BinaryIoU", {"target_class_ids": [1], "threshold": 0.3}, "binary"],
    ["OneHotIoU", {"num_classes": 4, "target_class_ids": [0, 2]}, "one_hot"],
    ["OneHotMeanIoU", {"num_classes": 4}, "one_hot"],
    ["Precision", {}, "binary"], ["Recall", {}, "binary"],
    ["Precision", {"thresholds": [0.7, 0.2, 0.5]}, "binary"], ["Recall", {"class_id": 2}, "one_hot"],
    ["AUC", {}, "binary"], ["AUC", {"curve": "PR"}, "binary"], ["AUC", {"num_thresholds": 13}, "binary"],
    ["AUC", {"curve": "PR", "summation_method": "minoring"}, "binary"],
    ["AUC", {"from_logits": True}, "binary_logits"],
    ["F1Score", {}, "one_hot"], ["F1Score", {"average": "macro", "threshold": 0.3}, "one_hot"],
    ["FBetaScore", {"average": "micro", "beta": 2.0}, "one_hot"],
    ["FBetaScore", {"average": "weighted", "beta": 0.5}, "one_hot"],
    ["TopKCategoricalAccuracy", {"k": 2}, "one_hot"], ["SparseTopKCategoricalAccuracy", {"k": 2}, "ids_scores"],
    ["RootMeanSquaredError", {}, "real"],
]


def batch(kind, rng):
    if kind == "ids":
        return rng.integers(0, 4, (3, 5)).astype(float), rng.integers(0, 4, (3, 5)).astype(float)
    if kind == "ids_scores":
        return rng.integers(0, 4, (12,)).astype(float), rng.uniform(0, 1, (12, 4))
    if kind == "binary":
        return rng.integers(0, 2, (40,)).astype(float), rng.uniform(0, 1, (40,))
    if kind == "binary_logits":
        return rng.integers(0, 2, (40,)).astype(float), rng.normal(0, 2, (40,))
    if kind == "one_hot":
        return np.eye(4)[rng.integers(0, 4, 12)], rng.uniform(0, 1, (12, 4))
    return rng.normal(0, 1, (6, 3)), rng.normal(0, 1, (6, 3))


def main():
    rng = np.random.default_rng(11)
    arrays = {"cases": np.array(json.dumps(CASES))}
    for index, (name, kwargs, kind) in enumerate(CASES):
        metric = getattr(keras.metrics, name)(**kwargs)
        for b in range(2):
            y, p = (a.astype("float32") for a in batch(kind, rng))
            if kind == "binary" and b == 0:
                p[:3] = [0.5, 0.2, 0.7]   # predictions exactly on thresholds
            metric.update_state(y, p)
            arrays[f"{index}_y{b}"], arrays[f"{index}_p{b}"] = y, p
        arrays[f"{index}_result"] = np.asarray(metric.result(), dtype=np.float64)
        print(f"{index:2d} {name} {kwargs}: {arrays[f'{index}_result']}")
    np.savez(os.path.join(HERE, "metrics.npz"), **arrays)


if __name__ == "__main__":
    main()
