"""The legacy HDF5 weight layout (Keras 2's ``save_weights("x.h5")``, and the ``model_weights``
group of a full-model ``.h5``), written and read.

::

    @layer_names = [name of every entry of model.layers]     (order matters, not group order)
    @backend, @keras_version
    <layer name>/  @weight_names = ["scope/layer/var", ...]  trainable weights first, then the rest
                   <weight name>  one dataset per name (the slashes make nested groups)
    top_level_model_weights/  @weight_names = []             (the model's own weights: none)

Keras loads these files by position, not by name: the model's layers that have weights are
paired in order with the saved layers whose ``weight_names`` is not empty. So does gpunet.
"""
from .h5file import FileFormatError, read_array, read_names, write_names
from .optimizer_state import keras_variables, state_from_keras
from .tree import leaves, legacy_variables, to_numpy, variable_paths

# Keras 2 treats files without a version as Keras 1 files and converts their kernels; the
# layout written here is the one Keras 3.15 writes.
KERAS_VERSION = "3.15.1"


def is_weights_only(f):
    return "layer_names" in f.attrs or "layer_names0" in f.attrs


# -- writing ------------------------------------------------------------------------------
def write(group, model):
    """Write ``model``'s weights in the legacy layout into ``group`` (a file or a group)."""
    names = [layer.name for layer in model.layers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Model '{model.name}' has several layers named {duplicates}; the legacy .h5 "
                         f"layout keys layers by name. Rename them, or save to a '.weights.h5' file.")
    write_names(group.attrs, "layer_names", names)
    group.attrs["backend"] = "gpunet"
    group.attrs["keras_version"] = KERAS_VERSION
    paths = variable_paths(model)
    for layer in sorted(model.layers, key=lambda item: item.name):
        layer_group = group.create_group(layer.name)
        variables = legacy_variables(layer)
        write_names(layer_group.attrs, "weight_names", [paths[id(v)] for v in variables])
        for variable in variables:
            layer_group.create_dataset(paths[id(variable)], data=to_numpy(variable))
    write_names(group.create_group("top_level_model_weights").attrs, "weight_names", [])


def write_optimizer(group, model):
    """The optimizer's variables as Keras's full-model ``.h5`` holds them (``optimizer_weights``)."""
    optimizer = model.optimizer
    paths = variable_paths(model)
    trainable = [paths[id(w)].replace("/", "_") for w in model.trainable_weights]
    names, arrays = [], []
    for key, array in keras_variables(optimizer):
        label = key if isinstance(key, str) else f"{trainable[key[1]]}_{key[0]}"
        names.append(f"{optimizer.name}/{label}")
        arrays.append(array)
    write_names(group.attrs, "weight_names", names)
    for name, array in zip(names, arrays):
        group.create_dataset(name, data=array)


# -- reading ------------------------------------------------------------------------------
def read(group, where):
    """``[(layer name, [(weight name, array)])]`` in ``layer_names`` order, weightless layers
    left out; ``top_level_model_weights`` last when it holds any. Reads the file only."""
    saved = []
    for name in read_names(group.attrs, "layer_names"):
        if name not in group:
            raise FileFormatError(f"{where} lists layer '{name}' in layer_names but has no group for it.")
        saved.append((name, _read_layer(group[name], f"{where} layer '{name}'")))
    if "top_level_model_weights" in group:
        top = _read_layer(group["top_level_model_weights"], f"{where} top_level_model_weights")
        if top:
            saved.append(("top_level_model_weights", top))
    return [(name, weights) for name, weights in saved if weights]


def _read_layer(layer_group, where):
    weights = []
    for weight_name in read_names(layer_group.attrs, "weight_names"):
        if weight_name not in layer_group:
            raise FileFormatError(f"{where} lists weight '{weight_name}' but holds no dataset of that name.")
        weights.append((weight_name, read_array(layer_group[weight_name], f"{where} weight '{weight_name}'")))
    return weights


def read_optimizer(group, where):
    """The ``optimizer_weights`` arrays in ``weight_names`` order."""
    return [v for _, v in _read_layer(group, where)]


def plan(model, saved, weight_plan, where):
    """Pair the model's layers that have weights with ``saved`` (from :func:`read`) by position
    and queue each value for the leaf layer that owns its variable."""
    layers = [layer for layer in model.layers if layer.weights]
    if len(layers) != len(saved):
        raise ValueError(f"Layer count mismatch: model '{model.name}' has {len(layers)} layers with weights "
                         f"{[layer.name for layer in layers]}; {where} holds weights for {len(saved)} layers "
                         f"{[name for name, _ in saved]}. Legacy .h5 files are matched by position.")
    for layer, (name, weights) in zip(layers, saved):
        variables = legacy_variables(layer)
        source = f"{where} (layer '{name}')"
        if len(variables) != len(weights):
            weight_plan.mismatch(
                f"Layer '{layer.name}' ({type(layer).__name__}) expects {len(variables)} weights "
                f"{[tuple(v.shape) for v in variables]}; {source} holds {len(weights)} "
                f"{[tuple(a.shape) for _, a in weights]}.")
            continue
        _queue_by_owner(layer, variables, [a for _, a in weights], weight_plan, source)


def _queue_by_owner(layer, variables, values, weight_plan, source):
    """Values given in legacy order go back to each leaf layer in its own ``weights`` order."""
    value_of = {id(v): a for v, a in zip(variables, values)}
    for owner in leaves(layer):
        if owner.weights:
            weight_plan.add(owner, [value_of[id(w)] for w in owner.weights], source)


def optimizer_state(model, arrays, where):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or arrays is None:
        return None
    return state_from_keras(optimizer, list(model.trainable_weights), arrays, where)
