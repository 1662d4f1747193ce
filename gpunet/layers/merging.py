"""Layers that merge several tensors into one: Concatenate and Add.

They take a list and give one tensor: ``forward([x1, x2, ...]) -> y``, ``backward(dy) ->
[dx1, dx2, ...]``, ``build([shape1, shape2, ...])``.
"""
from ..primitives import shape as shape_ops
from .base import Layer

__all__ = ["Concatenate", "Add"]


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


class Add(_Merge):
    """Elementwise sum of inputs of one shape: ``[(N, ...), (N, ...)] -> (N, ...)``."""

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

    def forward(self, xs, training=False):
        self._input_shapes(xs)
        self._count = len(xs)
        return shape_ops.add_forward(list(xs))

    def backward(self, dy):
        if self._count is None:
            raise RuntimeError(f"Add '{self.name}': backward called before forward.")
        self.grads = []
        return shape_ops.add_backward(dy, self._count)
