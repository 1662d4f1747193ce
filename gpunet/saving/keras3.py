"""The Keras 3 ``.weights.h5`` layout (``keras/src/saving/saving_lib.py``), written and read.

::

    layers/<key>/vars/0, 1, ...        one group per entry of model.layers; <key> is the snake_case
                                       class name, numbered conv2d, conv2d_1, ... per container
    layers/<key>/layers/...            a nested model: its own layers, counters restarting
    layers/<key>/vars                  (a nested model's own, empty vars group)
    optimizer/vars/0, 1, ...           iteration, learning_rate, slots (when compiled)
    vars                               the model's own (empty) group

Every ``vars`` group carries ``@name`` = the layer's (model's, optimizer's) name; datasets are
the layer's weights in ``layer.weights`` order, named by their index.
"""
import h5py

from .h5file import FileFormatError, read_array
from .optimizer_state import keras_variables, state_from_keras
from .tree import is_container, keyed_layers, to_numpy


def is_keras3(f):
    return "layers" in f or "vars" in f


# -- writing ------------------------------------------------------------------------------
def _vars_group(f, prefix, name):
    group = f.create_group(f"{prefix}vars")
    group.attrs["name"] = str(name)
    return group


def _write_container(f, prefix, container):
    _vars_group(f, prefix, container.name)
    for key, layer in keyed_layers(container):
        path = f"{prefix}layers/{key}/"
        if is_container(layer):
            _write_container(f, path, layer)
            continue
        group = _vars_group(f, path, layer.name)
        for index, array in enumerate(layer.weights):
            group.create_dataset(str(index), data=to_numpy(array))


def write(f, model):
    """Write ``model``'s weights (and its optimizer's variables, once compiled) into file ``f``."""
    _write_container(f, "", model)
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
    def walk(prefix, container):
        for key, layer in keyed_layers(container):
            path = f"{prefix}layers/{key}"
            if is_container(layer):
                walk(f"{path}/", layer)
            elif layer.weights or groups.get(path):
                weight_plan.add(layer, groups.get(path, []), f"the file's group '{path}/vars'")
    walk("", model)


def optimizer_state(model, groups, where):
    """The optimizer's ``set_state`` dict from the file's ``optimizer/vars``, or None when the
    model is not compiled, the file has none, or the counts differ (a warning, as Keras)."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or "optimizer" not in groups:
        return None
    return state_from_keras(optimizer, list(model.trainable_weights), groups["optimizer"], where)
