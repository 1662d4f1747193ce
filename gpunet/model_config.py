"""A Model's config: ``get_config`` / ``from_config`` of its functional graph (layers in
topological order with their inbound tensors, shared layers' later calls by name), and a layer
from ``{"class_name", "config"}`` (``deserialize_layer``, which saving uses too).

``ModelConfig`` is mixed into ``models.Model``; ``models`` re-exports ``deserialize_layer``.
"""
from . import shared
from .autodiff import subclassed
from .autodiff.functions import get_registered_object
from .layers.base import Layer
from .layers.core import InputLayer


class ModelConfig:
    """``get_config`` / ``from_config`` of a Model (a subclassed model's are its own)."""

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
    from .models import Model            # models imports this module: resolve at call time
    from .sequential import Sequential
    known = {"Model": Model, "Functional": Model, "Sequential": Sequential, "InputLayer": InputLayer}
    cls = get_registered_object(name, custom_objects) or known.get(name) or getattr(layer_module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ValueError(f"Unknown layer class {name!r}; pass it in custom_objects={{'{name}': {name}}}.")
    if issubclass(cls, Model):
        return cls.from_config(entry["config"], custom_objects)
    return cls.from_config(entry["config"])
