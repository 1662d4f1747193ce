"""Keras 3's parameters after three steps of each optimizer, written once to ``optimizers.npz``
(not run in CI). Two variables (3, 4) and (4,) start at ``w0``, ``w1``; step s applies the
gradients ``g<s>_0``, ``g<s>_1``; ``<i>_after<s>_<k>`` is variable k after step s, and
``<i>_vars`` the JSON list of the optimizer's variable paths (its saved order).
``cases`` is the JSON list of ``[class name, kwargs]``. Run as
``cd tests/keras_fixtures && KERAS_BACKEND=jax python make_optimizer_fixtures.py`` (Keras 3.15.1).
"""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = [
    ["Adagrad", {"learning_rate": 0.1}], ["Adagrad", {"initial_accumulator_value": 0.5, "weight_decay": 0.1}],
    ["Adadelta", {"learning_rate": 1.0}], ["Adadelta", {"rho": 0.9, "epsilon": 1e-6}],
    ["Adamax", {"learning_rate": 0.02}], ["Adamax", {"beta_1": 0.8, "clipnorm": 0.5}],
    ["Nadam", {"learning_rate": 0.02}], ["Nadam", {"beta_2": 0.9, "weight_decay": 0.05}],
    ["Lion", {"learning_rate": 0.01}], ["Lion", {"beta_1": 0.5, "beta_2": 0.9, "weight_decay": 0.2}],
    ["Adafactor", {}], ["Adafactor", {"learning_rate": 0.1, "weight_decay": 0.05}],
    ["Adafactor", {"learning_rate": 0.5, "relative_step": False, "clip_threshold": 0.5, "beta_2_decay": -0.5}],
]
STEPS = 3


def main():
    rng = np.random.default_rng(5)
    arrays = {"cases": np.array(json.dumps(CASES)), "w0": rng.normal(0, 1, (3, 4)).astype("float32"),
              "w1": rng.normal(0, 1, (4,)).astype("float32")}
    for s in range(STEPS):
        arrays[f"g{s}_0"] = rng.normal(0, 1, (3, 4)).astype("float32")
        arrays[f"g{s}_1"] = rng.normal(0, 1, (4,)).astype("float32")
    for index, (name, kwargs) in enumerate(CASES):
        variables = [keras.Variable(arrays["w0"]), keras.Variable(arrays["w1"])]
        optimizer = getattr(keras.optimizers, name)(**kwargs)
        for s in range(STEPS):
            optimizer.apply_gradients(zip([arrays[f"g{s}_0"], arrays[f"g{s}_1"]], variables))
            for k, v in enumerate(variables):
                arrays[f"{index}_after{s}_{k}"] = np.asarray(v.numpy())
        arrays[f"{index}_vars"] = np.array(json.dumps([v.path for v in optimizer.variables]))
        for j, v in enumerate(optimizer.variables):
            arrays[f"{index}_var{j}"] = np.asarray(v.numpy())
        print(index, name, kwargs, [v.path for v in optimizer.variables][:5])
    np.savez(os.path.join(HERE, "optimizers.npz"), **arrays)


if __name__ == "__main__":
    main()
