"""Layers that merge several tensors into one: Concatenate, Add, Subtract, Multiply, Average,
Maximum, Minimum, and their functional forms (``add([a, b])``, ``concatenate([a, b])``, ...).

They take a list and give one tensor: ``forward([x1, x2, ...]) -> y``, ``backward(dy) ->
[dx1, dx2, ...]``, ``build([shape1, shape2, ...])``.
"""
from ..primitives import merge as merge_ops
from ..primitives import shape as shape_ops
from .base import Layer

__all__ = ["Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
           "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate"]


class _Merge(Layer):
    """Shared list handling; subclasses define ``_merged_shape(shapes)`` and the two passes."""

    def _error(self, expected, shapes):
        return ValueError(f"{type(self).__name__} '{self.name}' expects {expected}; "
                          f"received shapes {[tuple(s) for s in shapes]}.")

    def _check_list(self, shapes):
        if not isinstance(shapes, (list, tuple)) or not shapes or \
                not all(isinstance(s, (list, tuple)) for s in shapes):
            raise ValueError(f"{type(self).__name__} '{self.name}' expects a list of inputs, "
                             f"e.g. layer([a, b]); received {shapes!r}.")
        if len({len(s) for s in shapes}) != 1:
            raise self._error("inputs of one rank", shapes)

    def compute_output_shape(self, input_shapes):
        self._check_list(input_shapes)
        return self._merged_shape([tuple(s) for s in input_shapes])

    def _input_shapes(self, xs):
        if not isinstance(xs, (list, tuple)):
            raise ValueError(f"{type(self).__name__} '{self.name}' expects a list of inputs, "
                             f"e.g. layer([a, b]); received one array of shape {tuple(xs.shape)}.")
        shapes = [tuple(x.shape) for x in xs]
        self.compute_output_shape(shapes)
        return shapes


class Concatenate(_Merge):
    """Join inputs along ``axis`` (default -1, the channels); the other axes must match.

    ``[(N, H, W, C1), (N, H, W, C2)] -> (N, H, W, C1 + C2)``.
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"Concatenate axis must be an int; received axis={axis!r}.")
        self.axis = axis
        self._sizes = None

    def _merged_shape(self, shapes):
        rank = len(shapes[0])
        if not -rank <= self.axis < rank:
            raise self._error(f"inputs with an axis {self.axis} to join along", shapes)
        axis = self.axis % rank
        for d in range(rank):
            known = {s[d] for s in shapes if s[d] is not None}
            if d != axis and len(known) > 1:
                raise self._error(f"inputs of matching shapes except on axis {self.axis}", shapes)
        out = list(shapes[0])
        sizes = [s[axis] for s in shapes]
        out[axis] = None if None in sizes else sum(sizes)
        return tuple(out)

    def forward(self, xs, training=False):
        shapes = self._input_shapes(xs)
        self._sizes = [s[self.axis] for s in shapes]
        return shape_ops.concat_forward(list(xs), self.axis)

    def backward(self, dy):
        if self._sizes is None:
            raise RuntimeError(f"Concatenate '{self.name}': backward called before forward.")
        self.grads = []
        return shape_ops.concat_backward(dy, self._sizes, self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class _ElementwiseMerge(_Merge):
    """Inputs of one shape in, one of that shape out (Keras also broadcasts; gpunet does not)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._count = None

    def _merged_shape(self, shapes):
        out = []
        for dims in zip(*shapes):
            known = {d for d in dims if d is not None}
            if len(known) > 1:
                raise self._error("inputs of one shape", shapes)
            out.append(known.pop() if known else None)
        return tuple(out)

    def _check_backward(self):
        if self._count is None:
            raise RuntimeError(f"{type(self).__name__} '{self.name}': backward called before forward.")
        self.grads = []


class Add(_ElementwiseMerge):
    """Elementwise sum of inputs of one shape: ``[(N, ...), (N, ...)] -> (N, ...)``."""

    def forward(self, xs, training=False):
        self._input_shapes(xs)
        self._count = len(xs)
        return shape_ops.add_forward(list(xs))

    def backward(self, dy):
        self._check_backward()
        return shape_ops.add_backward(dy, self._count)


class Subtract(_ElementwiseMerge):
    """``a - b`` of exactly two inputs of one shape: ``[(N, ...), (N, ...)] -> (N, ...)``."""

    def _merged_shape(self, shapes):
        if len(shapes) != 2:
            raise ValueError(f"A `Subtract` layer should be called on exactly 2 inputs. "
                             f"Received: input_shape={[tuple(s) for s in shapes]}")
        return super()._merged_shape(shapes)

    def forward(self, xs, training=False):
        self._input_shapes(xs)
        self._count = 2
        return merge_ops.subtract_forward(*xs)

    def backward(self, dy):
        self._check_backward()
        return merge_ops.subtract_backward(dy)


class Multiply(_ElementwiseMerge):
    """Elementwise product of inputs of one shape (left to right); backward needs the inputs."""

    def forward(self, xs, training=False):
        self._input_shapes(xs)
        self._count, self._xs = len(xs), list(xs)
        return shape_ops.add_forward(self._xs) if len(xs) == 1 else merge_ops.multiply_forward(self._xs)

    def backward(self, dy):
        self._check_backward()
        return shape_ops.add_backward(dy, 1) if self._count == 1 else merge_ops.multiply_backward(dy, self._xs)


class Average(_ElementwiseMerge):
    """Elementwise mean of inputs of one shape: the sum in input order, divided by their count."""

    def forward(self, xs, training=False):
        self._input_shapes(xs)
        self._count = len(xs)
        return merge_ops.average_forward(list(xs))

    def backward(self, dy):
        self._check_backward()
        return merge_ops.average_backward(dy, self._count)


class _Extreme(_ElementwiseMerge):
    _kind = None

    def forward(self, xs, training=False):
        self._input_shapes(xs)
        self._count = len(xs)
        if len(xs) == 1:
            self._winner = None
            return shape_ops.add_forward(list(xs))
        y, self._winner = merge_ops.extreme_forward(list(xs), self._kind)
        return y

    def backward(self, dy):
        self._check_backward()
        if self._winner is None:
            return shape_ops.add_backward(dy, 1)
        return merge_ops.extreme_backward(dy, self._winner, self._count)


class Maximum(_Extreme):
    """Elementwise maximum of inputs of one shape; the gradient goes to the input that held the
    maximum (the first one on ties: Keras's JAX backend splits a tie evenly)."""

    _kind = "maximum"


class Minimum(_Extreme):
    """Elementwise minimum of inputs of one shape; ties as in :class:`Maximum`."""

    _kind = "minimum"


# -- functional forms, as keras.layers.add(inputs, **kwargs) -----------------------------------
def add(inputs, **kwargs):
    """``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """``Subtract(**kwargs)(inputs)``: exactly two inputs."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """``Multiply(**kwargs)(inputs)``."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """``Average(**kwargs)(inputs)``."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """``Maximum(**kwargs)(inputs)``."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """``Minimum(**kwargs)(inputs)``."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """``Concatenate(axis=axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)
