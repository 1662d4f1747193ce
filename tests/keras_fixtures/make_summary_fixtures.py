"""Keras 3's ``model.summary()`` output for five small models, captured through ``print_fn`` and
written once to ``summaries.json`` (not run in CI): ``{case: [[args, kwargs] of each print_fn call]}``.
Run as ``cd tests/keras_fixtures && COLUMNS=80 KERAS_BACKEND=jax python make_summary_fixtures.py``
(Keras 3.15.1; off a terminal rich's console is 80 columns wide).
"""
import os, json
os.environ["KERAS_BACKEND"]="jax"
import keras
from keras import layers
out = {}
def cap(model, **kw):
    calls = []
    model.summary(print_fn=lambda *a, **k: calls.append([list(a), k]), **kw)
    return calls
keras.utils.set_random_seed(0)
seq = keras.Sequential([keras.Input((8, 8, 1)), layers.Conv2D(4, 3, name="conv"), layers.BatchNormalization(),
                        layers.Flatten(), layers.Dense(2, name="a_dense_layer_with_a_rather_long_name_indeed")], name="seq")
out["seq"] = cap(seq)
out["seq_80"] = cap(seq, line_length=80)
seq.layers[0].trainable = False
out["seq_trainable"] = cap(seq, show_trainable=True, line_length=100)
inputs = keras.Input((6, 6, 2), name="img")
a = layers.Conv2D(4, 3, padding="same")(inputs)
b = layers.Conv2D(4, 3, padding="same")(a)
added = layers.Add()([a, b])
merged = layers.Concatenate()([a, added])
outputs = layers.Dense(3, name="head")(layers.GlobalAveragePooling2D()(merged))
fn = keras.Model(inputs, outputs, name="skip")
out["skip"] = cap(fn)
inner = keras.Sequential([layers.Conv2D(3, 3, padding="same"), layers.BatchNormalization()], name="inner")
i2 = keras.Input((4, 4, 1))
nested = keras.Model(i2, layers.Dense(2)(layers.Flatten()(inner(i2))), name="nested")
out["nested"] = cap(nested, expand_nested=True, line_length=90)
out["nested_plain"] = cap(nested, line_length=90)
nested.compile(optimizer="adam", loss="mse")
import numpy as np
nested.fit(np.zeros((2,4,4,1)), np.zeros((2,2)), verbose=0)
out["nested_compiled"] = cap(nested, line_length=90)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "summaries.json"), "w") as f:
    json.dump(out, f, indent=1, ensure_ascii=False)
for k, v in out.items():
    print(k, v[0][1]); print(v[0][0][0])
