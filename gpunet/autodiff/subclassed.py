"""``class MyModel(gn.Model)``: layers made in ``__init__``, wired in ``call()``.

Such a model has no graph of its own: ``forward`` runs ``call`` (recorded on a tape when
training), its layers are the ones its attributes hold, and it learns its input and output
shapes from the first data it sees (a ``gn.Input`` of that shape stands in for the Keras-style
checks the training loop makes).
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
    model.output_shape = None
    Layer.__init__(model, name=name or unique_name(utils.snake_case(type(model).__name__)), trainable=trainable,
                   **kwargs)
    model._init_training()
    if not hasattr(model, "call"):
        raise TypeError(f"Model '{model.name}': a gn.Model made without inputs and outputs needs a call() "
                        "method (class MyModel(gn.Model): ... def call(self, inputs): ...).")


def build(model, input_shape):
    """Make the model's weights for ``input_shape`` (batch None) by calling it on a batch of one."""
    if isinstance(input_shape, list):
        raise NotImplementedError(f"Model '{model.name}': subclassed models take one input for now; "
                                  f"received shapes {input_shape}.")
    input_shape = (None, *tuple(input_shape)[1:])
    model.inputs = [InputLayer(shape=input_shape[1:], dtype=model.dtype.name).output]
    model.input_shape = input_shape
    model.output_shape = layer_call.infer_output_shape(model, input_shape)
    model.built = True


def adopt_inputs(model, xs, shapes_only=False):
    """The first data a subclassed model sees fixes its input shape (and builds it)."""
    if len(xs) != 1:
        raise ValueError(f"Model '{model.name}' takes one input; received {len(xs)}.")
    shape = tuple(xs[0]) if shapes_only else tuple(xs[0].shape)
    if not model.inputs or model.output_shape is None:
        build(model, (None, *shape[1:]))
        model.built = True


def get_config(model):
    """Keras's default for a subclassed model: name and trainable; a model with constructor
    arguments overrides get_config (and from_config, when they are not plain values)."""
    return {"name": model.name, "trainable": model.trainable}
