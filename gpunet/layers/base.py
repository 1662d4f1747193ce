"""The layer contract every built-in and user layer follows.

    layer.build(input_shape)         creates weights (Keras's order); input_shape has batch None
    y  = layer.forward(x, training)  backend arrays in and out; keeps what backward needs
    dx = layer.backward(dy)          returns d(loss)/d(input); fills layer.grads (trainable order)
    layer.get_weights() / set_weights([...])   NumPy arrays
    y = layer(x)                     eager: forward(x, training=False); on a SymbolicTensor: a graph node
"""
import numpy as np

from .. import backend, initializers, utils

_name_counts = {}


def unique_name(base):
    count = _name_counts.get(base, 0)
    _name_counts[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


def clear_session():
    """Restart automatic layer names (``dense``, ``dense_1``, ...) from zero."""
    _name_counts.clear()


class SymbolicTensor:
    """A batch of tensors yet to come in a functional graph: its shape (batch None) and origin."""

    def __init__(self, shape, layer=None, inputs=()):
        self.shape, self.layer, self.inputs = tuple(shape), layer, list(inputs)

    def __repr__(self):
        origin = self.layer.name if self.layer is not None else "?"
        return f"<SymbolicTensor shape={self.shape} from {origin!r}>"


class Layer:
    def __init__(self, name=None, trainable=True, input_shape=None, dtype="float32", **unknown):
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected argument(s): {', '.join(sorted(unknown))}.")
        self.name = name or unique_name(utils.snake_case(type(self).__name__))
        self.trainable = trainable
        self.dtype = np.dtype(dtype)   # float64 layers exist for gradient checks
        self.built = False
        self.input_shape = (None, *input_shape) if input_shape is not None else None
        self._vars = []      # [name, array, created_trainable], in creation order
        self.grads = []

    # -- to override ---------------------------------------------------------------
    def build(self, input_shape):
        """Create weights for inputs of ``input_shape`` (batch axis None)."""

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def forward(self, x, training=False):
        raise NotImplementedError(f"{type(self).__name__} must define forward(x, training).")

    def backward(self, dy):
        raise NotImplementedError(f"{type(self).__name__} must define backward(dy).")

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # -- shared machinery ----------------------------------------------------------
    def __call__(self, inputs, training=False):
        many = isinstance(inputs, (list, tuple))
        items = list(inputs) if many else [inputs]
        symbolic = [isinstance(t, SymbolicTensor) for t in items]
        if any(symbolic):
            if not all(symbolic):
                raise TypeError(f"Layer '{self.name}' got a mix of symbolic and concrete inputs.")
            shapes = [t.shape for t in items]
            in_shape = shapes if many else shapes[0]
            self.ensure_built(in_shape)
            return SymbolicTensor(self.compute_output_shape(in_shape), self, items)
        # Eager calls build from the concrete shape, so build-time errors quote what really came.
        self.ensure_built([tuple(t.shape) for t in items] if many else tuple(items[0].shape))
        return self.forward(inputs, training=training)

    def ensure_built(self, input_shape):
        if not self.built:
            self.build(input_shape)
            self.input_shape, self.built = input_shape, True

    def __init_subclass__(cls, **kwargs):
        # A subclass's build marks the layer built however it is reached (directly or by a call),
        # so a direct layer.build(shape) followed by a call never creates the weights twice.
        super().__init_subclass__(**kwargs)
        if "build" in cls.__dict__:
            user_build = cls.__dict__["build"]

            def build(self, input_shape, _user_build=user_build):
                _user_build(self, input_shape)
                self.input_shape = input_shape
                self.built = True
            build.__doc__ = user_build.__doc__
            cls.build = build

    def add_weight(self, name, shape, initializer="zeros", trainable=True):
        value = initializers.get(initializer)(tuple(int(s) for s in shape))
        array = backend.current().asarray(value, dtype=self.dtype)
        self._vars.append([name, array, trainable])
        return array

    @property
    def weights(self):
        """Trainable variables first, then non-trainable, each in creation order (Keras's order)."""
        return [v[1] for v in self._vars if v[2]] + [v[1] for v in self._vars if not v[2]]

    @property
    def weight_names(self):
        return [v[0] for v in self._vars if v[2]] + [v[0] for v in self._vars if not v[2]]

    @property
    def trainable_weights(self):
        return [v[1] for v in self._vars if v[2]] if self.trainable else []

    @property
    def non_trainable_weights(self):
        return [v[1] for v in self._vars if not v[2] or not self.trainable]

    def get_weights(self):
        return [np.array(backend.current().to_numpy(w), copy=True) for w in self.weights]

    def set_weights(self, values):
        """Copy NumPy arrays into this layer's weights (in place), after checking all of them."""
        targets = self.weights
        if len(values) != len(targets):
            raise ValueError(f"Layer '{self.name}' expects {len(targets)} weight arrays "
                             f"{[tuple(t.shape) for t in targets]}; received {len(values)}.")
        for name, target, value in zip(self.weight_names, targets, values):
            if tuple(np.shape(value)) != tuple(target.shape):
                raise ValueError(f"Layer '{self.name}' weight '{name}' has shape {tuple(target.shape)}; "
                                 f"received shape {tuple(np.shape(value))}.")
        for target, value in zip(targets, values):
            target[...] = backend.current().asarray(value, dtype=target.dtype)

    def count_params(self):
        return int(sum(np.prod(w.shape) for w in self.weights))

    def shape_error(self, expected, received):
        """The error every layer raises for a bad input shape: names the layer, expected and received."""
        return ValueError(f"{type(self).__name__} '{self.name}' expects {expected}; "
                          f"received shape {tuple(received)}.")

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"
