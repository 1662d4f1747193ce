"""``class MyModel(gn.Model)``: layers made in ``__init__``, wired in ``call()``.

Such a model has no graph of its own: ``forward`` runs ``call`` (recorded on a tape when
training), its layers are the ones its attributes hold, and it learns its input and output
shapes from the first data it sees (a ``gn.Input`` of that shape stands in for the Keras-style
checks the training loop makes). A call() returning a list, tuple or dict of tensors makes a model
of several outputs (a dict's in sorted key order, as Keras flattens it, named by its keys); compile
before the first data waits for it to know which (``_deferred_compile``).
"""
from ..layers.base import Layer, unique_name
from ..layers.core import InputLayer
from .. import utils
from . import layer_call


def init(model, name=None, trainable=True, **kwargs):
    """Model.__init__ without inputs / outputs."""
    model._subclassed = True
    model._shows_connections = False    # summary(): no graph to show, as Keras's subclassed models
    model._nodes, model._relu_pools, model.inputs, model.outputs = [], [], [], []
    model._many_inputs = model._many_outputs = False
    model._output_keys, model._output_dict, model._output_tuple, model._deferred_compile = [], False, False, None
    model.output_shape = None
    Layer.__init__(model, name=name or unique_name(utils.snake_case(type(model).__name__)), trainable=trainable,
                   **kwargs)
    model._init_training()
    if not hasattr(model, "call"):
        raise TypeError(f"Model '{model.name}': a gn.Model made without inputs and outputs needs a call() "
                        "method (class MyModel(gn.Model): ... def call(self, inputs): ...).")


def build(model, input_shape):
    """Make the model's weights for ``input_shape`` (batch None), a list of shapes for a model
    whose call() takes a list of inputs, by calling it on a batch of one."""
    many = isinstance(input_shape, list)
    shapes = [(None, *tuple(s)[1:]) for s in (input_shape if many else [input_shape])]
    model._many_inputs = many
    model.inputs = [InputLayer(shape=s[1:], dtype=model.variable_dtype).output for s in shapes]
    model.input_shape = shapes if many else shapes[0]
    model.output_shape = layer_call.infer_output_shape(model, model.input_shape)
    model._many_outputs = isinstance(model.output_shape, list)
    keys = getattr(model, "_call_output_keys", None)
    model._output_dict, model._output_tuple = isinstance(keys, list), keys == "tuple"
    model._output_keys = list(keys) if model._output_dict else \
        [f"output_{k + 1}" for k in range(len(model.output_shape) if model._many_outputs else 1)]
    model.built = True
    if model._deferred_compile is not None:    # compile() came before the outputs were known
        pending, model._deferred_compile = model._deferred_compile, None
        model._compile_losses(*pending)


def outputs_unknown(model):
    """True for a subclassed model not built yet: compile waits to learn whether it has several outputs."""
    return model._subclassed and not model.built


def named_by_loss(model):
    """Keras 3 logs the outputs of a subclassed model returning a list by their losses' names."""
    return model._subclassed and not model._output_dict


def structured(model, outputs):
    """Outputs (a list, one per output) in the structure call() returns, as Keras 3 gives them
    back: a dict by key, a tuple, or the list."""
    if not model._subclassed or not isinstance(outputs, list):
        return outputs
    if model._output_dict:
        return dict(zip(model._output_keys, outputs))
    return tuple(outputs) if model._output_tuple else outputs


def adopt_inputs(model, xs, shapes_only=False):
    """The first data a subclassed model sees fixes its input shapes (and builds it); later data
    must bring as many inputs."""
    shapes = [tuple(x) if shapes_only else tuple(x.shape) for x in xs]
    if not model.inputs or model.output_shape is None:
        build(model, [(None, *s[1:]) for s in shapes] if model._many_inputs else (None, *shapes[0][1:]))
    elif len(xs) != len(model.inputs):
        raise ValueError(f"Model '{model.name}' takes {len(model.inputs)} input(s), as it was built; "
                         f"received {len(xs)}.")


def note_inputs(model, x):
    """Before a subclassed model is built, data given as a list or tuple means call() takes a list."""
    if model._subclassed and not model.inputs:
        model._many_inputs = isinstance(x, (list, tuple))


def get_config(model):
    """Keras's default for a subclassed model: name and trainable; a model with constructor
    arguments overrides get_config (and from_config, when they are not plain values)."""
    return {"name": model.name, "trainable": model.trainable}
