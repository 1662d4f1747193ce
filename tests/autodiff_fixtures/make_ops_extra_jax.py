"""Write ops_extra_jax.npz: for every case of tests/ops_extra_cases.py, the output and the
gradients that JAX's autodiff gives through keras.ops (float64), with make_jax.py's generator.
Run by hand, never by the tests:

    KERAS_BACKEND=jax python tests/autodiff_fixtures/make_ops_extra_jax.py
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import make_jax  # noqa: E402  (sets JAX to float64 and puts tests/ on the path)
from ops_extra_cases import CASES  # noqa: E402

if __name__ == "__main__":
    make_jax.main(CASES, "ops_extra_jax.npz")
