"""Small Keras layers: Identity, Permute, UnitNormalization, ActivityRegularization.

Identity and ActivityRegularization pass values through (the latter adds Keras's activity
penalty, with its gradient, through WeightRulesMixin); Permute and UnitNormalization are call()
layers written with gn.ops, so their kernels are the ops' own (transpose, square, sum, ...).
"""
from .. import ops
from .base import Layer
from .weight_rules import WeightRulesMixin

__all__ = ["Identity", "Permute", "UnitNormalization", "ActivityRegularization"]


class Identity(Layer):
    """The input unchanged: a placeholder where a model needs a layer and no op."""

    def compute_output_shape(self, input_shape):
        return input_shape

    def forward(self, x, training=False):
        return x

    def backward(self, dy):
        self.grads = []
        return dy


class Permute(Layer):
    """Reorders the non-batch axes: ``dims`` is a permutation of 1..rank-1 (Keras counts from 1),
    e.g. ``Permute((2, 1))`` turns (batch, steps, features) into (batch, features, steps)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        try:
            self.dims = tuple(int(d) for d in dims)
        except TypeError:
            raise ValueError(f"Permute '{self.name}': dims must be a tuple of ints; received {dims!r}.") from None
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(f"Permute '{self.name}': dims must be a permutation of 1..{len(self.dims)} "
                             f"(the batch axis 0 stays first); received {dims!r}.")

    def build(self, input_shape):
        if len(input_shape) != len(self.dims) + 1:
            raise self.shape_error(f"inputs of rank {len(self.dims) + 1} for dims {self.dims}", input_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def call(self, inputs):
        return ops.transpose(inputs, (0, *self.dims))

    def get_config(self):
        return {**super().get_config(), "dims": self.dims}


class UnitNormalization(Layer):
    """Each vector along ``axis`` scaled to unit L2 norm: ``x * min(1 / sqrt(sum(x**2)), 1e12)``,
    Keras's ``ops.normalize(x, axis, order=2, epsilon=1e-12)``."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = tuple(axis) if isinstance(axis, (list, tuple)) else int(axis)

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs):
        # 1 / sqrt(max(s, 1e-24)) is Keras's min(rsqrt(s), 1e12) without an inf at s = 0
        squares = ops.sum(ops.square(inputs), axis=self.axis, keepdims=True)
        return inputs / ops.sqrt(ops.maximum(squares, 1e-24))

    def get_config(self):
        return {**super().get_config(), "axis": list(self.axis) if isinstance(self.axis, tuple) else self.axis}


class ActivityRegularization(WeightRulesMixin, Identity):
    """The input unchanged, with ``l1 * sum(|x|) + l2 * sum(x**2)`` (over the batch size, as Keras
    divides every activity penalty) added to the loss and its gradient to the input's."""

    kernel = bias = None
    # Identity's passes, named here so that the weight-rules mixin wraps them with the penalty
    forward, backward = Identity.forward, Identity.backward

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        from ..regularizers import L1L2
        self.l1, self.l2 = float(l1), float(l2)
        super().__init__(activity_regularizer=L1L2(l1=self.l1, l2=self.l2), **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer", None)
        return {**config, "l1": self.l1, "l2": self.l2}
