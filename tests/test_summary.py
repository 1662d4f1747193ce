"""model.summary() prints what Keras 3.15 prints for the same models (tests/keras_fixtures/
summaries.json, from make_summary_fixtures.py), with print_fn called as Keras calls it."""
import json
import os

import numpy as np
import pytest

import gpunet as gn
from gpunet import layers

FIXTURE = os.path.join(os.path.dirname(__file__), "keras_fixtures", "summaries.json")
with open(FIXTURE) as _f:
    KERAS = json.load(_f)


@pytest.fixture(autouse=True)
def eighty_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")   # the console width the fixtures were captured at


def seq_model():
    return gn.Sequential([gn.Input((8, 8, 1)), layers.Conv2D(4, 3, name="conv"), layers.BatchNormalization(),
                          layers.Flatten(), layers.Dense(2, name="a_dense_layer_with_a_rather_long_name_indeed")],
                         name="seq")


def skip_model():
    inputs = gn.Input((6, 6, 2), name="img")
    a = layers.Conv2D(4, 3, padding="same")(inputs)
    b = layers.Conv2D(4, 3, padding="same")(a)
    merged = layers.Concatenate()([a, layers.Add()([a, b])])
    outputs = layers.Dense(3, name="head")(layers.GlobalAveragePooling2D()(merged))
    return gn.Model(inputs, outputs, name="skip")


def nested_model():
    inner = gn.Sequential([layers.Conv2D(3, 3, padding="same", name="conv2d_2"),
                           layers.BatchNormalization(name="batch_normalization_1")], name="inner")
    inputs = gn.Input((4, 4, 1), name="input_layer_1")
    outputs = layers.Dense(2, name="dense")(layers.Flatten(name="flatten_1")(inner(inputs)))
    return gn.Model(inputs, outputs, name="nested")


def captured(model, **kwargs):
    calls = []
    model.summary(print_fn=lambda *args, **kw: calls.append([list(args), kw]), **kwargs)
    return calls


def test_sequential_as_keras_prints_it():
    model = seq_model()
    assert captured(model) == KERAS["seq"]            # print_fn called once, with the whole text
    assert captured(model, line_length=80) == KERAS["seq_80"]
    model.layers[0].trainable = False
    assert captured(model, show_trainable=True, line_length=100) == KERAS["seq_trainable"]


def test_branching_functional_model_shows_connections_as_keras():
    assert captured(skip_model()) == KERAS["skip"]


def test_nested_model_plain_expanded_and_compiled_as_keras():
    model = nested_model()
    assert captured(model, line_length=90) == KERAS["nested_plain"]
    assert captured(model, expand_nested=True, line_length=90) == KERAS["nested"]
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.zeros((2, 4, 4, 1), "float32"), np.zeros((2, 2), "float32"), verbose=0)
    assert captured(model, line_length=90) == KERAS["nested_compiled"]


def test_default_print_and_layer_range(capsys):
    model = skip_model()
    model.summary()
    assert capsys.readouterr().out == KERAS["skip"][0][0][0]
    text = captured(model, layer_range=["conv2d", "add"])[0][0][0]
    assert "conv2d (Conv2D)" in text and "add (Add)" in text and "img (InputLayer)" not in text
    with pytest.raises(ValueError, match="do not match the layer names"):
        model.summary(layer_range=["nothing", "add"])
