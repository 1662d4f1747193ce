"""Keras 3's layout for layers that hold layers: a ``call()`` layer's sublayers and a subclassed
model's attributes (``keras/src/saving/saving_lib.py`` walks a saveable's attributes).

A layer that holds layers keeps its own variables in its ``vars`` group and each held layer in a
group named by the attribute that holds it; a list (or dict) attribute numbers its layers by class,
as a model's ``layers`` group does::

    layers/gate/vars/0                 Gate's own variable (add_weight in build)
    layers/gate/dense/vars/0, 1        self.dense = Dense(...)
    layers/gate/convs/dense/vars/...   self.convs = [Dense(...), Dense(...)]
    layers/gate/convs/dense_1/vars/...

A subclassed model is such a layer at the root: ``g/vars``, ``head/vars``, ... and no ``layers``
group. Attributes are visited in name order, private ones (``_x``) last, and a layer reached twice
is written once, at its first path (Keras's visited set).
"""
from .. import utils

__all__ = ["holds_layers", "children", "own_weights", "OwnVariables"]

_SKIPPED = ("inputs", "outputs")


def holds_layers(layer):
    """True for call() layers and subclassed models: the ones whose sublayers get their own groups
    (a built-in layer's weights are all its own)."""
    return hasattr(layer, "call")


def _name_key(name):
    return "~" + name if name.startswith("_") else name


def children(layer):
    """``[(group key, sublayer)]`` held by ``layer``'s attributes, in Keras's order; list / tuple /
    dict attributes give ``attr/<class key>``, ``attr/<class key>_1``, ..."""
    from ..layers.base import Layer
    found = []
    for name in sorted(vars(layer), key=_name_key):
        if name.startswith("_call") or name in _SKIPPED:
            continue
        value = vars(layer)[name]
        if isinstance(value, Layer) and value is not layer:
            found.append((name, value))
        elif isinstance(value, (list, tuple, dict)):
            items = value.values() if isinstance(value, dict) else value
            used = {}
            for item in items:
                if isinstance(item, Layer) and item is not layer:
                    key = utils.snake_case(type(item).__name__)
                    count = used[key] = used.get(key, -1) + 1
                    found.append((f"{name}/{key}" if count == 0 else f"{name}/{key}_{count}", item))
    return found


def own_weights(layer):
    """``(names, arrays)`` of the variables ``layer`` made itself: trainable first, as Keras saves them."""
    own = [v for v in layer._vars if v[2]] + [v for v in layer._vars if not v[2]]
    return [v[0] for v in own], [v[1] for v in own]


class OwnVariables:
    """A layer's own variables seen as a layer (name, weights, set_weights), so that a weight plan
    loads them without touching the sublayers' (which have their own groups)."""

    def __init__(self, layer):
        self.layer, self.name, self.built = layer, layer.name, layer.built
        self.weight_names, self.weights = own_weights(layer)

    def set_weights(self, values):
        from .. import backend
        for target, value in zip(self.weights, values):
            target[...] = backend.current().asarray(value, dtype=target.dtype)
