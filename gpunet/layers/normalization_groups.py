"""LayerNormalization and GroupNormalization: statistics inside each sample (no moving averages).

Compute goes through ``gpunet.primitives.group_norm`` (kernels/group_norm.cu).
"""
from .. import initializers
from ..primitives import group_norm
from .base import Layer

__all__ = ["LayerNormalization", "GroupNormalization"]


class _GroupNorm(Layer):
    """Shared weights (gamma, beta over the channels, Keras's order), checks and passes."""


    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        kind = type(self).__name__
        if isinstance(axis, (list, tuple)) and len(axis) == 1:   # Keras stores LayerNormalization's as [-1]
            axis = axis[0]
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"{kind} axis must be an int, the channels axis (-1); received axis={axis!r}.")
        if not float(epsilon) > 0.0:
            raise ValueError(f"{kind} epsilon must be positive; received epsilon={epsilon!r}.")
        self.axis, self.epsilon = axis, float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.checked(beta_initializer, f"{kind} beta_initializer")
        self.gamma_initializer = initializers.checked(gamma_initializer, f"{kind} gamma_initializer")
        self.gamma = self.beta = None
        self._saved = None

    _rms = False

    def _check_shape(self, shape):
        rank = len(shape)
        if rank < 2:
            raise self.shape_error("an input of at least 2 dimensions (batch, ..., channels)", shape)
        if self.axis not in (-1, rank - 1):
            raise ValueError(f"{type(self).__name__} '{self.name}' normalises over the last axis only "
                             f"(axis=-1); received axis={self.axis} for an input of shape {tuple(shape)}.")
        if shape[-1] is None:
            raise self.shape_error("a known number of channels in the last axis", shape)
        if self.gamma is not None or self.beta is not None:
            built = (self.gamma if self.gamma is not None else self.beta).shape[0]
            if shape[-1] != built:
                raise self.shape_error(f"inputs with {built} channels in the last axis, as when built", shape)

    def build(self, input_shape):
        self._check_shape(input_shape)
        channels = (int(input_shape[-1]),)
        if self.scale or self._rms:
            self.gamma = self.add_weight("gamma", channels, self.gamma_initializer)
        if self.center and not self._rms:
            self.beta = self.add_weight("beta", channels, self.beta_initializer)

    def _groups_and_pixels(self, shape):
        raise NotImplementedError

    def forward(self, x, training=False):
        self._check_shape(x.shape)
        groups, pixels = self._groups_and_pixels(x.shape)
        y, mean, inv_std = group_norm.group_norm_forward(x, self.gamma, self.beta, groups, pixels, self.epsilon,
                                                         self._rms)
        self._saved = (x, mean, inv_std, groups, pixels)
        return y

    def backward(self, dy):
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__} '{self.name}': backward called before forward.")
        x, mean, inv_std, groups, pixels = self._saved
        dx, dgamma, dbeta = group_norm.group_norm_backward(dy, x, self.gamma, mean, inv_std, groups, pixels,
                                                           self._rms)
        grads = ([dgamma] if self.gamma is not None else []) + ([dbeta] if self.beta is not None else [])
        self.grads = grads if self.trainable else []
        return dx

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer)}


class LayerNormalization(_GroupNorm):
    """Normalise each sample's last axis to zero mean and unit variance, then ``* gamma + beta``.

    Input (..., C), output the same shape. Weights (Keras's order): ``gamma`` (C,) if ``scale``
    (or ``rms_scaling``), ``beta`` (C,) if ``center`` and not ``rms_scaling``. ``rms_scaling``
    is Keras 3's: ``y = x / sqrt(var(x) + epsilon) * gamma``, x not centred. Only ``axis=-1``.
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False, **kwargs):
        super().__init__(axis=axis, epsilon=epsilon, center=center, scale=scale, **kwargs)
        self.rms_scaling = self._rms = bool(rms_scaling)

    def _groups_and_pixels(self, shape):
        return 1, 1

    def get_config(self):
        return {**super().get_config(), "rms_scaling": self.rms_scaling}


class GroupNormalization(_GroupNorm):
    """Normalise each sample over groups of channels: the C channels are cut into ``groups`` groups
    of C / groups, and each (sample, group) is normalised over all its pixels and channels, then
    ``* gamma + beta`` per channel.

    Input (N, ..., C), output the same shape; weights ``gamma``, ``beta`` (C,), Keras's order.
    """

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(axis=axis, epsilon=epsilon, center=center, scale=scale, **kwargs)
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"GroupNormalization groups must be a positive int; received groups={groups!r}.")
        self.groups = groups

    def _check_shape(self, shape):
        super()._check_shape(shape)
        channels = shape[-1]
        if channels < self.groups:
            raise ValueError(f"Number of groups ({self.groups}) cannot be more than the number of channels "
                             f"({channels}).")
        if channels % self.groups:
            raise ValueError(f"Number of groups ({self.groups}) must be a multiple of the number of channels "
                             f"({channels}).")

    def _groups_and_pixels(self, shape):
        pixels = 1
        for size in shape[1:-1]:
            pixels *= size
        return self.groups, pixels

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}
