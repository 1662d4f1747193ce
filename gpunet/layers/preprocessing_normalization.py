"""Normalization: Keras 3's feature-wise ``(x - mean) / sqrt(variance)``, from given statistics or
learned from data with ``adapt``.

``adapt`` runs on the host (NumPy, float64 sums): it reads the data once, batch by batch, as
Keras's does, and combines the batches' means and variances exactly. The statistics are the
layer's non-trainable weights ``mean``, ``variance`` and ``count`` (Keras's names, order and
values, so .weights.h5 files are Keras's; Keras 3.15's adapt leaves ``count`` at 0, and so does this); the normalisation itself is a call() on gn.ops (broadcast
kernels on the kernel backends).
"""
import math

import numpy as np

from .. import backend, ops
from .base import Layer

__all__ = ["Normalization"]

_EPSILON = 1e-7   # Keras's backend.epsilon(): the smallest standard deviation divided by


class Normalization(Layer):
    """``(x - mean) / max(sqrt(variance), 1e-7)`` per position along ``axis`` (``invert=True``:
    ``mean + x * max(sqrt(variance), 1e-7)``).

    axis: the axis (or tuple of axes) that keeps its own statistics, -1 (features / channels)
    by default; None: one mean and variance over everything. mean / variance: given statistics
    (a number, or shaped like the kept axes); without them, call ``adapt(data)`` first.
    """

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        self.axis = () if axis is None else (tuple(axis) if isinstance(axis, (list, tuple)) else (int(axis),))
        if (mean is None) != (variance is None):
            raise ValueError(f"Normalization '{self.name}': pass both mean and variance, or neither (then "
                             f"call adapt()); received mean={mean!r}, variance={variance!r}.")
        self.input_mean, self.input_variance, self.invert = mean, variance, bool(invert)
        self.adapted = mean is not None

    # -- shapes ---------------------------------------------------------------------------
    def build(self, input_shape):
        rank = len(input_shape)
        if any(not -rank <= a < rank for a in self.axis):
            raise self.shape_error(f"inputs with every axis of {self.axis} (rank > {max(map(abs, self.axis))})",
                                   input_shape)
        self._keep = tuple(sorted(a % rank for a in self.axis))
        if any(input_shape[a] is None for a in self._keep):
            raise self.shape_error(f"a known size on the kept axes {self._keep}", input_shape)
        self._reduce = tuple(a for a in range(rank) if a not in self._keep)
        self._broadcast = tuple(input_shape[a] if a in self._keep else 1 for a in range(rank))
        stats_shape = tuple(input_shape[a] for a in self._keep)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight(name="mean", shape=stats_shape, initializer="zeros", trainable=False)
            self.adapt_variance = self.add_weight(name="variance", shape=stats_shape, initializer="ones",
                                                  trainable=False)
            self.count = self.add_weight(name="count", shape=(), initializer="zeros", trainable=False, dtype="int64")
        else:
            self._given = tuple(backend.current().asarray(_broadcast_stat(v, self._keep, self._broadcast, rank))
                                for v in (self.input_mean, self.input_variance))

    def compute_output_shape(self, input_shape):
        return input_shape

    # -- adapt ----------------------------------------------------------------------------
    def adapt(self, data):
        """Learn ``mean`` and ``variance`` from ``data``: an array (one batch), a PyDataset, a
        gn Dataset, or any iterable of batches (arrays, or ``(x, ...)`` tuples whose x is used)."""
        if self.input_mean is not None:
            raise ValueError(f"Normalization '{self.name}' was given mean and variance; adapt() would "
                             f"replace them.")
        batches = iter([np.asarray(data)]) if hasattr(data, "shape") else _batches(data)
        first = next(batches, None)
        if first is None:
            raise ValueError(f"Normalization '{self.name}'.adapt(): the data gave no batches.")
        self.ensure_built((None, *first.shape[1:]))
        mean = variance = None
        count = 0
        for batch in _chain(first, batches):
            if batch.shape[1:] != first.shape[1:]:
                raise ValueError(f"Normalization '{self.name}'.adapt(): batches of shape {first.shape} and "
                                 f"{batch.shape} differ after the batch axis.")
            batch = batch.astype(np.float64)
            b_mean, b_var = batch.mean(axis=self._reduce), batch.var(axis=self._reduce)
            b_count = math.prod(batch.shape[a] for a in self._reduce)
            if mean is None:
                mean, variance, count = b_mean, b_var, b_count
                continue
            total = count + b_count
            share = b_count / total   # Chan et al.: pooled mean and variance of two groups
            new_mean = mean + (b_mean - mean) * share
            variance = (variance + (mean - new_mean) ** 2) * (1 - share) + (b_var + (b_mean - new_mean) ** 2) * share
            mean, count = new_mean, total
        device = backend.current()
        self.adapt_mean[...] = device.asarray(mean.astype(np.float32).reshape(self.adapt_mean.shape))
        self.adapt_variance[...] = device.asarray(variance.astype(np.float32).reshape(self.adapt_variance.shape))
        self.adapted = True   # (``count`` stays as it was: Keras 3's adapt leaves it at 0 too)

    # -- the layer ------------------------------------------------------------------------
    def call(self, inputs):
        if self.input_mean is not None:
            mean, variance = (ops.convert_to_tensor(v) for v in self._given)
        else:
            mean = ops.reshape(ops.convert_to_tensor(self.adapt_mean), self._broadcast)
            variance = ops.reshape(ops.convert_to_tensor(self.adapt_variance), self._broadcast)
        std = ops.maximum(ops.sqrt(ops.cast(variance, inputs.dtype)), _EPSILON)
        mean = ops.cast(mean, inputs.dtype)
        return mean + inputs * std if self.invert else (inputs - mean) / std

    def get_config(self):
        def plain(v):
            return v if v is None or isinstance(v, (int, float)) else np.asarray(v).tolist()
        axis = None if not self.axis else (self.axis[0] if len(self.axis) == 1 else list(self.axis))
        return {**super().get_config(), "axis": axis, "mean": plain(self.input_mean),
                "variance": plain(self.input_variance), "invert": self.invert}


def _broadcast_stat(value, keep, broadcast, rank):
    """A given mean or variance (a number, or shaped like the kept axes) in the inputs' rank."""
    value = np.asarray(value, dtype=np.float32)
    if value.ndim == 0:
        return np.broadcast_to(value, broadcast).copy()
    expanded = [1] * rank
    for i in range(1, value.ndim + 1):
        expanded[keep[-i]] = value.shape[-i]
    return np.broadcast_to(value.reshape(expanded), broadcast).copy()


def _batches(data):
    """The x arrays of a dataset or iterable of batches."""
    if hasattr(data, "__getitem__") and hasattr(data, "__len__") and hasattr(data, "on_epoch_end"):   # PyDataset
        data = (data[i] for i in range(len(data)))
    for batch in data:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        yield np.asarray(backend.current().to_numpy(x) if not isinstance(x, np.ndarray) else x)


def _chain(first, rest):
    yield first
    yield from rest
