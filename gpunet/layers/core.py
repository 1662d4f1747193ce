"""Input, Dense, Activation, Flatten, Reshape, Dropout."""
from .base import Layer, SymbolicTensor

__all__ = ["Input", "InputLayer"]


class InputLayer(Layer):
    """The source of a functional graph: holds the per-sample shape, computes nothing."""

    def __init__(self, shape=None, batch_size=None, name=None, dtype="float32", **kwargs):
        if shape is None:
            raise ValueError("Input needs a shape, e.g. Input((28, 28, 1)) for one 28x28 grey image per sample.")
        super().__init__(name=name, dtype=dtype, **kwargs)
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
        return {"shape": self.shape, "batch_size": self.batch_size, "name": self.name, "dtype": self.dtype.name}


def Input(shape, batch_size=None, name=None, dtype="float32"):
    """A symbolic input of per-sample ``shape`` (no batch axis), e.g. ``Input((32, 32, 3))``."""
    return InputLayer(shape=shape, batch_size=batch_size, name=name, dtype=dtype).output
