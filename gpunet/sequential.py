"""Sequential: a chain of layers, each fed the previous one's output (a Model whose graph is
rebuilt as layers are added or popped)."""
from .layers.base import Layer, SymbolicTensor
from .layers.core import InputLayer
from .models import Model, _serialize_layer, deserialize_layer

__all__ = ["Sequential"]


class Sequential(Model):
    """A chain of layers, each fed the previous one's output.

    ``Sequential([gn.Input((8, 8, 1)), Conv2D(...), ...])``, or ``.add(layer)`` one by one, or
    ``input_shape=`` on the first layer; without any of these it builds on its first data.
    ``model.layers`` leaves out the Input layer, as Keras does.
    """

    def __init__(self, layers=None, name=None, trainable=True):
        Layer.__init__(self, name=name, trainable=trainable)
        self._init_training()
        self._input_layer, self._layers = None, []
        self._nodes, self.inputs, self.outputs = [], [], []
        self._shared = {}
        self._many_inputs = self._many_outputs = False
        self.output_shape = None
        for layer in layers or []:
            self.add(layer)
        if not trainable:
            self.trainable = False

    @property
    def layers(self):
        return list(self._layers)

    def add(self, layer):
        """Append a layer (or, first of all, a ``gn.Input`` tensor) to the chain."""
        if isinstance(layer, SymbolicTensor) and isinstance(layer.layer, InputLayer):
            layer = layer.layer
        if isinstance(layer, InputLayer):
            if self._input_layer is not None or self._layers:
                raise ValueError(f"Sequential '{self.name}': an Input can only be the first item; "
                                 f"this model already has {len(self._layers)} layer(s) or an Input.")
            self._input_layer = layer
            self._rebuild()
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential '{self.name}' takes layers; received {layer!r}.")
        if any(layer is other for other in self._layers):
            raise ValueError(f"Sequential '{self.name}': layer '{layer.name}' is already in the model; "
                             f"shared layers are not supported, create a second layer instead.")
        self._layers.append(layer)
        known = layer.input_shape
        if self._input_layer is None and len(self._layers) == 1 and isinstance(known, tuple):
            self._input_layer = InputLayer(shape=known[1:], dtype=_input_dtype(layer))
        if self._input_layer is not None:
            try:
                self._rebuild()
            except Exception:
                self._layers.pop()
                raise

    def pop(self):
        """Remove and return the last layer."""
        if not self._layers:
            raise IndexError(f"Sequential '{self.name}' has no layers to pop.")
        layer = self._layers.pop()
        if self._input_layer is not None:
            self._rebuild()
        return layer

    def build(self, input_shape=None):
        """Build the chain for inputs of ``input_shape`` (batch axis first, e.g. ``(None, 8, 8, 1)``)."""
        if self._input_layer is None:
            if input_shape is None or isinstance(input_shape, list):
                raise ValueError(f"Sequential '{self.name}' needs one input shape to build; received {input_shape!r}.")
            dtype = _input_dtype(self._layers[0]) if self._layers else None
            self._input_layer = InputLayer(shape=tuple(input_shape)[1:], dtype=dtype)
        self._rebuild()

    def _rebuild(self):
        tensor = self._input_layer.output
        for layer in self._layers:
            tensor = layer(tensor)
        self._set_graph(self._input_layer.output, tensor)

    def forward(self, x, training=False):
        if not self.built:
            self.ensure_built((None, *x.shape[1:]))
        return super().forward(x, training=training)

    def get_config(self):
        items = ([self._input_layer] if self._input_layer is not None else []) + self._layers
        return {"name": self.name, "trainable": self.trainable, "layers": [_serialize_layer(l) for l in items]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        layers = [deserialize_layer(entry, custom_objects) for entry in config["layers"]]
        return cls(layers, name=config.get("name"), trainable=config.get("trainable", True))


def _input_dtype(layer):
    """The dtype of the Input a Sequential makes for its first layer: float32 (Keras's floatx),
    or float64 for a float64 first layer (the models of gradient checks)."""
    return "float64" if layer.variable_dtype == "float64" else None
