"""gpunet: a CNN framework with Keras's face and readable CUDA kernels underneath.

    import gpunet as gn
    model = gn.Sequential([gn.layers.Input((28, 28, 1)), gn.layers.Conv2D(16, 3), ...])
"""
from . import backend, initializers, utils
from . import activations
from . import config
from . import mixed_precision
from . import layers, losses, metrics, optimizers, callbacks, models, saving, data
from . import regularizers, constraints
from . import distribute
distribution = distribute   # Keras 3 calls it keras.distribution
from . import profiler
from .backend import set_backend, get_backend
from .layers import Input
from .models import *
from . import ops
from . import random
from .autodiff import GradientTape, Tensor

__version__ = "0.1.0"
