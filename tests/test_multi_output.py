"""Models with several outputs: losses, loss_weights, metrics per output and their log names,
against Keras 3 (fixtures from tests/keras_fixtures/make_multi_output_fixtures.py); bad settings."""
import json
import os

import numpy as np
import pytest

import gpunet as gn
from gpunet import layers

from checks import assert_close

HERE = os.path.join(os.path.dirname(__file__), "keras_fixtures")
F = np.load(os.path.join(HERE, "multi_output.npz"))
J = json.load(open(os.path.join(HERE, "multi_output.json")))


def two_outputs(optimizer="sgd", **compile_args):
    inputs = gn.Input((4,))
    h = layers.Dense(5, activation="tanh", name="h")(inputs)
    model = gn.Model(inputs, [layers.Dense(3, activation="softmax", name="cls")(h), layers.Dense(2, name="reg")(h)])
    model.set_weights([F[f"start{i}"] for i in range(6)])
    args = dict(loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.5], metrics=[["accuracy"], ["mae"]])
    model.compile(optimizer=optimizer, **{**args, **compile_args})
    return model


def _same_logs(got, expected):
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=2e-5, abs=1e-6), key


def test_evaluate_names_and_values_equal_keras():
    model = two_outputs()
    _same_logs(model.evaluate(F["x"], [F["ya"], F["yb"]], batch_size=4, verbose=0, return_dict=True), J["evaluate"])
    _same_logs(model.evaluate(F["x"], [F["ya"], F["yb"]], sample_weight=F["sw"], batch_size=4, verbose=0,
                              return_dict=True), J["evaluate_weighted"])
    values = model.evaluate(F["x"], {"cls": F["ya"], "reg": F["yb"]}, batch_size=4, verbose=0)
    assert model.metrics_names == ["loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae"]
    assert values[0] == pytest.approx(J["evaluate"]["loss"], rel=2e-5)


def test_fit_equals_keras_with_dict_targets():
    model = two_outputs(gn.optimizers.SGD(0.1))
    history = model.fit(F["x"], {"cls": F["ya"], "reg": F["yb"]}, batch_size=3, epochs=1, shuffle=False, verbose=0)
    logs = {k: v[0] for k, v in history.history.items() if k != "learning_rate"}
    _same_logs(logs, J["fit"])
    for i, weight in enumerate(model.get_weights()):
        assert_close(weight, F[f"after{i}"], rtol=1e-5, atol=1e-6, what=f"weight {i}")


def test_dict_losses_one_loss_for_all_and_validation_names():
    model = two_outputs(loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"}, loss_weights=None,
                        metrics={"cls": "accuracy"})
    history = model.fit(F["x"], [F["ya"], F["yb"]], epochs=1, validation_data=(F["x"], [F["ya"], F["yb"]]),
                        verbose=0).history
    assert sorted(history) == ["cls_accuracy", "cls_loss", "learning_rate", "loss", "reg_loss", "val_cls_accuracy",
                               "val_cls_loss", "val_loss", "val_reg_loss"]
    assert history["loss"][0] == pytest.approx(history["cls_loss"][0] + history["reg_loss"][0], rel=1e-6)
    same = two_outputs(loss="mse", loss_weights=None, metrics=None)
    onehot = np.eye(3, dtype=np.float32)[F["ya"]]
    logs = same.evaluate(F["x"], [onehot, F["yb"]], verbose=0, return_dict=True)
    assert sorted(logs) == ["cls_loss", "loss", "reg_loss"]


def test_an_output_without_a_loss_trains_only_the_other():
    model = two_outputs(gn.optimizers.SGD(0.1), loss=[None, "mse"], loss_weights=None, metrics=None)
    before = model.get_layer("cls").get_weights()
    history = model.fit(F["x"], [None, F["yb"]], epochs=2, verbose=0).history
    assert sorted(history) == ["learning_rate", "loss", "reg_loss"]
    for a, b in zip(model.get_layer("cls").get_weights(), before):
        assert_close(a, b, rtol=0, atol=0)


def test_bad_multi_output_settings_are_refused():
    with pytest.raises(ValueError, match=r"compile: loss: the model has 2 outputs \['cls', 'reg'\]; received a list of 3"):
        two_outputs(loss=["mse", "mse", "mse"])
    with pytest.raises(ValueError, match=r"compile: loss: unknown output name\(s\) \['out'\]"):
        two_outputs(loss={"out": "mse"})
    model = two_outputs()
    with pytest.raises(ValueError, match=r"fit: the model has 2 outputs \['cls', 'reg'\]; y must be a list"):
        model.fit(F["x"], F["yb"], verbose=0)
    with pytest.raises(ValueError, match=r"fit: y\['reg'\]: loss 'mean_squared_error' expects targets of shape"):
        model.fit(F["x"], [F["ya"], F["yb"][:, :1]], verbose=0)
    with pytest.raises(ValueError, match=r"fit: class_weight is supported for models with one output only"):
        model.fit(F["x"], [F["ya"], F["yb"]], class_weight={0: 2.0}, verbose=0)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_a_compiled_two_output_model_saves_and_loads_its_settings(tmp_path, suffix):
    model = two_outputs(loss=["sparse_categorical_crossentropy", gn.losses.MeanSquaredError()],
                        metrics={"cls": ["accuracy"], "reg": [gn.metrics.MeanAbsoluteError()]})
    path = str(tmp_path / f"two{suffix}")
    model.save(path)
    loaded = gn.models.load_model(path)
    assert loaded.metrics_names == model.metrics_names == ["loss", "cls_loss", "reg_loss", "cls_accuracy",
                                                           "reg_mean_absolute_error"]
    assert loaded._outputs.loss_weights == [1.0, 0.5]
    y = [F["ya"], F["yb"]]
    assert_close(loaded.evaluate(F["x"], y, verbose=0), model.evaluate(F["x"], y, verbose=0), rtol=1e-6)
