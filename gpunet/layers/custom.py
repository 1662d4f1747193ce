"""Lambda: a layer made of one function of gn.ops, differentiated by the tape."""
from .base import Layer

__all__ = ["Lambda"]


class Lambda(Layer):
    """``Lambda(lambda x: gn.ops.square(x))``: ``function(inputs, **arguments)`` as a layer.

    ``output_shape`` (a tuple without the batch axis, or a function of the input shape) skips
    the shape trace on a batch of one. Saving a Lambda stores the function's name; loading needs
    it in ``custom_objects`` or registered with ``gn.saving.register_keras_serializable``.
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda '{self.name}' needs a callable function; received {function!r}.")
        if mask is not None:
            raise ValueError(f"Lambda '{self.name}': masks are not supported; received mask={mask!r}.")
        self.function, self.arguments = function, dict(arguments or {})
        self._output_shape = output_shape

    def call(self, inputs):
        return self.function(inputs, **self.arguments)

    def compute_output_shape(self, input_shape):
        if self._output_shape is None:
            return super().compute_output_shape(input_shape)
        if callable(self._output_shape):
            return tuple(self._output_shape(input_shape))
        return (input_shape[0] if not isinstance(input_shape, list) else None, *self._output_shape)

    def get_config(self):
        return {**super().get_config(), "function": getattr(self.function, "__name__", "<lambda>"),
                "output_shape": self._output_shape if not callable(self._output_shape) else None,
                "arguments": self.arguments}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from ..saving import get_registered_object
        config = dict(config)
        name = config.pop("function")
        function = get_registered_object(name, custom_objects)
        if function is None:
            raise ValueError(f"Lambda '{config.get('name')}' calls function {name!r}, unknown here; pass "
                             f"custom_objects={{'{name}': fn}} or register it with "
                             "gn.saving.register_keras_serializable().")
        if config.get("output_shape") is not None:
            config["output_shape"] = tuple(config["output_shape"])
        return cls(function, **config)
