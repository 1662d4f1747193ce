"""The layer contract every built-in and user layer follows.

    layer.build(input_shape)         creates weights (Keras's order); input_shape has batch None
    y  = layer.forward(x, training)  backend arrays in and out; keeps what backward needs
    dx = layer.backward(dy)          returns d(loss)/d(input); fills layer.grads (trainable order)
    layer.get_weights() / set_weights([...])   NumPy arrays
    y = layer(x)                     eager: forward(x, training=False); on a SymbolicTensor: a graph node

A subclass either writes ``forward`` / ``backward`` itself (fused, hand-written) or only
``call(inputs, training=None)`` with gn.ops, whose backward the tape derives
(``gpunet/autodiff/layer_call.py``).
"""
import numpy as np

from .. import backend, initializers, mixed_precision, utils
from ..autodiff import layer_call
from . import autocast

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
    computes_half = True   # False: runs on float32 copies of 16-bit inputs (see autocast.work_dtype)
    _autocasts = True      # False: no policy casts around forward / backward (models, Input)

    def __init__(self, name=None, trainable=True, input_shape=None, dtype=None, **unknown):
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected argument(s): {', '.join(sorted(unknown))}.")
        self.name = name or unique_name(utils.snake_case(type(self).__name__))
        self.trainable = trainable
        self.dtype_policy = dtype      # a name or a DTypePolicy; None: the global policy now
        self.built = False
        self.input_shape = (None, *input_shape) if input_shape is not None else None
        self._vars = []      # [name, array, created_trainable], in creation order
        self.grads = []

    # -- to override ---------------------------------------------------------------
    def build(self, input_shape):
        """Create weights for inputs of ``input_shape`` (batch axis None)."""

    def compute_output_shape(self, input_shape):
        if hasattr(self, "call"):     # found by running call() on a batch of one
            return layer_call.infer_output_shape(self, input_shape)
        return tuple(input_shape)

    def forward(self, x, training=False):
        if hasattr(self, "call"):
            return layer_call.forward(self, x, training)
        raise NotImplementedError(f"{type(self).__name__} must define call(inputs) or forward(x, training).")

    def backward(self, dy):
        if hasattr(self, "call"):
            return layer_call.backward(self, dy)
        raise NotImplementedError(f"{type(self).__name__} must define backward(dy) (or call(inputs) instead "
                                  "of forward).")

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "dtype": mixed_precision.serialize(self._dtype_policy)}

    # -- dtype policy (Keras 3's properties; gpunet/mixed_precision.py) --------------------------
    @property
    def dtype_policy(self):
        """The layer's DTypePolicy (set with a name, a policy, or None for the global one)."""
        return self._dtype_policy

    @dtype_policy.setter
    def dtype_policy(self, value):
        owner = f"{type(self).__name__} '{self.name}'"
        self._dtype_policy = mixed_precision.layer_policy(value, owner)
        self._compute_np = autocast.np_dtype(self._dtype_policy.compute_dtype)
        inner = self.__dict__.get("_activation")
        if isinstance(inner, Layer):   # an activation= computes on this layer's output, in its dtype
            inner.dtype_policy = self._dtype_policy

    @property
    def compute_dtype(self):
        """The dtype the layer computes in and outputs (a string: 'bfloat16' under mixed_bfloat16)."""
        return self._dtype_policy.compute_dtype

    @property
    def variable_dtype(self):
        """The dtype of the layer's weights (a string: 'float32' under the mixed policies)."""
        return self._dtype_policy.variable_dtype

    @property
    def dtype(self):
        """The variable dtype, as Keras 3's ``layer.dtype`` (a string)."""
        return self._dtype_policy.variable_dtype

    @dtype.setter
    def dtype(self, value):
        # gpunet's older spelling of ``layer.dtype_policy = value`` (tests set float64 this way).
        self.dtype_policy = value

    def compute_weight(self, weight):
        """``weight`` as the forward computes with it: cast to the compute dtype under a mixed
        policy (once per forward), else the weight itself."""
        return autocast.compute_weight(self, weight)

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
            out = SymbolicTensor(self.compute_output_shape(in_shape), self, items)
            self.__dict__.setdefault("_symbolic_calls", []).append((inputs, out))
            return out
        if layer_call.wants_tape_call(inputs):    # gn.Tensor inputs, or a GradientTape recording
            return layer_call.call_layer(self, inputs, training)
        # Eager calls build from the concrete shape, so build-time errors quote what really came.
        self.ensure_built([tuple(t.shape) for t in items] if many else tuple(items[0].shape))
        return self.forward(inputs, training=training)

    # -- Keras's layer.input / layer.output: the tensors of the first call in a functional graph
    def _first_call(self, what):
        calls = self.__dict__.get("_symbolic_calls")
        if not calls:
            raise AttributeError(f"Layer '{self.name}' has never been called on symbolic inputs (gn.Input), "
                                 f"so it has no {what}.")
        return calls[0]

    @property
    def output(self):
        """The symbolic output of the layer's first functional call, e.g. for feature extraction:
        ``gn.Model(model.inputs, model.get_layer("conv").output)``."""
        return self._first_call("output")[1]

    @output.setter
    def output(self, tensor):   # an InputLayer's own tensor
        self.__dict__["_symbolic_calls"] = [([], tensor)]

    @property
    def input(self):
        """The symbolic input(s) of the layer's first functional call (an InputLayer: its output)."""
        inputs, out = self._first_call("input")
        return out if isinstance(inputs, list) and not inputs else inputs

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
        autocast.wrap(cls)

    def add_weight(self, name=None, shape=None, initializer=None, trainable=True, dtype=None):
        """A new weight array: ``add_weight("kernel", (3, 4), "glorot_uniform")`` or Keras's
        ``add_weight(shape=(3, 4), initializer="zeros", name="kernel")``; the initializer
        defaults to glorot_uniform, as Keras's."""
        if name is not None and not isinstance(name, str):   # Keras's positional order: shape first
            name, shape = None, name
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape or ())
        value = initializers.get(initializer or "glorot_uniform")(shape)
        dtype = autocast.np_dtype(np.dtype(dtype).name if isinstance(dtype, type) else dtype or self.variable_dtype)
        array = backend.current().asarray(value, dtype=dtype)
        self._vars.append([name or f"variable_{len(self._vars)}", array, trainable])
        return array

    def add_loss(self, value):
        """Inside call(): add a scalar (a gn.ops result) to the loss the model minimises."""
        layer_call.add_loss(self, value)

    @property
    def losses(self):
        """The scalars ``add_loss`` recorded in the last call (0-d backend arrays), this layer's and
        its sublayers'; fit adds them to the compiled loss."""
        return [t.data for t in layer_call.added_losses(self)]

    def _all_vars(self):
        """[name, array, trainable] of this layer, and of the layers a call() layer holds."""
        return layer_call.all_vars(self) if hasattr(self, "call") else self._vars

    @property
    def weights(self):
        """Trainable variables first, then non-trainable, each in creation order (Keras's order)."""
        found = self._all_vars()
        return [v[1] for v in found if v[2]] + [v[1] for v in found if not v[2]]

    @property
    def weight_names(self):
        found = self._all_vars()
        return [v[0] for v in found if v[2]] + [v[0] for v in found if not v[2]]

    @property
    def trainable_weights(self):
        return [v[1] for v in self._all_vars() if v[2]] if self.trainable else []

    @property
    def non_trainable_weights(self):
        return [v[1] for v in self._all_vars() if not v[2] or not self.trainable]

    # Keras 3's other names for the same lists (custom training loops use these).
    variables = property(lambda self: self.weights)
    trainable_variables = property(lambda self: self.trainable_weights)
    non_trainable_variables = property(lambda self: self.non_trainable_weights)

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


autocast.wrap(Layer)   # the forward / backward of call() layers
