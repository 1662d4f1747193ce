"""The Keras 3 ``.weights.h5`` layout (``keras/src/saving/saving_lib.py``), written and read.

::

    layers/<key>/vars/0, 1, ...        one group per entry of model.layers; <key> is the snake_case
                                       class name, numbered conv2d, conv2d_1, ... per container
    layers/<key>/layers/...            a nested model: its own layers, counters restarting
    layers/<key>/vars                  (a nested model's own, empty vars group)
    layers/<key>/<attribute>/vars      a layer held by a call() layer (see nested.py); a subclassed
                                       model puts its attributes at its root instead of layers/
    optimizer/vars/0, 1, ...           iteration, learning_rate, slots (when compiled)
    vars                               the model's own (empty) group

Every ``vars`` group carries ``@name`` = the layer's (model's, optimizer's) name; datasets are
the layer's weights in ``layer.weights`` order, named by their index.
"""
import h5py

from .h5file import FileFormatError, read_array
from .optimizer_state import keras_variables, state_from_keras
from . import nested
from .tree import is_container, keyed_layers, to_numpy


def is_keras3(f):
    return "layers" in f or "vars" in f


# -- writing ------------------------------------------------------------------------------
def _vars_group(f, prefix, name):
    group = f.create_group(f"{prefix}vars")
    group.attrs["name"] = str(name)
    return group


def _write_container(f, prefix, container, visited):
    if nested.holds_layers(container):   # a subclassed model: its attributes, from its own group on
        _write_layer(f, prefix, container, visited)
        return
    visited.add(id(container))
    _vars_group(f, prefix, container.name)
    for key, layer in keyed_layers(container):
        _write_any(f, f"{prefix}layers/{key}/", layer, visited)


def _write_any(f, path, layer, visited):
    if id(layer) in visited:
        return
    if is_container(layer):
        _write_container(f, path, layer, visited)
    else:
        _write_layer(f, path, layer, visited)


def _write_layer(f, path, layer, visited):
    """``layer``'s own variables at ``path``vars, then (call() layers) each held layer under its attribute."""
    visited.add(id(layer))
    group = _vars_group(f, path, layer.name)
    held = nested.holds_layers(layer)
    for index, array in enumerate(nested.own_weights(layer)[1] if held else layer.weights):
        group.create_dataset(str(index), data=to_numpy(array))
    for key, sub in nested.children(layer) if held else ():
        _write_any(f, f"{path}{key}/", sub, visited)


def write(f, model):
    """Write ``model``'s weights (and its optimizer's variables, once compiled) into file ``f``."""
    _write_container(f, "", model, set())
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        group = _vars_group(f, "optimizer/", optimizer.name)
        for index, (_, array) in enumerate(keras_variables(optimizer)):
            group.create_dataset(str(index), data=array)


# -- reading ------------------------------------------------------------------------------
def _read_vars(group, where):
    """A vars group's datasets "0".."n-1" as a list of arrays (h5py lists them as 0, 1, 10, 2...)."""
    keys = list(group.keys())
    if sorted(keys, key=lambda k: int(k) if k.isdigit() else -1) != [str(i) for i in range(len(keys))]:
        raise FileFormatError(f"{where} should hold datasets named 0, 1, 2, ...; found {sorted(keys)}.")
    return [read_array(group[str(i)], f"{where}/{i}") for i in range(len(keys))]


def read(f):
    """Every ``vars`` group of the file: ``{path of its owner: [arrays]}`` (``""`` for the root,
    ``"layers/conv2d"``, ``"optimizer"``, ...). Reads the file only; matching comes later."""
    found = {}

    def visit(name, item):
        owner, _, leaf = name.rpartition("/")
        if leaf == "vars" and isinstance(item, h5py.Group):
            found[owner] = _read_vars(item, f"'{name}'")

    f.visititems(visit)
    return found


def plan(model, groups, weight_plan):
    """Queue the values of ``groups`` (from :func:`read`) for every layer of ``model`` into ``weight_plan``.

    A layer with weights and no group gets an empty list (a count mismatch); groups the model
    does not use are ignored, as Keras ignores them.
    """
    visited = set()

    def container(prefix, model):
        visited.add(id(model))
        if nested.holds_layers(model):
            if _old_subclassed_layout(prefix, model, groups):   # files of gpunet before 0.3: layers/<key>
                for key, layer in keyed_layers(model):
                    flat(f"{prefix}layers/{key}", layer)
            else:
                held(prefix.rstrip("/"), model)
            return
        for key, layer in keyed_layers(model):
            any_layer(f"{prefix}layers/{key}", layer)

    def any_layer(path, layer):
        if id(layer) in visited:
            return
        if is_container(layer):
            container(f"{path}/", layer)
        elif nested.holds_layers(layer) and not _old_flat_layout(path, layer, groups):
            held(path, layer)
        else:
            flat(path, layer)

    def flat(path, layer):
        visited.add(id(layer))
        if layer.weights or groups.get(path):
            weight_plan.add(layer, groups.get(path, []), f"the file's group '{path}/vars'")

    def held(path, layer):   # own variables from path/vars, each held layer from path/<attribute>
        visited.add(id(layer))
        own = nested.OwnVariables(layer)
        if own.weights or groups.get(path):
            weight_plan.add(own, groups.get(path, []), f"the file's group '{path or '(root)'}/vars'")
        for key, sub in nested.children(layer):
            any_layer(f"{path}/{key}" if path else key, sub)
    container("", model)


def _old_flat_layout(path, layer, groups):
    """A call() layer written with its sublayers' variables in its own group (gpunet before 0.3)."""
    values = groups.get(path)
    own = nested.own_weights(layer)[1]
    return values is not None and len(values) == len(layer.weights) != len(own)


def _old_subclassed_layout(prefix, model, groups):
    """A subclassed model written with its layers under ``layers/<key>`` (gpunet before 0.3)."""
    keys = [key for key, _ in keyed_layers(model)]
    return bool(keys) and all(f"{prefix}layers/{key}" in groups for key in keys) and \
        not any(f"{prefix}{key}" in groups for key, _ in nested.children(model))


def optimizer_state(model, groups, where):
    """The optimizer's ``set_state`` dict from the file's ``optimizer/vars``, or None when the
    model is not compiled, the file has none, or the counts differ (a warning, as Keras)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or "optimizer" not in groups:
        return None
    return state_from_keras(optimizer, list(model.trainable_weights), groups["optimizer"], where)
