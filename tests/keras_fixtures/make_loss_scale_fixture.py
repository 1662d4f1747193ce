"""Writes loss_scale_optimizer.json: Keras 3's LossScaleOptimizer over a sequence of gradients.

Run with keras 3.15 (``KERAS_BACKEND=numpy python tests/keras_fixtures/make_loss_scale_fixture.py``;
the numpy backend runs the stateful ``apply`` that gpunet follows). The test reads the JSON only.
Gradients of step k: ``[0.25, -0.5] * scale`` (the scale before the step), or one inf / NaN entry.
"""
import json
import pathlib

import keras
import numpy as np

SEQUENCE = ["1", "1", "inf", "1", "1", "1", "1", "nan", "1", "1", "1", "1", "1", "1"]


def gradient(kind, scale):
    if kind == "inf":
        return np.array([np.inf, 1.0], np.float32)
    if kind == "nan":
        return np.array([1.0, np.nan], np.float32)
    return np.array([0.25, -0.5], np.float32) * np.float32(scale)


def main():
    variable = keras.Variable(np.array([1.0, 2.0], np.float32))
    opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.5), initial_scale=8.0, dynamic_growth_steps=3)
    rows = []
    for kind in SEQUENCE:
        scale = float(opt.dynamic_scale) if opt.built else opt.initial_scale
        opt.apply([gradient(kind, scale)], [variable])
        rows.append({"grad": kind, "scale_before": scale, "scale_after": float(opt.dynamic_scale),
                     "iterations": int(opt.iterations), "step_counter": int(opt.step_counter),
                     "value": [float(v) for v in np.asarray(variable.numpy())]})
    out = {"keras": keras.__version__, "initial_scale": 8.0, "dynamic_growth_steps": 3, "learning_rate": 0.5,
           "start": [1.0, 2.0], "config": opt.get_config(), "steps": rows}
    path = pathlib.Path(__file__).with_name("loss_scale_optimizer.json")
    path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
