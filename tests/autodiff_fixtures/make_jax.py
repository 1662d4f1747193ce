"""Write jax_gradients.npz: for every case of tests/autodiff_cases.py, the output and the
gradients that JAX's autodiff gives through keras.ops (float64). Run by hand, never by the tests:

    KERAS_BACKEND=jax python tests/autodiff_fixtures/make_jax.py
"""
import pathlib
import sys

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
import keras  # noqa: E402  (after x64 is on)
from keras import ops  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from autodiff_cases import CASES, DIFFERENTIABLE, make_inputs, output_gradient  # noqa: E402


def main(cases=CASES, file="jax_gradients.npz"):
    """Write ``file`` (next to this script) for ``cases`` ((name, fn, input specs) as autodiff_cases.py's)."""
    arrays = {}
    for name, fn, specs in cases:
        inputs = make_inputs(name, specs)
        wrt = [i for i, (kind, _) in enumerate(specs) if kind in DIFFERENTIABLE]

        def f(*chosen):
            full = list(inputs)
            for i, value in zip(wrt, chosen):
                full[i] = value
            return fn(ops, *full)
        out, vjp = jax.vjp(f, *[jax.numpy.asarray(inputs[i]) for i in wrt])
        grads = vjp(jax.numpy.asarray(output_gradient(name, out.shape), dtype=out.dtype))
        arrays[f"{name}/out"] = np.asarray(out)
        for i, g in zip(wrt, grads):
            arrays[f"{name}/grad{i}"] = np.asarray(g)
    np.savez_compressed(HERE / file, **arrays)
    print(f"wrote {len(arrays)} arrays for {len(cases)} cases to {file} with keras {keras.__version__}, "
          f"jax {jax.__version__}")


if __name__ == "__main__":
    main()
