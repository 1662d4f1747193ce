"""compile(weighted_metrics=...) and Keras 3's compile order: fit / evaluate / train_on_batch /
test_on_batch logs with metrics + weighted_metrics equal Keras 3.15's on tiny models started from
the same weights (tests/keras_fixtures/weighted_metrics.json, from make_weighted_metric_fixtures.py),
for sample_weight, class_weight, per-pixel weights and two outputs; the log names are Keras's;
the old positional compile(optimizer, loss, metrics) is a clear error; weighted_metrics survive
saving."""
import json
import os

import numpy as np
import pytest

import gpunet as gn
from gpunet import layers

HERE = os.path.join(os.path.dirname(__file__), "keras_fixtures")
F = np.load(os.path.join(HERE, "weighted_metrics.npz"))
J = json.load(open(os.path.join(HERE, "weighted_metrics.json")))
BOTH = dict(loss="sparse_categorical_crossentropy", metrics=["accuracy"],
            weighted_metrics=["accuracy", "sparse_top_k_categorical_accuracy"])


def _start(model, tag):
    model.set_weights([F[f"{tag}_start{k}"] for k in range(len(model.get_weights()))])
    return model


def dense(**settings):
    inputs = gn.Input((4,))
    model = _start(gn.Model(inputs, layers.Dense(3, activation="softmax", name="out")(inputs)), "dense")
    model.compile(optimizer=gn.optimizers.SGD(0.1), **(settings or BOTH))
    return model


def segmenter():
    inputs = gn.Input((3, 3, 2))
    model = _start(gn.Model(inputs, layers.Conv2D(3, 1, activation="softmax", name="seg")(inputs)), "seg")
    model.compile(optimizer=gn.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  weighted_metrics=["accuracy", gn.metrics.MeanIoU(3, sparse_y_pred=False, name="miou")])
    return model


def two_outputs():
    inputs = gn.Input((4,))
    h = layers.Dense(5, activation="tanh", name="h")(inputs)
    model = gn.Model(inputs, [layers.Dense(3, activation="softmax", name="cls")(h), layers.Dense(2, name="reg")(h)])
    _start(model, "two").compile(optimizer=gn.optimizers.SGD(0.1), loss=["sparse_categorical_crossentropy", "mse"],
                                 loss_weights=[1.0, 0.5], metrics={"cls": ["accuracy"]},
                                 weighted_metrics={"cls": ["accuracy"], "reg": ["mae"]})
    return model


def _same_logs(got, expected):
    got = {k: v for k, v in got.items() if k != "learning_rate"}
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=2e-5, abs=1e-6), key


def _fit_logs(model, *args, **kwargs):
    history = model.fit(*args, epochs=1, shuffle=False, verbose=0, **kwargs).history
    return {k: v[0] for k, v in history.items()}


def test_dense_fit_evaluate_with_sample_weight_equal_keras():
    model = dense()
    assert model.metrics_names == ["loss", "accuracy", "weighted_accuracy", "sparse_top_k_categorical_accuracy"]
    _same_logs(_fit_logs(model, F["dense_x"], F["dense_y"], sample_weight=F["dense_sw"], batch_size=3),
               J["dense_fit_sw"])
    _same_logs(model.evaluate(F["dense_x"], F["dense_y"], sample_weight=F["dense_sw"], batch_size=3, verbose=0,
                              return_dict=True), J["dense_evaluate_sw"])


def test_dense_fit_with_class_weight_equals_keras():
    _same_logs(_fit_logs(dense(), F["dense_x"], F["dense_y"], class_weight={0: 0.5, 1: 2.0, 2: 1.0}, batch_size=4),
               J["dense_fit_cw"])


def test_train_and_test_on_batch_equal_keras():
    model = dense()
    x, y, sw = F["dense_x"], F["dense_y"], F["dense_sw"]
    _same_logs(model.train_on_batch(x, y, sample_weight=sw, return_dict=True), J["dense_train_on_batch"])
    _same_logs(model.test_on_batch(x, y, sample_weight=sw, return_dict=True), J["dense_test_on_batch"])
    _same_logs(model.test_on_batch(x, y, return_dict=True), J["dense_test_on_batch_plain"])
    assert model.test_on_batch(x, y, sample_weight=sw)[2] == pytest.approx(J["dense_test_on_batch"]["weighted_accuracy"])


def test_per_pixel_weights_in_fit_and_evaluate_equal_keras():
    with pytest.warns(UserWarning, match="truncated to whole numbers"):   # Keras's int IoU truncates them too
        model = segmenter()
        fit = _fit_logs(model, F["seg_x"], F["seg_y"], sample_weight=F["seg_pw"], batch_size=2)
        evaluated = model.evaluate(F["seg_x"], F["seg_y"], sample_weight=F["seg_pw"], batch_size=3, verbose=0,
                                   return_dict=True)
    _same_logs(fit, J["seg_fit_pw"])
    _same_logs(evaluated, J["seg_evaluate_pw"])


def test_two_outputs_weighted_metrics_equal_keras():
    model = two_outputs()
    x, ys, sw = F["dense_x"], [F["dense_y"], F["two_yb"]], F["dense_sw"]
    _same_logs(_fit_logs(model, x, ys, sample_weight=sw, batch_size=4), J["two_fit_sw"])
    _same_logs(model.evaluate(x, ys, sample_weight=sw, batch_size=3, verbose=0, return_dict=True),
               J["two_evaluate_sw"])
    assert model.metrics_names == ["loss", "cls_loss", "reg_loss", "cls_accuracy", "cls_weighted_accuracy",
                                   "reg_mae"]


def test_old_positional_metrics_are_a_clear_error():
    inputs = gn.Input((4,))
    model = gn.Model(inputs, layers.Dense(3, activation="softmax")(inputs))
    with pytest.raises(TypeError, match=r"loss_weights must be numbers.*received \['accuracy'\].*"
                                        r"metrics=\['accuracy'\]"):
        model.compile("sgd", "sparse_categorical_crossentropy", ["accuracy"])
    with pytest.raises(ValueError, match=r"steps_per_execution=4 is not supported"):
        model.compile("sgd", "mse", steps_per_execution=4)
    with pytest.warns(UserWarning, match="disabling jit_compile"):
        model.compile("sgd", "mse", run_eagerly=True, jit_compile=True)
    assert model.run_eagerly and not model.jit_compile


def test_auto_scale_loss_false_keeps_the_optimizer():
    gn.mixed_precision.set_global_policy("mixed_float16")
    inputs = gn.Input((4,))
    model = gn.Model(inputs, layers.Dense(3)(inputs))
    model.compile(gn.optimizers.SGD(0.1), "mse", auto_scale_loss=False)
    assert type(model.optimizer).__name__ == "SGD"
    model.compile(gn.optimizers.SGD(0.1), "mse")
    assert type(model.optimizer).__name__ == "LossScaleOptimizer"


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_weighted_metrics_survive_saving(tmp_path, suffix):
    model = dense()
    path = str(tmp_path / f"m{suffix}")
    model.save(path)
    loaded = gn.models.load_model(path)
    assert loaded.metrics_names == model.metrics_names
    expected = model.evaluate(F["dense_x"], F["dense_y"], sample_weight=F["dense_sw"], verbose=0, return_dict=True)
    got = loaded.evaluate(F["dense_x"], F["dense_y"], sample_weight=F["dense_sw"], verbose=0, return_dict=True)
    _same_logs(got, expected)
    config = gn.saving.keras_file.compile_config(model)
    assert len(config["metrics"]) == 1 and len(config["weighted_metrics"]) == 2


def test_keras_written_file_with_weighted_metrics_loads_and_evaluates_as_keras():
    model = gn.models.load_model(os.path.join(HERE, "weighted_metrics.keras"))
    assert model.metrics_names == ["loss", "accuracy", "weighted_accuracy", "top2"]
    _same_logs(model.evaluate(F["dense_x"], F["dense_y"], sample_weight=F["dense_sw"], batch_size=3, verbose=0,
                              return_dict=True), J["keras_file_evaluate_sw"])


def test_two_outputs_weighted_metrics_survive_saving(tmp_path):
    model = two_outputs()
    model.save(str(tmp_path / "two.keras"))
    loaded = gn.models.load_model(str(tmp_path / "two.keras"))
    assert loaded.metrics_names == model.metrics_names
    x, ys, sw = F["dense_x"], [F["dense_y"], F["two_yb"]], F["dense_sw"]
    _same_logs(loaded.evaluate(x, ys, sample_weight=sw, batch_size=3, verbose=0, return_dict=True),
               model.evaluate(x, ys, sample_weight=sw, batch_size=3, verbose=0, return_dict=True))


def test_jit_compiled_step_feeds_weighted_metrics(kernel_backend):
    """fit's captured step (jit_compile=True) replays, then updates the weighted metrics with the batch's weights."""
    with gn.backend.use(kernel_backend):
        model = dense(**BOTH, jit_compile=True)
        logs = _fit_logs(model, F["dense_x"], F["dense_y"], sample_weight=F["dense_sw"], batch_size=3)
        entries = model._captured_steps["train"].entries.values()
        assert any(type(entry).__name__ == "_Entry" for entry in entries), "no batch was replayed from a graph"
    _same_logs(logs, J["dense_fit_sw"])
