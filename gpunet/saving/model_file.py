"""Whole models in one ``.h5`` file: architecture, weights, compile settings, optimizer state,
and the random generator's state, so that ``load_model`` + ``fit(initial_epoch=k)`` resumes a run
exactly. The layout is Keras's legacy full-model ``.h5``, plus gpunet's own attributes::

    @model_config      JSON {"class_name": "Sequential" | "Functional" | ..., "config": model.get_config()}
    @training_config   JSON {"loss", "metrics", "optimizer_config"} (compiled models only)
    @gpunet_version, @gpunet_rng_state (JSON of gpunet.utils.get_rng_state())
    @gpunet_layer_random_state (JSON: layer path -> its random_state(), e.g. a seeded Dropout's call count)
    model_weights/     the legacy weight layout (see legacy.py)
    optimizer_weights/ @weight_names; <optimizer>/iteration, learning_rate, <variable>_<slot>

Only JSON is read back: classes are looked up by name among gpunet's and ``custom_objects``;
nothing in the file is executed.
"""
import json
import os

from .. import losses, metrics, optimizers, utils
from . import keras_file, legacy
from .h5file import FileFormatError, atomic_h5, open_h5, read_text, to_json
from .tree import WeightPlan, require_built


def _version():
    from .. import __version__   # gpunet/__init__ defines it after importing models
    return __version__


def _class_name(model):
    from ..models import Model
    return "Functional" if type(model) is Model else type(model).__name__


# -- compile settings -----------------------------------------------------------------------
def _metric_entry(metric, loss):
    """The metric by its name when that name rebuilds it, else its class and config."""
    try:
        rebuilt = metrics.get(metric.name, loss=loss)
    except ValueError:
        rebuilt = None
    if type(rebuilt) is type(metric) and rebuilt.get_config() == metric.get_config():
        return metric.name
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def training_config(model):
    if getattr(model, "_outputs", None) is not None:   # several outputs: gpunet.multi_output
        return model._outputs.training_config(optimizers.serialize(model.optimizer))
    loss = model.loss if isinstance(model.loss, str) or model.loss is None else losses.serialize(model.compiled_loss)
    flags = getattr(model, "_weighted_flags", None) or [False] * len(model.compiled_metrics)
    entries = lambda weighted: [_metric_entry(m, model.compiled_loss)
                                for m, w in zip(model.compiled_metrics, flags) if w == weighted]
    return {"loss": loss, "metrics": entries(False), "weighted_metrics": entries(True) or None,
            "optimizer_config": optimizers.serialize(model.optimizer)}


def _from_entry(entry, module, custom_objects):
    """A loss or metric from a name or a ``{"class_name", "config"}`` dict (custom_objects first)."""
    if isinstance(entry, dict) and entry.get("class_name") in (custom_objects or {}):
        return custom_objects[entry["class_name"]].from_config(entry.get("config", {}))
    if isinstance(entry, dict) and entry.get("class_name") in ("LossFunctionWrapper", "MeanMetricWrapper"):
        from ..autodiff import functions   # a Python function: found in custom_objects or the registry
        return getattr(functions, entry["class_name"]).from_config(entry.get("config", {}), custom_objects)
    return module.get(entry)


def _compile(model, config, custom_objects):
    optimizer = optimizers.deserialize(config["optimizer_config"], custom_objects)
    loss, found, weighted = compile_entries(config, custom_objects)
    model.compile(optimizer=optimizer, loss=loss, loss_weights=config.get("loss_weights"), metrics=found or None,
                  weighted_metrics=weighted or None)


def compile_entries(config, custom_objects, plain=lambda entry: entry):
    """(loss, metrics, weighted_metrics) from saved compile settings: entries, lists of them (per
    output), or dicts of lists (metrics per output name); ``plain`` turns a file's entry into
    gpunet's form first."""
    def one(entry, module):
        entry = plain(entry)
        return _from_entry(entry, module, custom_objects) if isinstance(entry, dict) else entry
    def metric_list(found):
        if isinstance(found, dict):
            return {name: [one(m, metrics) for m in entries] for name, entries in found.items()}
        return [one(m, metrics) for m in found or []]
    loss = config.get("loss")
    loss = [one(l, losses) for l in loss] if isinstance(loss, list) else one(loss, losses)
    return loss, metric_list(config.get("metrics")), metric_list(config.get("weighted_metrics"))


# -- saving ---------------------------------------------------------------------------------
def save_model(model, path, overwrite=True):
    """Write ``model`` (architecture, weights, compile settings, optimizer state, RNG state) to ``path``:
    Keras 3's zip for a ``.keras`` name, the legacy full-model HDF5 otherwise."""
    require_built(model, "save")
    if os.fspath(path).endswith(".keras"):
        extra = {"gpunet": {"version": _version(), "rng_state": utils.get_rng_state(),
                            "layer_random_state": {p: layer.random_state() for p, layer in _random_layers(model)}}}
        keras_file.save_model(model, os.fspath(path), overwrite, extra_metadata=extra)
        return
    architecture = to_json({"class_name": _class_name(model), "config": model.get_config()},
                           f"model '{model.name}'")
    compiled = getattr(model, "optimizer", None) is not None
    training = to_json(training_config(model), f"the compile settings of model '{model.name}'") if compiled else None
    with atomic_h5(path, overwrite) as f:
        f.attrs["gpunet_version"] = _version()
        f.attrs["backend"] = "gpunet"
        f.attrs["model_config"] = architecture
        if training is not None:
            f.attrs["training_config"] = training
        f.attrs["gpunet_rng_state"] = json.dumps(utils.get_rng_state())
        f.attrs["gpunet_layer_random_state"] = json.dumps(
            {path: layer.random_state() for path, layer in _random_layers(model)})
        legacy.write(f.create_group("model_weights"), model)
        if compiled:
            legacy.write_optimizer(f.create_group("optimizer_weights"), model)


# -- loading --------------------------------------------------------------------------------
def _read(path):
    """Everything load_model needs from the file, read in one guarded pass."""
    with open_h5(path) as f:
        raw = {key: read_text(f.attrs, key) for key in
               ("model_config", "training_config", "gpunet_version", "gpunet_rng_state",
                          "gpunet_layer_random_state", "keras_version")}
        if raw["model_config"] is None:
            raise FileFormatError(
                f"'{path}' holds no model architecture (no model_config attribute); it looks like a weights "
                f"file. Build the model in code and call model.load_weights('{path}').")
        if "model_weights" not in f:
            raise FileFormatError(f"'{path}' has a model_config but no model_weights group.")
        raw["weights"] = legacy.read(f["model_weights"], f"'{path}'")
        raw["optimizer"] = legacy.read_optimizer(f["optimizer_weights"], f"'{path}' optimizer_weights") \
            if "optimizer_weights" in f else None
    return raw


def _json(text, what, path):
    try:
        return json.loads(text)
    except ValueError as error:
        raise FileFormatError(f"'{path}': the {what} attribute is not valid JSON ({error}).") from None


def load_model(path, custom_objects=None, compile=True):
    """The model saved by :func:`save_model` at ``path``, with its weights: a ``.keras`` zip or a
    full-model ``.h5``, written by gpunet or by Keras.

    ``custom_objects`` maps class names to user classes (layers, models, losses, metrics,
    optimizers). With ``compile=True`` the model comes back compiled with its optimizer state
    (slots and step count), and gpunet's random generator is restored to its state at save
    time, so that ``fit(initial_epoch=k)`` continues a run exactly.
    """
    from ..models import Model, deserialize_layer
    if keras_file.is_keras_zip(os.fspath(path)):
        return keras_file.load_model(os.fspath(path), custom_objects, compile)
    raw = _read(path)
    architecture = _json(raw["model_config"], "model_config", path)
    if raw["gpunet_version"] is None:   # written by Keras: its config format, read as .keras files are
        model = keras_file.model_from_keras(architecture, custom_objects, f"'{path}'")
    else:
        model = deserialize_layer(architecture, custom_objects)
    if not isinstance(model, Model):
        raise FileFormatError(f"'{path}' holds a {type(model).__name__}, not a model.")
    weight_plan = WeightPlan()
    legacy.plan(model, raw["weights"], weight_plan, f"'{path}'")
    state = None
    if compile and raw["training_config"] is not None:
        _compile(model, _json(raw["training_config"], "training_config", path), custom_objects)
        state = legacy.optimizer_state(model, raw["optimizer"], f"'{path}'")
    weight_plan.apply()
    if state is not None:
        model.optimizer.set_state(state)
    if compile and raw["gpunet_rng_state"] is not None:
        utils.set_rng_state(_json(raw["gpunet_rng_state"], "gpunet_rng_state", path))
    if compile and raw["gpunet_layer_random_state"] is not None:
        states = _json(raw["gpunet_layer_random_state"], "gpunet_layer_random_state", path)
        for layer_path, layer in _random_layers(model):
            if layer_path in states:
                layer.set_random_state(states[layer_path])
    return model


def _random_layers(model, prefix=""):
    """``(path, layer)`` for every layer, nested models included, that has a random state."""
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if hasattr(layer, "layers"):
            yield from _random_layers(layer, path + "/")
        elif hasattr(layer, "random_state"):
            yield path, layer
