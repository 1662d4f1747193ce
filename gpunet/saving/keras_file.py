"""Keras 3's ``.keras`` format: a zip of ``config.json``, ``metadata.json`` and ``model.weights.h5``.

::

    config.json       {"module", "class_name": "Sequential" | "Functional", "config": {...layers...},
                       "registered_name", "build_config", "compile_config": {"optimizer", "loss",
                       "metrics", ...}}                        (layer entries: see keras_config.py)
    metadata.json     {"keras_version", "date_saved"}, plus "gpunet": the random generator's state
                      and each layer's random state, so that a checkpoint resumes a run exactly
    model.weights.h5  the Keras 3 weights layout (keras3.py), optimizer variables included

A file is read in full and every class looked up before any model is made, so an unknown
class or a Lambda is an error naming it and the file, and nothing half-built comes back.
Configs are data only: nothing in a file is executed.
"""
import datetime
import io
import json
import os
import tempfile
import warnings
import zipfile

import h5py

from .. import optimizers, utils
from . import keras3
from .h5file import FileFormatError, atomic_path, open_h5, to_json
from .keras_config import check_classes, layer_from_keras, layer_to_keras
from .tree import WeightPlan, require_built

KERAS_FORMAT_VERSION = "3.15.1"   # the Keras release whose files these are checked against
_CONFIG, _METADATA, _WEIGHTS = "config.json", "metadata.json", "model.weights.h5"


def is_keras_zip(path):
    return os.path.isfile(path) and zipfile.is_zipfile(path)


# -- models -> config.json ----------------------------------------------------------------------
def _tensor(t, calls):
    """A Keras tensor reference: the layer that made ``t`` and which of its calls (``calls``)."""
    return {"class_name": "__keras_tensor__",
            "config": {"shape": list(t.shape), "dtype": "float32",
                       "keras_history": [t.layer.name, calls.get(id(t), 0), 0]}}


def _model_to_keras(model):
    """A model's Keras entry (class, config), nested models included."""
    from ..models import Sequential
    if isinstance(model, Sequential):
        items = ([model._input_layer] if model._input_layer is not None else []) + model.layers
        config = {"name": model.name, "trainable": model.trainable,
                  "layers": [_entry(layer) for layer in items]}
        if model.built:
            config["build_input_shape"] = list(model.input_shape)
        return {"module": "keras", "class_name": "Sequential", "config": config, "registered_name": None,
                "build_config": {"input_shape": list(model.input_shape) if model.built else None}}
    # A layer called several times (a shared layer) is one entry with one inbound node per call, its
    # calls numbered in graph order; a tensor names the call that made it (keras_history[1]).
    calls, count, entries = {}, {}, {}
    for node in model._nodes:
        calls[id(node.tensor)] = count[id(node.layer)] = count.get(id(node.layer), -1) + 1
    for node in model._nodes:
        entry = entries.get(id(node.layer))
        if entry is None:
            entry = entries[id(node.layer)] = {**_entry(node.layer), "name": node.layer.name, "inbound_nodes": []}
        if node.inputs:
            refs = [_tensor(t, calls) for t in node.inputs]
            entry["inbound_nodes"].append({"args": [refs] if node.many else refs, "kwargs": {}})

    def ends(tensors, many):
        refs = [[t.layer.name, calls.get(id(t), 0), 0] for t in tensors]
        return refs if many else refs[0]
    config = {"name": model.name, "trainable": model.trainable, "layers": list(entries.values()),
              "input_layers": ends(model.inputs, model._many_inputs),
              "output_layers": ends(model.outputs, model._many_outputs)}
    return {"module": "keras.src.models.functional", "class_name": "Functional", "config": config,
            "registered_name": "Functional", "build_config": {"input_shape": None}}


def _entry(layer):
    from ..models import Model
    return _model_to_keras(layer) if isinstance(layer, Model) else layer_to_keras(layer)


def _keras_object(module, entry):
    """gpunet's ``{"class_name", "config"}`` (or a name) in Keras's serialized form."""
    if not isinstance(entry, dict):
        return entry
    config = dict(entry["config"])
    if isinstance(config.get("learning_rate"), dict):
        config["learning_rate"] = _keras_object("keras.optimizers.schedules", config["learning_rate"])
    return {"module": module, "class_name": entry["class_name"], "config": config, "registered_name": None}


def compile_config(model):
    """Keras's ``compile_config`` of a compiled model (the settings ``model_file`` saves in .h5)."""
    from .model_file import training_config
    settings = training_config(model)
    loss = settings["loss"]
    loss = [_keras_object("keras.losses", l) for l in loss] if isinstance(loss, list) \
        else _keras_object("keras.losses", loss)

    def keras_metrics(found):
        if isinstance(found, dict):   # several outputs: metrics per output name
            return {name: [_keras_object("keras.metrics", m) for m in entries] for name, entries in found.items()}
        return [_keras_object("keras.metrics", m) for m in found or []] or None
    return {"optimizer": _keras_object("keras.optimizers", settings["optimizer_config"]),
            "loss": loss, "loss_weights": settings.get("loss_weights"), "metrics": keras_metrics(settings["metrics"]),
            "weighted_metrics": keras_metrics(settings.get("weighted_metrics")),
            "run_eagerly": bool(getattr(model, "run_eagerly", False)), "steps_per_execution": 1,
            "jit_compile": bool(getattr(model, "jit_compile", False))}


# -- config.json -> models ----------------------------------------------------------------------
def _ref(ref, where):
    """``(layer name, call index)`` of a ``[name, node_index, tensor_index]`` reference or a Keras tensor."""
    if isinstance(ref, dict):
        ref = ref["config"]["keras_history"]
    if ref[2] != 0:
        raise FileFormatError(f"{where} uses output {ref[2]} of layer '{ref[0]}': gpunet's functional "
                              f"models take layers with one output.")
    return ref[0], ref[1]


def _single_ref(refs):
    return len(refs) == 3 and isinstance(refs[0], str)


def _functional_from_keras(config, custom_objects, where):
    """Calls every layer on its inbound nodes. A node waits until the tensors it reads exist (a
    shared layer's later call may read a layer listed after it), as Keras rebuilds its graphs."""
    from ..layers.core import InputLayer
    from ..models import Model
    tensors, pending = {}, []
    for entry in config["layers"]:
        layer = _from_keras(entry, custom_objects, where)
        if isinstance(layer, InputLayer):
            tensors[(layer.name, 0)] = layer.output
            continue
        nodes = entry.get("inbound_nodes") or []
        if not nodes:
            raise FileFormatError(f"{where}: layer '{layer.name}' has no inbound nodes: nothing calls it.")
        pending.extend((layer, index, node["args"][0]) for index, node in enumerate(nodes))
    while pending:
        waiting = []
        for layer, index, arg in pending:
            refs = [_ref(t, where) for t in arg] if isinstance(arg, list) else _ref(arg, where)
            needed = refs if isinstance(refs, list) else [refs]
            if not all(r in tensors for r in needed) or any(w[0] is layer and w[1] < index for w in waiting):
                waiting.append((layer, index, arg))
                continue
            tensors[(layer.name, index)] = layer([tensors[r] for r in refs] if isinstance(refs, list) else tensors[refs])
        if len(waiting) == len(pending):
            layer, index, arg = waiting[0]
            raise FileFormatError(f"{where}: call {index} of layer '{layer.name}' reads tensors that no layer of "
                                  f"the config makes ({arg!r:.200}).")
        pending = waiting

    def pick(refs):
        if _single_ref(refs):
            return tensors[_ref(refs, where)]
        return [tensors[_ref(r, where)] for r in refs]
    return Model(pick(config["input_layers"]), pick(config["output_layers"]),
                 name=config.get("name"), trainable=config.get("trainable", True))


def _sequential_from_keras(config, custom_objects, where):
    from ..models import Sequential
    model = Sequential([_from_keras(e, custom_objects, where) for e in config["layers"]],
                       name=config.get("name"), trainable=config.get("trainable", True))
    if not model.built and config.get("build_input_shape"):
        model.build(tuple(config["build_input_shape"]))
    return model


def _from_keras(entry, custom_objects, where):
    name = entry.get("class_name")
    if name == "Sequential":
        return _sequential_from_keras(entry["config"], custom_objects, where)
    if name in ("Functional", "Model"):
        return _functional_from_keras(entry["config"], custom_objects, where)
    return layer_from_keras(entry, custom_objects, where)


def model_from_keras(config, custom_objects, where):
    """A gpunet model from a Keras model config (``config.json``, or a legacy ``.h5``'s
    ``model_config``), every class looked up before anything is built."""
    if config.get("class_name") not in ("Sequential", "Functional", "Model"):
        raise FileFormatError(f"{where} holds a {config.get('class_name')!r}, not a Sequential or "
                              f"functional model; gpunet loads those two.")
    check_classes(config, custom_objects, where)
    return _from_keras(config, custom_objects, where)


def _plain_object(entry):
    if not isinstance(entry, dict):
        return entry
    config = dict(entry.get("config") or {})
    if isinstance(config.get("learning_rate"), dict):
        config["learning_rate"] = _plain_object(config["learning_rate"])
    return {"class_name": entry.get("registered_name") if entry.get("class_name") is None
            else entry["class_name"], "config": config}


def _compile_from_keras(model, config, custom_objects, where):
    """Compile ``model`` as ``compile_config`` says; a setting gpunet lacks is a warning, as Keras
    warns when it cannot restore a compile config, and the model stays uncompiled."""
    from .model_file import compile_entries
    try:
        optimizer = optimizers.deserialize(_plain_object(config["optimizer"]), custom_objects)
        loss, found, weighted = compile_entries(config, custom_objects, plain=_plain_object)
        model.compile(optimizer=optimizer, loss=loss, loss_weights=config.get("loss_weights"),
                      metrics=found or None, weighted_metrics=weighted or None)
        return True
    except (KeyError, TypeError, ValueError) as error:
        warnings.warn(f"{where}: the compile settings could not be restored ({error}); the model is "
                      f"returned uncompiled.", stacklevel=3)
        return False


# -- the zip ----------------------------------------------------------------------------------
def _weights_bytes(model):
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        keras3.write(f, model)
    return buffer.getvalue()


def save_model(model, path, overwrite=True, extra_metadata=None):
    """Write ``model`` as a Keras 3 ``.keras`` zip (Keras's ``keras.saving.load_model`` reads it)."""
    require_built(model, "save")
    config = _model_to_keras(model)
    compiled = getattr(model, "optimizer", None) is not None
    config["compile_config"] = compile_config(model) if compiled else {}   # Keras writes {} too
    config_text = to_json(config, f"model '{model.name}'")
    metadata = {"keras_version": KERAS_FORMAT_VERSION,
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
                **(extra_metadata or {})}
    weights = _weights_bytes(model)
    with atomic_path(path, overwrite) as temp:
        with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(_METADATA, to_json(metadata, "the metadata"))
            archive.writestr(_CONFIG, config_text)
            archive.writestr(_WEIGHTS, weights)
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())


def _read_zip(path):
    """``(config, metadata, weight groups)`` of a .keras file, read in one guarded pass."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = {_CONFIG, _WEIGHTS} - names
            if missing:
                raise FileFormatError(f"'{path}' is a zip archive but not a .keras model: it lacks "
                                      f"{sorted(missing)} (it holds {sorted(names)}).")
            config = json.loads(archive.read(_CONFIG))
            metadata = json.loads(archive.read(_METADATA)) if _METADATA in names else {}
            weights = archive.read(_WEIGHTS)
    except (zipfile.BadZipFile, ValueError, KeyError) as error:
        if isinstance(error, FileFormatError):
            raise
        raise FileFormatError(f"Cannot read '{path}': the .keras archive is damaged ({error}).") from error
    with tempfile.TemporaryDirectory() as folder:
        weights_path = os.path.join(folder, _WEIGHTS)
        with open(weights_path, "wb") as f:
            f.write(weights)
        with open_h5(weights_path) as f:
            groups = keras3.read(f)
    return config, metadata, groups


def load_model(path, custom_objects=None, compile=True):
    """The model in the ``.keras`` file at ``path`` (written by gpunet or by Keras 3), with its
    weights; compiled, with its optimizer state, when the file has compile settings."""
    config, metadata, groups = _read_zip(path)
    where = f"'{path}'"
    model = model_from_keras(config, custom_objects, where)
    weight_plan = WeightPlan()
    keras3.plan(model, groups, weight_plan)
    state = None
    if compile and config.get("compile_config"):
        if _compile_from_keras(model, config["compile_config"], custom_objects, where):
            state = keras3.optimizer_state(model, groups, where)
    weight_plan.apply()
    if state is not None:
        model.optimizer.set_state(state)
    extra = metadata.get("gpunet") if compile else None
    if isinstance(extra, dict):
        _restore_random_state(model, extra)
    return model


def _restore_random_state(model, extra):
    from .model_file import _random_layers
    if extra.get("rng_state") is not None:
        utils.set_rng_state(extra["rng_state"])
    states = extra.get("layer_random_state") or {}
    for layer_path, layer in _random_layers(model):
        if layer_path in states:
            layer.set_random_state(states[layer_path])
