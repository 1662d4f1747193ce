"""gn.random: Keras 3's ``keras.random`` draws and ``SeedGenerator``.

    noise = gn.random.normal((batch, 2), seed=self.seed_generator)    # a VAE's sampling layer

Draws run the counter-based hash of ``kernels/dropout.cu`` (``gpunet.primitives.random``) and
return gn.Tensors, constants on the tape. ``seed``: an int gives the same numbers at every call
(Keras's stateless use), a SeedGenerator a new seed per call, None a seed from
``gn.utils.rng()`` (reproducible under ``gn.utils.set_random_seed``). A seed is chosen on the
host, so a draw cannot sit inside a captured CUDA graph: under ``jit_compile=True`` the capture
stops with ``CaptureError`` and the step runs eagerly (with a warning naming the layer).
"""
import numpy as np

from . import utils
from .autodiff import Tensor
from .backend import hooks
from .primitives import random as random_ops

__all__ = ["SeedGenerator", "uniform", "normal"]


class SeedGenerator:
    """A seed that advances at every draw: ``normal(shape, seed=generator)`` twice gives two draws."""

    def __init__(self, seed=None, name=None, **kwargs):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"SeedGenerator: seed must be an int or None; received {seed!r}.")
        self.name = name or "seed_generator"
        self.state = int(utils.rng().integers(2 ** 32)) if seed is None else int(seed) % 2 ** 32

    def next(self):
        """This draw's seed; the next draw gets another (a large odd step: no overlap with seed + 1)."""
        value = self.state
        self.state = (self.state + 0x9E3779B9) % 2 ** 32
        return value


def _seed(seed, op):
    if hooks.capturing():
        raise hooks.CaptureError(f"gn.random.{op} chooses its seed on the host; a CUDA graph would replay the "
                                 f"same numbers.")
    if seed is None:
        return int(utils.rng().integers(2 ** 32))
    if isinstance(seed, SeedGenerator):
        return seed.next()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"gn.random.{op}: seed must be None, an int or a SeedGenerator; received {seed!r}.")
    return int(seed) % 2 ** 32


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """A tensor of ``shape`` uniform in [minval, maxval) (float32 unless dtype says bfloat16 / float16)."""
    return Tensor(random_ops.uniform(shape, minval, maxval, _seed(seed, "uniform"), dtype or np.float32))


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """A tensor of ``shape`` drawn from N(mean, stddev**2)."""
    return Tensor(random_ops.normal(shape, mean, stddev, _seed(seed, "normal"), dtype or np.float32))
