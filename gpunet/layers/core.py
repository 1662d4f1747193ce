"""Input, Dense, Activation, Flatten, Reshape, Dropout, SpatialDropout2D, GaussianNoise, GaussianDropout."""
import math

import numpy as np

from .. import backend, initializers, mixed_precision, utils
from . import autocast
from ..primitives import dense, dropout, elementwise_nd
from ..primitives import random as random_ops
from .activations import ActivationMixin
from .base import Layer, SymbolicTensor
from .weight_rules import WeightRulesMixin

__all__ = ["Input", "InputLayer", "Dense", "Activation", "Flatten", "Reshape", "Dropout", "SpatialDropout2D",
           "GaussianNoise", "GaussianDropout"]


class InputLayer(Layer):
    """The source of a functional graph: holds the per-sample shape, computes nothing."""

    _autocasts = False   # data enters in the Input's dtype; the layers reading it cast it

    def __init__(self, shape=None, batch_size=None, name=None, dtype=None, **kwargs):
        if shape is None:
            raise ValueError("Input needs a shape, e.g. Input((28, 28, 1)) for one 28x28 grey image per sample.")
        super().__init__(name=name, **kwargs)
        # As Keras's: a plain dtype (float32 by default, whatever the global policy), ints allowed.
        self._dtype_policy = mixed_precision.get("float32" if dtype is None else _dtype_name(dtype))
        self._compute_np = autocast.np_dtype(self._dtype_policy.compute_dtype)
        self.shape = tuple(int(s) for s in shape)
        self.batch_size = batch_size
        self.input_shape = (batch_size, *self.shape)
        self.built = True
        self.output = SymbolicTensor(self.input_shape, self, [])

    def forward(self, x, training=False):
        if tuple(x.shape[1:]) != self.shape:
            raise self.shape_error(f"inputs of shape (batch, {', '.join(map(str, self.shape))})", x.shape)
        return x

    def backward(self, dy):
        return dy

    def get_config(self):
        return {"shape": self.shape, "batch_size": self.batch_size, "name": self.name, "dtype": self.dtype}


def _dtype_name(dtype):
    """A dtype's name from a name, a NumPy dtype or type, or a policy config (Keras files)."""
    if isinstance(dtype, dict):
        return dtype.get("config", dtype)["name"]
    if isinstance(dtype, mixed_precision.DTypePolicy):
        return dtype.name
    return dtype if isinstance(dtype, str) else np.dtype(dtype).name


def Input(shape, batch_size=None, name=None, dtype=None):
    """A symbolic input of per-sample ``shape`` (no batch axis), e.g. ``Input((32, 32, 3))``."""
    return InputLayer(shape=shape, batch_size=batch_size, name=name, dtype=dtype).output


class Dense(WeightRulesMixin, ActivationMixin, Layer):
    """Fully connected layer: ``activation(x @ kernel + bias)``.

    Input (batch, ..., in) -> output (batch, ..., units): on inputs of rank > 2 it applies to the
    last axis, as Keras does. Weights: kernel (in, units), bias (units,). Also takes Keras's
    kernel/bias/activity regularizers and kernel/bias constraints (see ``weight_rules``).
    """

    needs_input_gradient = True   # a model's training step sets False on a first layer: dx is None
    fold_from = None   # a model sets (y, Epilogue) of the layer before, whose activation dx then folds
    takes_fold = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"Dense units must be a positive int; received {units!r}.")
        self.units = int(units)
        self._init_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.checked(kernel_initializer, "Dense kernel_initializer")
        self.bias_initializer = initializers.checked(bias_initializer, "Dense bias_initializer")
        self.kernel = self.bias = None
        self._x2d = self._x_shape = None

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise self.shape_error("an input of rank >= 2 (batch, ..., features) with a known last axis",
                                   input_shape)
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def forward(self, x, training=False):
        features = self.kernel.shape[0]
        if x.ndim < 2 or x.shape[-1] != features:
            raise self.shape_error(f"inputs of shape (batch, ..., {features})", x.shape)
        self._x_shape, self._x2d = x.shape, x.reshape(-1, features)
        fused = self._forward_epilogue()
        z = dense.dense_forward(self._x2d, self.compute_weight(self.kernel), self.bias, activation=fused)
        return self._activate(z.reshape(*x.shape[:-1], self.units), training, owned=True, fused=fused)

    def backward(self, dy):
        return self._linear_backward(self._deactivate(dy))

    def _linear_backward(self, dz):
        # A frozen layer (trainable=False) computes no weight gradients, only dx.
        fold = self.fold_from
        if fold is not None:
            fold = (fold[0].reshape(self._x2d.shape), fold[1])
        dx, dw, db = dense.dense_backward(dz.reshape(-1, self.units), self._x2d, self.compute_weight(self.kernel),
                                          need_dx=self.needs_input_gradient,
                                          need_db=self.use_bias and self.trainable, need_dw=self.trainable,
                                          fold=fold)
        self.grads = ([dw, db] if self.use_bias else [dw]) if self.trainable else []
        return None if dx is None else dx.reshape(self._x_shape)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer)}


class Activation(ActivationMixin, Layer):
    """Applies an activation by name (``"relu"``, ``"softmax"``, ...); output has the input's shape."""

    absorbed = None   # set by a model when the layer before applied this activation (its Epilogue)

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._init_activation(activation)

    @property
    def epilogue(self):
        """The activation as a kernel epilogue (see ``primitives.epilogue``), or None."""
        return None if self._activation is None else self._activation.epilogue

    def forward(self, x, training=False):
        # Absorbed: x is already the activation's output; backward reads its gradient from it.
        return self._activate(x, training, fused=self.absorbed)

    def backward(self, dy):
        return self._linear_backward(self._deactivate(dy))

    def _linear_backward(self, dz):
        self.grads = []
        return dz

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...), in C order (NHWC flattens channels fastest)."""

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else math.prod(rest))

    def forward(self, x, training=False):
        self._x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        self.grads = []
        return dy.reshape(self._x_shape)


class Reshape(Layer):
    """(batch, ...) -> (batch, *target_shape); one entry of target_shape may be -1 (inferred)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            shape = tuple(int(s) for s in target_shape)
        except TypeError:
            raise ValueError(f"Reshape target_shape must be a tuple of ints; received {target_shape!r}.") from None
        if any(s < 1 and s != -1 for s in shape) or shape.count(-1) > 1:
            raise ValueError(f"Reshape target_shape must hold positive ints and at most one -1; "
                             f"received {target_shape!r}.")
        self.target_shape = shape

    def _resolve(self, sample_shape, received):
        """target_shape with the -1 filled in for inputs of per-sample shape ``sample_shape``."""
        if None in sample_shape:
            return None
        size, known = math.prod(sample_shape), math.prod(s for s in self.target_shape if s != -1)
        fits = size % known == 0 if -1 in self.target_shape else size == known
        if not fits:
            need = f"a multiple of {known}" if -1 in self.target_shape else f"{known}"
            raise self.shape_error(f"inputs with {need} values per sample to fit target_shape "
                                   f"{self.target_shape}", received)
        return tuple(size // known if s == -1 else s for s in self.target_shape)

    def build(self, input_shape):
        self._resolve(tuple(input_shape[1:]), input_shape)

    def compute_output_shape(self, input_shape):
        resolved = self._resolve(tuple(input_shape[1:]), input_shape)
        if resolved is None:
            resolved = tuple(None if s == -1 else s for s in self.target_shape)
        return (input_shape[0], *resolved)

    def forward(self, x, training=False):
        self._x_shape = x.shape
        return x.reshape(x.shape[0], *self._resolve(tuple(x.shape[1:]), x.shape))

    def backward(self, dy):
        self.grads = []
        return dy.reshape(self._x_shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


class Dropout(Layer):
    """Inverted dropout: in training, zeroes each element with probability ``rate`` and scales the
    rest by ``1 / (1 - rate)``; outside training, the identity. Output has the input's shape.

    Each training call draws a fresh mask seed from ``gpunet.utils.rng()`` (reproducible under
    ``gpunet.utils.set_random_seed``); with ``seed`` given, training call k (from 0) uses
    ``seed + k``.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating)) or not 0 <= rate < 1:
            raise ValueError(f"Dropout rate must be a number in [0, 1); received {rate!r}.")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"Dropout seed must be None or a non-negative int; received {seed!r}.")
        self.rate = float(rate)
        self.seed = None if seed is None else int(seed)
        self._base = self.seed        # call k's seed is _base + k (unseeded: see _next_seed)
        self._calls_host = 0          # the call count, or None while only the device knows it
        self._calls_device = None     # on a kernel backend: uint32[1] the kernel reads and advances
        self._mask = None

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self._mask = None
            return x
        y, self._mask = self._drop(x, self._next_seed())
        return y

    def _next_seed(self):
        """This call's seed: ``seed + k`` for training call k, or for an unseeded layer a draw from
        ``gpunet.utils.rng()``; on a kernel backend a seeded layer gives ``(seed, device call
        count)``, which the kernel reads and advances, so a captured step draws anew at each
        replay. (A captured step gives an unseeded layer a start drawn once: ``device_seeds``.)"""
        be = backend.current()
        if self._base is None:
            self._calls_host = self._calls + 1
            return int(utils.rng().integers(2 ** 32))
        if not be.runs_kernels:
            self._calls_host = self._calls + 1
            return self._base + self._calls_host - 1
        if self._calls_device is None:
            self._calls_device = be.zeros((1,), np.uint32)
            self._calls_device[0] = self._calls
        if self._calls_host is not None:
            self._calls_host += 1
        return self._base, self._calls_device

    def device_seeds(self):
        """Before a training step is captured (``jit_compile=True``): an unseeded layer draws one
        start from ``gpunet.utils.rng()`` and counts from it in device memory, as a seeded one."""
        if self._base is None:
            self._base = int(utils.rng().integers(2 ** 32))

    @property
    def _calls(self):
        """Training calls so far (a device read after replayed graph steps)."""
        if self._calls_host is None:
            self._calls_host = int(np.asarray(backend.current().to_numpy(self._calls_device))[0])
        return self._calls_host

    @_calls.setter
    def _calls(self, value):
        self._calls_host = int(value)
        if self._calls_device is not None:
            self._calls_device[0] = self._calls_host

    def _drop(self, x, seed):
        return dropout.dropout_forward(x, self.rate, seed)

    def backward(self, dy):
        self.grads = []
        return dy if self._mask is None else self._undrop(dy)

    def _undrop(self, dy):
        return dropout.dropout_backward(dy, self._mask)

    # A seeded layer's next mask depends on how many training calls it has made: a whole-model
    # file keeps that count, so that a resumed run draws the masks the stopped run would have.
    def random_state(self):
        return {"calls": self._calls}

    def set_random_state(self, state):
        self._calls = int(state["calls"])

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class SpatialDropout2D(Dropout):
    """Dropout of whole feature maps: in training each channel of each image is zeroed with
    probability ``rate`` (all its H x W values together) and the rest scaled by ``1 / (1 - rate)``.
    Input (N, H, W, C), output the same shape; seeds as :class:`Dropout` (channel ``(n, c)`` is
    kept when Dropout would keep flat element ``n * C + c``)."""

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"SpatialDropout2D supports data_format='channels_last' only; "
                             f"received data_format={data_format!r}.")

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise self.shape_error("a 4-D input (batch, height, width, channels)", input_shape)
        return tuple(input_shape)

    def _drop(self, x, seed):
        self.compute_output_shape(x.shape)
        return dropout.spatial_dropout2d_forward(x, self.rate, seed)

    def _undrop(self, dy):
        return dropout.spatial_dropout2d_backward(dy, self._mask)

    def get_config(self):
        # Keras's SpatialDropout2D takes (and writes) no `trainable`: its .keras loader refuses one.
        config = {**super().get_config(), "data_format": "channels_last"}
        config.pop("trainable")
        return config


class GaussianNoise(Dropout):
    """In training, ``x + N(0, stddev**2)`` noise (a regulariser); outside training, the identity.
    Seeds as :class:`Dropout` (a seeded layer's call k draws from ``seed + k``, resumable)."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(0.0, seed=seed, **kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float, np.floating)) or not stddev >= 0:
            raise ValueError(f"GaussianNoise stddev must be a number >= 0; received {stddev!r}.")
        self.stddev = float(stddev)

    def forward(self, x, training=False):
        self._mask = None
        if not training or self.stddev == 0:
            return x
        noise = random_ops.normal(x.shape, 0.0, self.stddev, self._next_seed(), x.dtype)
        return elementwise_nd.binary("add", x, noise)

    def get_config(self):
        config = super().get_config()
        config.pop("rate")
        return {**config, "stddev": self.stddev}


class GaussianDropout(Dropout):
    """In training, ``x * N(1, rate / (1 - rate))`` multiplicative noise (Keras's GaussianDropout);
    outside training, the identity. Seeds as :class:`Dropout`."""

    def _drop(self, x, seed):
        noise = random_ops.normal(x.shape, 1.0, math.sqrt(self.rate / (1.0 - self.rate)), seed, x.dtype)
        return elementwise_nd.binary("multiply", x, noise), noise

    def _undrop(self, dy):
        return elementwise_nd.binary("multiply", dy, self._mask)
