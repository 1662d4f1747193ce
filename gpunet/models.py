"""Models: a functional graph of layer calls (``Model``) and a chain of layers (``Sequential``).

A model is itself a Layer: ``forward`` runs its layers in topological order, ``backward`` runs
them in reverse and sums the gradients where one tensor feeds several layers (skip
connections), so a model nests inside another model like any layer. ``compile`` / ``fit`` /
``evaluate`` / ``predict`` come from ``training.Trainer``; ``summary`` from ``summary``.

    inputs = gn.Input((32, 32, 3))
    x = gn.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    outputs = gn.layers.Dense(10, activation="softmax")(gn.layers.Flatten()(x))
    model = gn.Model(inputs, outputs)
"""
from . import backend
from . import shared
from .autodiff import layer_call, subclassed
from .autodiff.functions import get_registered_object
from .graph import (Node, absorb_pairs, activation_fold_pairs, add_gradient, as_list, keras_order,
                    mark_absorbed, mark_activation_folds, mark_relu_pool, relu_pool_pairs)
from .layers.base import Layer, SymbolicTensor, unique_name
from .layers.core import InputLayer
from .layers.weight_rules import model_regularization_losses
from .training import Trainer
from .saving import load_model

__all__ = ["Model", "Sequential", "load_model"]


class Model(Trainer, Layer):
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

    # -- the graph -----------------------------------------------------------------
    def _set_graph(self, inputs, outputs):
        self._many_inputs = isinstance(inputs, (list, tuple))
        self._many_outputs = isinstance(outputs, (list, tuple))
        self.inputs, self.outputs = as_list(inputs), as_list(outputs)
        self._check_graph_ends()
        self._nodes = [Node(t) for t in keras_order(self.outputs)]
        self._check_graph_nodes()
        self._shared = shared.shared_layer_ids(self._nodes)
        self._relu_pools = [pair for pair in relu_pool_pairs(self._nodes, self.outputs)
                            if not any(id(layer) in self._shared for layer in pair)]
        self._activation_folds = [pair for pair in activation_fold_pairs(self._nodes, self.outputs)
                                  if not any(id(layer) in self._shared for layer in pair)]
        mark_absorbed(getattr(self, "_absorbed", []), False)   # a rebuilt graph (pop, add) pairs anew
        self._absorbed = [pair for pair in absorb_pairs(self._nodes, self.outputs)
                          if not any(id(layer) in self._shared for layer in pair)]
        shapes_in = [t.shape for t in self.inputs]
        shapes_out = [t.shape for t in self.outputs]
        self.input_shape = shapes_in if self._many_inputs else shapes_in[0]
        self.output_shape = shapes_out if self._many_outputs else shapes_out[0]
        self.built = True

    def _check_graph_ends(self):
        if not self.inputs or not self.outputs:
            raise ValueError(f"Model '{self.name}' needs at least one input and one output; "
                             f"received {len(self.inputs)} inputs and {len(self.outputs)} outputs.")
        for t in self.inputs:
            if not (isinstance(t, SymbolicTensor) and isinstance(t.layer, InputLayer)):
                raise TypeError(f"Model '{self.name}' inputs must be tensors from gn.Input(...); received {t!r}.")
        for t in self.outputs:
            if not isinstance(t, SymbolicTensor) or t.layer is None:
                raise TypeError(f"Model '{self.name}' outputs must be tensors made by calling layers "
                                f"on gn.Input(...) tensors; received {t!r}.")

    def _check_graph_nodes(self):
        input_ids = {id(t) for t in self.inputs}
        for node in self._nodes:
            if isinstance(node.layer, InputLayer) and id(node.tensor) not in input_ids:
                raise ValueError(f"Model '{self.name}': the outputs depend on Input '{node.layer.name}' "
                                 f"{node.tensor.shape}, which is not among the model's inputs "
                                 f"{[t.layer.name for t in self.inputs]}.")

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

    def _backward(self, dys, from_logits, input_gradients=True):
        if self._subclassed:   # several outputs: the call()'s tape takes a gradient per output
            return layer_call.backward(self, list(dys))
        grads = {}
        for t, g in zip(self.outputs, dys):
            add_gradient(grads, t, g)
        # Tensors that no trainable weight feeds (the inputs, and what weightless layers such as
        # preprocessing ones make of them): a layer reading only those need not compute its dx.
        weightless = set() if input_gradients else self._weightless_tensors()
        relu_pools = [] if backend.current().runs_kernels else self._relu_pools
        folds = self._activation_folds if backend.current().runs_kernels else []
        mark_relu_pool(relu_pools, True)
        mark_activation_folds(folds, True)
        summed = shared.GradientSums()
        try:
            for node in reversed(self._nodes):
                if isinstance(node.layer, InputLayer) or id(node.tensor) not in grads:
                    continue
                grad = grads.pop(id(node.tensor))
                skip = not input_gradients and all(id(t) in weightless for t in node.inputs)
                if skip and id(node.tensor) in weightless:   # nothing to learn here or upstream
                    node.layer.grads = []
                    continue
                if id(node.layer) in self._shared:
                    with shared.restored(node.layer, self._call_states[id(node)]):
                        dx = self._node_backward(node, grad, from_logits, skip)
                        summed.add(node.layer)
                    final = summed.complete(node.layer, self._shared[id(node.layer)])
                else:
                    dx = self._node_backward(node, grad, from_logits, skip)
                    final = node.layer
                if final is not None and getattr(self, "_grad_ready", None) is not None:
                    # data parallel: these gradients are final (a shared layer's after its last call)
                    self._grad_ready(final, final.grads)
                for t, g in zip(node.inputs, as_list(dx) if node.many else [dx]):
                    add_gradient(grads, t, g)
        finally:
            mark_relu_pool(relu_pools, False)
            mark_activation_folds(folds, False)
        for layer in summed.assign():   # shared layers some of whose calls got no gradient
            if getattr(self, "_grad_ready", None) is not None:
                self._grad_ready(layer, layer.grads)
        self.grads = self._collect_grads()
        dxs = [grads.get(id(t)) for t in self.inputs]
        return dxs if self._many_inputs else dxs[0]

    def _weightless_tensors(self):
        found = {id(t) for t in self.inputs}
        for node in self._nodes:
            if all(id(t) in found for t in node.inputs) and not node.layer.trainable_weights \
                    and not isinstance(node.layer, InputLayer):
                found.add(id(node.tensor))
        return found

    def _node_backward(self, node, grad, from_logits, skip_input_gradient):
        """One layer's backward; a layer with ``needs_input_gradient`` may be told to skip dx."""
        layer = node.layer
        skip = skip_input_gradient and hasattr(layer, "needs_input_gradient")
        if skip:
            before, layer.needs_input_gradient = layer.needs_input_gradient, False
        try:
            if from_logits and node.tensor is self.outputs[0]:
                return layer.backward_logits(grad)
            return layer.backward(grad)
        finally:
            if skip:
                layer.needs_input_gradient = before

    def _collect_grads(self):
        if not self.trainable:
            return []
        grads = []
        for layer in self.layers:
            expected = len(layer.trainable_weights)
            if expected and len(layer.grads) != expected:
                raise RuntimeError(f"Layer '{layer.name}' left {len(layer.grads)} gradients for its {expected} "
                                   f"trainable weights; backward must fill layer.grads in trainable_weights order.")
            grads.extend(layer.grads if expected else [])
        return grads

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

    # -- config ----------------------------------------------------------------------
    def get_config(self):
        """Layers (class, config, inbound tensors) in topological order, and the graph's ends.

        A tensor is named by the layer that made it; a shared layer's later calls appear as
        ``{"shared_call": name, "inbound": ...}`` and their tensors as ``"name:1"``, ``"name:2"``, ..."""
        if self._subclassed:
            return subclassed.get_config(self)
        keys = shared.tensor_keys(self._nodes)

        def names(tensors, many):
            return [keys[id(t)] for t in tensors] if many else keys[id(tensors[0])]
        entries, seen = [], set()
        for node in self._nodes:
            entry = {"shared_call": node.layer.name} if id(node.layer) in seen else _serialize_layer(node.layer)
            seen.add(id(node.layer))
            entry["inbound"] = None if isinstance(node.layer, InputLayer) else names(node.inputs, node.many)
            entries.append(entry)
        return {"name": self.name, "trainable": self.trainable, "layers": entries,
                "input_layers": names(self.inputs, self._many_inputs),
                "output_layers": names(self.outputs, self._many_outputs)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuild a model from ``get_config()``; ``custom_objects`` maps class names of user layers."""
        if "layers" not in config:    # a subclassed model's own config
            return cls(**config)
        tensors, made, calls = {}, {}, {}
        for entry in config["layers"]:
            if "shared_call" in entry:
                layer = made[entry["shared_call"]]
                calls[layer.name] += 1
                key = f"{layer.name}:{calls[layer.name]}"
            else:
                layer = deserialize_layer(entry, custom_objects)
                made[layer.name], calls[layer.name], key = layer, 0, layer.name
            if isinstance(layer, InputLayer):
                tensors[key] = layer.output
            else:
                inbound = entry["inbound"]
                args = [tensors[n] for n in inbound] if isinstance(inbound, list) else tensors[inbound]
                tensors[key] = layer(args)

        def pick(names):
            return [tensors[n] for n in names] if isinstance(names, list) else tensors[names]
        return cls(pick(config["input_layers"]), pick(config["output_layers"]),
                   name=config.get("name"), trainable=config.get("trainable", True))


def _serialize_layer(layer):
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize_layer(entry, custom_objects=None):
    """A layer from ``{"class_name": ..., "config": ...}``: gpunet's layers, models, or ``custom_objects``."""
    from . import layers as layer_module
    name = entry["class_name"]
    from .sequential import Sequential
    known = {"Model": Model, "Functional": Model, "Sequential": Sequential, "InputLayer": InputLayer}
    cls = get_registered_object(name, custom_objects) or known.get(name) or getattr(layer_module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ValueError(f"Unknown layer class {name!r}; pass it in custom_objects={{'{name}': {name}}}.")
    if issubclass(cls, Model):
        return cls.from_config(entry["config"], custom_objects)
    return cls.from_config(entry["config"])


from .sequential import Sequential  # noqa: E402 (it subclasses Model)
