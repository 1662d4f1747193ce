"""Check one gpunet layer against the outputs and gradients real Keras computed for it
(tests/keras_fixtures/layers/<case>.npz, written by make_layer_fixtures.py)."""
import json
import os

import numpy as np

from checks import assert_close
from gpunet import backend, saving

LAYER_FIXTURES = os.path.join(os.path.dirname(__file__), "keras_fixtures", "layers")


def keras_case(name):
    """{"x": [inputs], "dy", "y", "dx": [...], "w": [...], "g": [...], "config": dict}."""
    with np.load(os.path.join(LAYER_FIXTURES, f"{name}.npz")) as data:
        def series(prefix):
            keys = sorted((k for k in data.files if k.startswith(prefix) and k[len(prefix):].isdigit()),
                          key=lambda k: int(k[len(prefix):]))
            return [data[k] for k in keys]
        return {"x": series("x"), "dx": series("dx"), "w": series("w"), "g": series("g"),
                "y": data["y"], "dy": data["dy"], "config": json.loads(str(data["config"]))}


def check_against_keras(layer, name, backend_name="numpy", rtol=1e-4, atol=1e-5, from_file=False):
    """Build ``layer`` on the case's input shapes, give it Keras's weights (from the case's
    ``.weights.h5`` when ``from_file``), then forward and backward must reproduce Keras's ``y``,
    input gradients and weight gradients."""
    case = keras_case(name)
    xs = case["x"]
    many = len(xs) > 1
    with backend.use(backend_name) as be:
        shapes = [(None, *x.shape[1:]) for x in xs]
        layer.build(shapes if many else shapes[0])
        if from_file:
            import gpunet as gn
            model = gn.Sequential([gn.Input(xs[0].shape[1:]), layer])
            saving.load_weights(model, os.path.join(LAYER_FIXTURES, f"{name}.weights.h5"))
        else:
            layer.set_weights(case["w"])
        for got, want in zip(layer.get_weights(), case["w"]):
            np.testing.assert_array_equal(got, want, err_msg=f"{name} weights")
        inputs = [be.asarray(x) for x in xs]
        y = layer.forward(inputs if many else inputs[0], training=False)
        assert_close(be.to_numpy(y), case["y"], rtol=rtol, atol=atol, what=f"{name} output")
        dx = layer.backward(be.asarray(case["dy"]))
        dx = dx if many else [dx]
        for k, (got, want) in enumerate(zip(dx, case["dx"])):
            assert_close(be.to_numpy(got), want, rtol=rtol, atol=atol, what=f"{name} input gradient {k}")
        assert len(layer.grads) == len(case["g"]), f"{name}: {len(layer.grads)} weight gradients"
        for k, (got, want) in enumerate(zip(layer.grads, case["g"])):
            assert_close(be.to_numpy(got), want, rtol=rtol, atol=atol, what=f"{name} weight gradient {k}")
