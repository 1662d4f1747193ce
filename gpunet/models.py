"""Models: a functional graph of layer calls (``Model``) and a chain of layers (``Sequential``).

A model is itself a Layer: ``forward`` runs its layers in topological order, ``backward`` runs
them in reverse and sums the gradients where one tensor feeds several layers (skip
connections), so a model nests inside another model like any layer. ``compile`` / ``fit`` /
``evaluate`` / ``predict`` come from ``training.Trainer``; ``summary`` from ``summary``. The
functional graph's set-up and backward walk are ``functional.FunctionalGraph``'s, the config
``model_config.ModelConfig``'s (both mixed into Model).

    inputs = gn.Input((32, 32, 3))
    x = gn.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    outputs = gn.layers.Dense(10, activation="softmax")(gn.layers.Flatten()(x))
    model = gn.Model(inputs, outputs)
"""
from . import backend
from . import shared
from .autodiff import layer_call, subclassed
from .functional import FunctionalGraph
from .graph import as_list, mark_absorbed
from .layers.base import Layer, unique_name
from .layers.core import InputLayer
from .layers.weight_rules import model_regularization_losses
from .model_config import ModelConfig, _serialize_layer, deserialize_layer  # noqa: F401  (sequential, saving)
from .training import Trainer
from .saving import load_model

__all__ = ["Model", "Sequential", "load_model"]


class Model(FunctionalGraph, ModelConfig, Trainer, Layer):
    """A functional model: layers called on ``gn.Input`` tensors, from ``inputs`` to ``outputs``.

    ``inputs`` / ``outputs`` are a SymbolicTensor or a list of them (a list makes ``forward``
    take / return a list). Forward: arrays ``(batch, *input_shape)`` in, ``(batch, *output_shape)``
    out. A layer called more than once (a shared layer) uses one set of weights and gets the sum
    of its calls' gradients (see ``gpunet.shared``).
    """

    _subclassed = False         # True for class MyModel(gn.Model) with call() (gpunet/autodiff/subclassed.py)
    _autocasts = False          # each layer inside casts its own inputs (gpunet/layers/autocast.py)

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        if inputs is None and outputs is None:   # class MyModel(gn.Model) with layers and call()
            subclassed.init(self, name=name, trainable=trainable, **kwargs)
            return
        # The model's policy is Keras's (``dtype=``, else the global one); data is converted to
        # each Input's dtype batch by batch, and each layer casts what it reads (autocast).
        super().__init__(name=name or unique_name("functional"), trainable=trainable, **kwargs)
        self._init_training()
        self._set_graph(inputs, outputs)
        if not trainable:
            self.trainable = False   # now that there are layers to freeze

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """As in Keras, setting a model's ``trainable`` sets every layer's inside it: a frozen
        model's BatchNormalization layers then run in inference mode, and no layer in it
        computes weight gradients."""
        self._trainable = bool(value)
        for layer in self._own_layers():
            layer.trainable = self._trainable

    def _own_layers(self):
        """The layers so far (none while the constructor has not yet set the graph up)."""
        try:
            return self.layers
        except (AttributeError, KeyError):
            return []

    def __call__(self, inputs, training=False):
        """Layer.__call__; a subclassed model whose call() returns a dict gives the dict back."""
        return subclassed.structured(self, super().__call__(inputs, training=training))

    @property
    def layers(self):
        """Layers in topological order, each once (a shared layer at its first call), Input layers
        included (as Keras lists a functional model)."""
        if self._subclassed:
            return layer_call.tracked_layers(self)
        return shared.unique_layers(self._nodes)

    @property
    def input(self):
        """Keras's ``model.input``: the Input tensor (a list for several inputs)."""
        if self._subclassed or not self.inputs:
            return Layer.input.fget(self)
        return list(self.inputs) if self._many_inputs else self.inputs[0]

    @property
    def output(self):
        """Keras's ``model.output``: the output tensor (a list for several outputs)."""
        if self._subclassed or not self.outputs:
            return Layer.output.fget(self)
        return list(self.outputs) if self._many_outputs else self.outputs[0]

    def get_layer(self, name):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"Model '{self.name}' has no layer named {name!r}; "
                         f"its layers are {[layer.name for layer in self.layers]}.")

    def build(self, input_shape):
        """A functional model is built when it is made; a subclassed one by a first call."""
        if self._subclassed:
            subclassed.build(self, input_shape)

    def compute_output_shape(self, input_shape):
        self._check_inputs([(None, *s[1:]) for s in (input_shape if self._many_inputs else [input_shape])],
                           shapes_only=True)
        return self.output_shape

    def _check_inputs(self, xs, shapes_only=False):
        """Raise a clear error unless ``xs`` (arrays, or shapes) fit the model's Inputs."""
        if self._subclassed:
            return subclassed.adopt_inputs(self, xs, shapes_only)
        expected = [t.shape for t in self.inputs]
        if len(xs) != len(expected):
            raise ValueError(f"Model '{self.name}' expects {len(expected)} inputs of shapes {expected}; "
                             f"received {len(xs)}.")
        for want, x in zip(expected, xs):
            got = tuple(x) if shapes_only else tuple(x.shape)
            fits = len(got) == len(want) and all(w is None or w == g for w, g in zip(want[1:], got[1:]))
            if not fits:
                raise ValueError(f"Model '{self.name}' expects input shape {want}; received shape {got}.")

    # -- forward and backward ------------------------------------------------------
    def _split_inputs(self, x):
        if self._many_inputs != isinstance(x, (list, tuple)):
            kind = "a list of arrays" if self._many_inputs else "one array"
            raise TypeError(f"Model '{self.name}' takes {kind} as input; received {type(x).__name__}.")
        return as_list(x)

    def forward(self, x, training=False):
        """Run every layer in topological order; ``x`` and the result as the model's inputs / outputs."""
        if self._subclassed:
            return layer_call.forward(self, x, training)
        xs = self._split_inputs(x)
        self._check_inputs(xs)
        mark_absorbed(self._absorbed, backend.current().runs_kernels)   # stays for the backward
        values = {id(t): v for t, v in zip(self.inputs, xs)}
        self._call_states = {}
        for node in self._nodes:
            if isinstance(node.layer, InputLayer):
                continue
            args = [values[id(t)] for t in node.inputs]
            values[id(node.tensor)] = node.layer.forward(args if node.many else args[0], training=training)
            if id(node.layer) in self._shared:   # this call's state, for its backward
                self._call_states[id(node)] = shared.snapshot(node.layer)
        outs = [values[id(t)] for t in self.outputs]
        return outs if self._many_outputs else outs[0]

    def backward(self, dy):
        """Gradients for the last forward: ``dy`` per output in, ``dx`` per input out; fills ``grads``."""
        if self._subclassed:
            return layer_call.backward(self, dy)
        return self._backward(as_list(dy) if self._many_outputs else [dy], from_logits=False)

    def _output_names(self):
        """One name per output: the layers that make them (functional), or a subclassed model's."""
        if self._subclassed:
            return list(self._output_keys)
        return [t.layer.name for t in self.outputs]

    def _train_backward(self, dy, from_logits):
        """Backward for a training step: fills ``grads``; the gradient with respect to the model's
        inputs is not needed, so layers that read only model inputs skip computing it."""
        if self._subclassed:
            layer_call.backward(self, dy)
            return
        self._backward([dy], from_logits=from_logits, input_gradients=False)

    @property
    def fusable_softmax(self):
        """True when the single output is a softmax whose logits the loss may take directly."""
        if self._many_outputs or not self._nodes:
            return False
        out = self.outputs[0]
        read_inside = any(out is t for node in self._nodes for t in node.inputs)
        return bool(getattr(out.layer, "fusable_softmax", False)) and not read_inside \
            and id(out.layer) not in self._shared

    @property
    def logits(self):
        """The softmax input of the last forward (see ``fusable_softmax``)."""
        return self.outputs[0].layer.logits

    def backward_logits(self, dlogits):
        """Backward from the gradient with respect to the output softmax's logits."""
        return self._backward([dlogits], from_logits=True)

    @property
    def losses(self):
        """Keras's ``model.losses``: the regularization penalties of every layer (0-d arrays)."""
        return [*model_regularization_losses(self), *getattr(super(), "losses", [])]

    # -- weights: each layer's, in self.layers order -------------------------------
    @property
    def weights(self):
        return [w for layer in self.layers for w in layer.weights]

    @property
    def weight_names(self):
        return [f"{layer.name}/{n}" for layer in self.layers for n in layer.weight_names]

    @property
    def trainable_weights(self):
        return [w for layer in self.layers for w in layer.trainable_weights] if self.trainable else []

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    def save_weights(self, filepath, overwrite=True):
        """Write the weights: ``*.weights.h5`` in Keras 3's layout, other ``*.h5`` in the legacy one."""
        from . import saving
        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False):
        """Load weights saved by gpunet or Keras (``.weights.h5`` or legacy ``.h5``); all or nothing."""
        from . import saving
        saving.load_weights(self, filepath, skip_mismatch=skip_mismatch)

    def save(self, filepath, overwrite=True):
        """Write the whole model (architecture, weights, compile settings, optimizer and RNG state)."""
        from . import saving
        saving.save_model(self, filepath, overwrite=overwrite)

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False,
                layer_range=None):
        """Print Keras 3's table of layers (name, type, output shape, parameters, and the inputs of
        each layer when the graph branches) and the parameter totals.

        ``print_fn(text)`` is called once with the whole text, as Keras calls it (default: print).
        ``expand_nested`` lists the layers of nested models; ``show_trainable`` adds a column.
        """
        from .summary import summary_text
        text = summary_text(self, line_length, positions, expand_nested, show_trainable, layer_range)
        if print_fn is None:
            print(text, end="")
        else:
            print_fn(text)


from .sequential import Sequential  # noqa: E402 (it subclasses Model)
