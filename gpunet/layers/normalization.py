"""BatchNormalization over the channels (last) axis."""
from .. import distribute, initializers
from ..primitives import norm, norm_sync
from .base import Layer

__all__ = ["BatchNormalization"]


class BatchNormalization(Layer):
    """Normalise each channel (last axis) to zero mean and unit variance, then scale and shift.

    Input (N, C), (N, H, W, C) or any (..., C); output the same shape. Weights, in Keras's order:
    ``gamma`` (C,) if ``scale``, ``beta`` (C,) if ``center`` (trainable), then ``moving_mean`` and
    ``moving_variance`` (C,) (non-trainable).

    ``forward(x, training=True)`` normalises with the batch's mean and biased variance and
    updates ``moving = momentum * moving + (1 - momentum) * batch`` in place.
    ``training=False``, or a layer with ``trainable=False`` (frozen, as in Keras), normalises with
    the moving statistics and leaves them alone.

    ``synchronized=True`` (Keras 3's argument): under ``gn.distribute.DataParallel`` the batch
    statistics are those of the global batch, every rank's rows together, and so is the
    backward; in one process it changes nothing. Default False: each rank normalises with its
    own part of the batch (as PyTorch DDP and Keras do by default).
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones", synchronized=False,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"BatchNormalization axis must be an int (the channels axis, -1); "
                             f"received axis={axis!r}.")
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"BatchNormalization momentum must be in [0, 1]; received momentum={momentum!r}.")
        if not float(epsilon) > 0.0:
            raise ValueError(f"BatchNormalization epsilon must be positive; received epsilon={epsilon!r}.")
        self.axis = axis
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.synchronized = bool(synchronized)
        self.beta_initializer = initializers.checked(beta_initializer, "beta_initializer")
        self.gamma_initializer = initializers.checked(gamma_initializer, "gamma_initializer")
        self.moving_mean_initializer = initializers.checked(moving_mean_initializer, "moving_mean_initializer")
        self.moving_variance_initializer = initializers.checked(moving_variance_initializer,
                                                        "moving_variance_initializer")
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None
        self._saved = None

    absorbed = None   # a model sets the Epilogue of the activation layer after it: applied here
    # 16-bit x with float32 gamma / beta / statistics: primitives/norm.py sums in float32 and
    # rounds y and dx once (kernels and NumPy reference alike).
    def _check_shape(self, shape, channels=None):
        rank = len(shape)
        if rank < 2:
            raise self.shape_error("an input of at least 2 dimensions (batch, ..., channels)", shape)
        if self.axis not in (-1, rank - 1):
            raise ValueError(f"BatchNormalization '{self.name}' normalises the last axis only (axis=-1); "
                             f"received axis={self.axis} for an input of shape {tuple(shape)}.")
        if shape[-1] is None:
            raise self.shape_error("a known number of channels in the last axis", shape)
        if channels is not None and shape[-1] != channels:
            raise self.shape_error(f"inputs with {channels} channels in the last axis, as when built", shape)

    def build(self, input_shape):
        self._check_shape(input_shape)
        channels = (int(input_shape[-1]),)
        if self.scale:
            self.gamma = self.add_weight("gamma", channels, self.gamma_initializer)
        if self.center:
            self.beta = self.add_weight("beta", channels, self.beta_initializer)
        self.moving_mean = self.add_weight("moving_mean", channels, self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", channels,
                                               self.moving_variance_initializer, trainable=False)
        self.built = True   # also when build() is called directly, so forward() does not build again

    def forward(self, x, training=False):
        self.ensure_built((None, *x.shape[1:]))
        self._check_shape(x.shape, self.moving_mean.shape[0])
        if training and self.trainable:
            sync = distribute.cross_replica() if self.synchronized else None
            if sync is not None:
                return self._synchronized_forward(x, sync)
            y, mean, inv_std, var = norm.batch_norm_train_forward(x, self.gamma, self.beta, self.epsilon,
                                                                  activation=self.absorbed)
            norm.batch_norm_update_moving_stats(self.moving_mean, self.moving_variance, mean, var,
                                                self.momentum)
            self._saved = ("batch", x, mean, inv_std)
            return y
        self._saved = ("moving", x, self.moving_mean, self.moving_variance)
        return norm.batch_norm_inference_forward(x, self.gamma, self.beta, self.moving_mean,
                                                 self.moving_variance, self.epsilon, activation=self.absorbed)

    def _synchronized_forward(self, x, sync):
        """Normalise with the statistics of every rank's rows (see ``gn.distribute.statistics``)."""
        _, local_mean, _, local_var = norm.batch_norm_train_forward(x, None, None, self.epsilon)
        mean, var, inv_std = sync.moments(local_mean, local_var, x.size // x.shape[-1], self.epsilon)
        norm.batch_norm_update_moving_stats(self.moving_mean, self.moving_variance, mean, var, self.momentum)
        self._saved = ("synchronized", x, mean, (var, inv_std, sync))
        return norm.batch_norm_inference_forward(x, self.gamma, self.beta, mean, var, self.epsilon,
                                                 activation=self.absorbed)

    def backward(self, dy):
        if self._saved is None:
            raise RuntimeError(f"BatchNormalization '{self.name}': backward called before forward.")
        mode, x, first, second = self._saved
        if mode == "synchronized":
            var, inv_std, sync = second
            _, dgamma, dbeta = norm.batch_norm_inference_backward(dy, x, self.gamma, first, var, self.epsilon)
            dgamma_sum, dbeta_sum = sync.weighted_sums(dgamma, dbeta)
            dx = norm_sync.batch_norm_backward_from_sums(dy, x, self.gamma, first, inv_std, dgamma_sum, dbeta_sum)
        elif mode == "batch":
            dx, dgamma, dbeta = norm.batch_norm_backward(dy, x, self.gamma, first, second)
        else:
            dx, dgamma, dbeta = norm.batch_norm_inference_backward(dy, x, self.gamma, first, second,
                                                                   self.epsilon)
        grads = ([dgamma] if self.scale else []) + ([dbeta] if self.center else [])
        self.grads = grads if self.trainable else []
        return dx

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "synchronized": self.synchronized,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer)}
