"""Keras 3's weighted metric results and the logs of fit / evaluate with metrics + weighted_metrics,
written once to ``weighted_metrics.npz`` and ``weighted_metrics.json`` (not run in CI). Run as
``cd tests/keras_fixtures && KERAS_BACKEND=jax python make_weighted_metric_fixtures.py`` (Keras 3.15.1).

Metric cases: ``[class name, kwargs, input kind]`` (JSON in ``cases``); each updates a fresh Keras
metric with two weighted batches ``<i>_y<b>, <i>_p<b>, <i>_w<b>`` and records ``<i>_result``
(Mean and Sum take ``update_state(<i>_p<b>, sample_weight=<i>_w<b>)``).
Models: Dense / Conv2D models whose start weights are saved (``<model>_start<k>``), compiled
with ``metrics`` and ``weighted_metrics``; their fit / evaluate / train_on_batch logs go to the JSON;
``weighted_metrics.keras`` is a compiled Dense model as Keras saves it (weighted_metrics in its
compile_config).
"""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = [
    ["SparseCategoricalAccuracy", {}, "labels_per_sample"],
    ["SparseCategoricalAccuracy", {}, "pixel_labels_per_pixel"],
    ["SparseCategoricalAccuracy", {}, "pixel_labels_per_sample"],
    ["CategoricalAccuracy", {}, "one_hot_column_weight"],
    ["BinaryAccuracy", {}, "binary_pixels_per_pixel"],
    ["BinaryAccuracy", {"threshold": 0.3}, "multi_label_per_sample"],
    ["BinaryAccuracy", {}, "binary_pixels_broadcast"],
    ["MeanSquaredError", {}, "real_column_weight"],
    ["MeanAbsoluteError", {}, "real_pixels_per_pixel"],
    ["MeanSquaredError", {}, "real_scalar_weight"],
    ["RootMeanSquaredError", {}, "real_per_sample"],
    ["SparseTopKCategoricalAccuracy", {"k": 2}, "labels_per_sample"],
    ["TopKCategoricalAccuracy", {"k": 2}, "one_hot_column_weight"],
    ["MeanIoU", {"num_classes": 3, "sparse_y_pred": False}, "pixel_labels_per_pixel"],
    ["IoU", {"num_classes": 3, "target_class_ids": [0, 2], "sparse_y_pred": False}, "labels_per_sample"],
    ["Precision", {}, "binary_per_sample"],
    ["Recall", {"thresholds": [0.3, 0.6]}, "multi_label_per_sample"],
    ["AUC", {"num_thresholds": 11}, "binary_per_sample"],
    ["F1Score", {"average": "macro", "threshold": 0.4}, "one_hot_per_sample"],
    ["Mean", {}, "values_leading_weight"], ["Sum", {}, "values_leading_weight"],
]


def batch(kind, rng):
    """(y_true, y_pred, sample_weight) of one batch."""
    w = lambda *shape: rng.uniform(0, 2, shape).round(2)
    if kind == "labels_per_sample":
        return rng.integers(0, 3, (6,)), rng.uniform(0, 1, (6, 3)), w(6)
    if kind.startswith("pixel_labels"):
        weight = w(2, 3, 4) if kind.endswith("per_pixel") else w(2)
        return rng.integers(0, 3, (2, 3, 4)), rng.uniform(0, 1, (2, 3, 4, 3)), weight
    if kind == "one_hot_column_weight":
        return np.eye(4)[rng.integers(0, 4, 6)], rng.uniform(0, 1, (6, 4)), w(6, 1)
    if kind == "one_hot_per_sample":
        return np.eye(4)[rng.integers(0, 4, 12)], rng.uniform(0, 1, (12, 4)), w(12)
    if kind.startswith("binary_pixels"):
        weight = w(2, 3, 4) if kind.endswith("per_pixel") else w(2, 1, 4)
        return rng.integers(0, 2, (2, 3, 4, 1)), rng.uniform(0, 1, (2, 3, 4, 1)), weight
    if kind == "binary_per_sample":
        return rng.integers(0, 2, (20,)), rng.uniform(0, 1, (20,)), w(20)
    if kind == "multi_label_per_sample":
        return rng.integers(0, 2, (5, 3)), rng.uniform(0, 1, (5, 3)), w(5)
    if kind == "real_pixels_per_pixel":
        return rng.normal(0, 1, (2, 3, 4, 2)), rng.normal(0, 1, (2, 3, 4, 2)), w(2, 3, 4)
    if kind == "values_leading_weight":   # Mean / Sum: update_state(values, sample_weight); y unused
        return np.zeros(1), rng.normal(0, 1, (2, 3, 4)), w(2, 3)
    if kind == "real_scalar_weight":
        return rng.normal(0, 1, (5, 3)), rng.normal(0, 1, (5, 3)), np.array(1.5)
    weight = w(5, 1) if kind == "real_column_weight" else w(5)
    return rng.normal(0, 1, (5, 3)), rng.normal(0, 1, (5, 3)), weight


def metric_cases(arrays):
    rng = np.random.default_rng(13)
    arrays["cases"] = np.array(json.dumps(CASES))
    for index, (name, kwargs, kind) in enumerate(CASES):
        metric = getattr(keras.metrics, name)(**kwargs)
        for b in range(2):
            y, p, w = (np.asarray(a, dtype="float32") for a in batch(kind, rng))
            if kind.startswith("values"):
                metric.update_state(p, sample_weight=w)
            else:
                metric.update_state(y, p, sample_weight=w)
            arrays[f"{index}_y{b}"], arrays[f"{index}_p{b}"], arrays[f"{index}_w{b}"] = y, p, w
        arrays[f"{index}_result"] = np.asarray(metric.result(), dtype="float64")


def dense_model():
    i = keras.Input((4,))
    return keras.Model(i, keras.layers.Dense(3, activation="softmax", name="out")(i))


def conv_model():
    i = keras.Input((3, 3, 2))
    return keras.Model(i, keras.layers.Conv2D(3, 1, activation="softmax", name="seg")(i))


def two_output_model():
    i = keras.Input((4,))
    h = keras.layers.Dense(5, activation="tanh", name="h")(i)
    a = keras.layers.Dense(3, activation="softmax", name="cls")(h)
    b = keras.layers.Dense(2, name="reg")(h)
    return keras.Model(i, [a, b])


def logs(history):
    return {k: float(v[0]) for k, v in history.history.items()}


def compiled(make, arrays, tag, **settings):
    keras.utils.set_random_seed(5)
    model = make()
    if f"{tag}_start0" not in arrays:
        for k, w in enumerate(model.get_weights()):
            arrays[f"{tag}_start{k}"] = w
    model.compile(optimizer=keras.optimizers.SGD(0.1), **settings)
    return model


def model_cases(arrays, out):
    rng = np.random.default_rng(3)
    x, y, sw = rng.normal(0, 1, (8, 4)).astype("float32"), rng.integers(0, 3, 8), rng.uniform(0, 2, 8).round(2)
    arrays.update(dense_x=x, dense_y=y, dense_sw=sw.astype("float32"))
    both = dict(loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                weighted_metrics=["accuracy", "sparse_top_k_categorical_accuracy"])
    m = compiled(dense_model, arrays, "dense", **both)
    out["dense_names"] = list(m.evaluate(x, y, verbose=0, return_dict=True))
    out["dense_fit_sw"] = logs(m.fit(x, y, sample_weight=sw, batch_size=3, epochs=1, shuffle=False, verbose=0))
    out["dense_evaluate_sw"] = m.evaluate(x, y, sample_weight=sw, batch_size=3, verbose=0, return_dict=True)
    m = compiled(dense_model, arrays, "dense", **both)
    out["dense_fit_cw"] = logs(m.fit(x, y, class_weight={0: 0.5, 1: 2.0, 2: 1.0}, batch_size=4, epochs=1,
                                     shuffle=False, verbose=0))
    m = compiled(dense_model, arrays, "dense", **both)
    out["dense_train_on_batch"] = m.train_on_batch(x, y, sample_weight=sw, return_dict=True)
    out["dense_test_on_batch"] = m.test_on_batch(x, y, sample_weight=sw, return_dict=True)
    out["dense_test_on_batch_plain"] = m.test_on_batch(x, y, return_dict=True)

    xs, ys = rng.normal(0, 1, (4, 3, 3, 2)).astype("float32"), rng.integers(0, 3, (4, 3, 3))
    pw = rng.uniform(0, 2, (4, 3, 3)).round(2).astype("float32")
    arrays.update(seg_x=xs, seg_y=ys, seg_pw=pw)
    m = compiled(conv_model, arrays, "seg", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                 weighted_metrics=["accuracy", keras.metrics.MeanIoU(3, sparse_y_pred=False, name="miou")])
    out["seg_fit_pw"] = logs(m.fit(xs, ys, sample_weight=pw, batch_size=2, epochs=1, shuffle=False, verbose=0))
    out["seg_evaluate_pw"] = m.evaluate(xs, ys, sample_weight=pw, batch_size=3, verbose=0, return_dict=True)

    yb = rng.normal(0, 1, (8, 2)).astype("float32")
    arrays.update(two_yb=yb)
    m = compiled(two_output_model, arrays, "two", loss=["sparse_categorical_crossentropy", "mse"],
                 loss_weights=[1.0, 0.5], metrics={"cls": ["accuracy"]},
                 weighted_metrics={"cls": ["accuracy"], "reg": ["mae"]})
    out["two_fit_sw"] = logs(m.fit(x, [y, yb], sample_weight=sw, batch_size=4, epochs=1, shuffle=False, verbose=0))
    out["two_evaluate_sw"] = m.evaluate(x, [y, yb], sample_weight=sw, batch_size=3, verbose=0, return_dict=True)

    # A .keras file Keras writes with weighted_metrics in its compile_config, and its evaluate logs.
    m = compiled(dense_model, arrays, "dense", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                 weighted_metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")])
    out["keras_file_evaluate_sw"] = m.evaluate(x, y, sample_weight=sw, batch_size=3, verbose=0, return_dict=True)
    m.save(os.path.join(HERE, "weighted_metrics.keras"))


def main():
    arrays, out = {}, {}
    metric_cases(arrays)
    model_cases(arrays, out)
    np.savez_compressed(os.path.join(HERE, "weighted_metrics.npz"), **arrays)
    with open(os.path.join(HERE, "weighted_metrics.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
