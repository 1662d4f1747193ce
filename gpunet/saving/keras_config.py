"""Keras 3 configs and gpunet objects: the one place where gpunet's ``get_config()`` meets the JSON
of Keras's ``.keras`` format (``config.json``), both ways.

A Keras layer entry is ``{"module", "class_name", "config", "registered_name", "build_config",
and, inside a functional model, "name", "inbound_nodes"}``. gpunet's layer configs already use
Keras's argument names, so most layers need nothing here: a layer joins by its class name. A
layer whose config differs from Keras's registers a translation with one line::

    register("Sigmoid", keras_class="Activation", write=lambda c: {..., "activation": "sigmoid"})

Keras settings that gpunet's class does not take (``data_format``, ``kernel_regularizer`` ...)
are dropped when they hold the value that means "unused" (``KERAS_ONLY``) and refused with an
error naming the layer otherwise. Nothing from a file is ever executed: classes are looked up by
name among gpunet's and ``custom_objects``, and a Lambda or unknown class is an error.
"""
import inspect

from .. import initializers, utils
from .h5file import FileFormatError

# Keras layer settings gpunet may lack, with the value that means "not used".
KERAS_ONLY = {
    "data_format": "channels_last", "groups": 1, "sparse": False, "ragged": False, "optional": False,
    "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
    "kernel_constraint": None, "bias_constraint": None, "quantization_config": None, "lora_rank": None,
    "lora_alpha": None, "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
    "gamma_constraint": None, "synchronized": False, "renorm": False, "renorm_clipping": None,
    "renorm_momentum": 0.99, "noise_shape": None,
    "depthwise_regularizer": None, "depthwise_constraint": None, "pointwise_regularizer": None,
    "pointwise_constraint": None, "alpha_regularizer": None, "alpha_constraint": None,
}
# Keys of a nested {"class_name", "config"} object -> Keras module it lives in (for writing).
_MODULES = {"_initializer": "keras.initializers", "_regularizer": "keras.regularizers",
            "_constraint": "keras.constraints"}
_MODEL_CLASSES = ("Sequential", "Functional", "Model")


class _Form:
    """How one gpunet class differs from its Keras twin: Keras class name, config translations."""

    def __init__(self, keras_class=None, read=None, write=None):
        self.keras_class, self.read, self.write = keras_class, read, write


_FORMS = {}        # gpunet class name -> _Form
_KERAS_NAMES = {}  # Keras class name -> gpunet class name, where they differ


def register(gpunet_class, keras_class=None, read=None, write=None):
    """Declare how gpunet class ``gpunet_class`` (a name) maps to Keras: ``keras_class`` when the
    names differ, ``read(keras_config) -> gpunet config`` and ``write(gpunet config) -> Keras config``."""
    _FORMS[gpunet_class] = _Form(keras_class, read, write)
    if keras_class is not None and read is not None:
        _KERAS_NAMES.setdefault(keras_class, gpunet_class)


def _input_from_keras(config):
    config = dict(config)
    shape = config.pop("batch_shape", None)
    if shape is not None:
        config["batch_size"], config["shape"] = shape[0], shape[1:]
    return config


def _input_to_keras(config):
    return {"batch_shape": [config["batch_size"], *config["shape"]], "dtype": config["dtype"],
            "sparse": False, "ragged": False, "name": config["name"], "optional": False}


def _activation_layer(name):
    def write(config):
        return {"name": config["name"], "trainable": config["trainable"], "dtype": config["dtype"],
                "activation": name}
    return write


def _explicit_padding_refused(config):
    if config.get("padding") not in ("valid", "same"):
        raise ValueError(f"padding={config.get('padding')!r} has no Keras form (Keras takes 'valid' or "
                         f"'same'); save this model with .h5 instead.")
    return config


register("InputLayer", read=_input_from_keras, write=_input_to_keras)
register("Sigmoid", keras_class="Activation", write=_activation_layer("sigmoid"))
register("Tanh", keras_class="Activation", write=_activation_layer("tanh"))
register("Conv2D", write=_explicit_padding_refused)
register("Conv2DTranspose", write=_explicit_padding_refused)


# -- nested objects (initializers, dtype policies, regularizers, ...) -----------------------------
def _initializer_from_keras(value):
    if not isinstance(value, dict):
        return value
    name, config = value.get("class_name"), dict(value.get("config") or {})
    for key in ("seed", "input_axes", "output_axes"):   # only decide a fresh draw; loading overwrites it
        config.pop(key, None)
    simple = utils.snake_case(name)
    if simple in initializers._BY_NAME and name not in ("RandomNormal", "RandomUniform"):
        return simple
    return {"class_name": name, "config": config}


def _initializer_to_keras(value):
    if isinstance(value, str):
        name = "".join(part.capitalize() for part in value.split("_"))
        return {"module": "keras.initializers", "class_name": name, "config": {"seed": None}
                if "uniform" in value or "normal" in value else {}, "registered_name": None}
    return {"module": "keras.initializers", "class_name": value["class_name"],
            "config": dict(value["config"]), "registered_name": None}


def _plain(value):
    """A Keras nested object without its module / registered_name (gpunet's form)."""
    if isinstance(value, dict) and "class_name" in value and "config" in value:
        return {"class_name": value["class_name"], "config": value["config"]}
    return value


def _config_from_keras(config):
    out = {}
    for key, value in config.items():
        if key == "dtype" and isinstance(value, dict):
            value = value.get("config", {}).get("name", "float32")
        elif key.endswith("_initializer"):
            value = _initializer_from_keras(value)
        else:
            value = _plain(value)
        out[key] = value
    return out


def _config_to_keras(config):
    out = {}
    for key, value in config.items():
        if key == "dtype" and isinstance(value, str):
            value = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": value},
                     "registered_name": None}
        elif key.endswith("_initializer"):
            value = _initializer_to_keras(value)
        elif isinstance(value, tuple):
            value = list(value)
        else:
            family = next((m for suffix, m in _MODULES.items() if key.endswith(suffix)), None)
            if family and isinstance(value, dict):
                value = {"module": family, **value, "registered_name": None}
        out[key] = value
    return out


# -- which arguments a class takes -----------------------------------------------------------
def _accepted(cls):
    """Names ``cls(...)`` takes, following ``**kwargs`` up the class's bases."""
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names.update(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind is p.VAR_KEYWORD for p in params) or klass.__name__ == "Layer":
            break
    names.discard("self")
    return names


def _drop_keras_only(cls, config, owner):
    accepted = _accepted(cls)
    out = {}
    for key, value in config.items():
        if key in accepted:
            out[key] = value
        elif key in KERAS_ONLY and value == KERAS_ONLY[key]:
            continue
        else:
            raise ValueError(f"{owner}: gpunet's {cls.__name__} does not support the Keras setting "
                             f"{key}={value!r}.")
    return out


# -- one layer ----------------------------------------------------------------------------
def layer_class(entry, custom_objects, where):
    """The gpunet (or ``custom_objects``) class for a Keras layer entry; a clear error otherwise."""
    from .. import layers as layer_module
    from ..layers.base import Layer
    name = entry.get("class_name")
    custom = custom_objects or {}
    cls = custom.get(name) or custom.get(entry.get("registered_name"))
    if name == "Lambda" and cls is None:     # checked before gn.layers.Lambda: a file's code never runs
        raise FileFormatError(f"{where} holds a Lambda layer ('{entry.get('config', {}).get('name')}'): its "
                              f"Python code is not loaded, since loading never runs code from a file. "
                              f"Rebuild that part of the model in code, or pass custom_objects.")
    if cls is None:
        cls = getattr(layer_module, _KERAS_NAMES.get(name, name), None)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise FileFormatError(f"{where} holds a layer of class {name!r} "
                              f"('{entry.get('config', {}).get('name')}'), which gpunet does not have. "
                              f"Pass custom_objects={{'{name}': YourLayerClass}} to load it.")
    return cls


def check_classes(entry, custom_objects, where):
    """Look every class of a model config up before anything is built: all or nothing."""
    if entry.get("class_name") in _MODEL_CLASSES:
        for sub in entry["config"]["layers"]:
            check_classes(sub, custom_objects, where)
    else:
        layer_class(entry, custom_objects, where)


def layer_from_keras(entry, custom_objects, where):
    """A gpunet layer from a Keras layer entry (not yet connected)."""
    cls = layer_class(entry, custom_objects, where)
    owner = f"{where}, layer '{entry['config'].get('name')}' ({entry['class_name']})"
    config = _config_from_keras(entry["config"])
    form = _FORMS.get(cls.__name__)
    if form is not None and form.read is not None:
        config = form.read(config)
    try:
        config = _drop_keras_only(cls, config, owner)
        return cls.from_config(config)
    except (TypeError, ValueError) as error:
        raise FileFormatError(f"{owner} cannot be rebuilt: {error}") from error


def layer_to_keras(layer):
    """``{"module", "class_name", "config", "registered_name", "build_config"}`` of a gpunet layer."""
    name = type(layer).__name__
    form = _FORMS.get(name)
    config = layer.get_config()
    try:
        if form is not None and form.write is not None:
            config = form.write(config)
    except ValueError as error:
        raise ValueError(f"Layer '{layer.name}' ({name}) cannot be saved in the .keras format: {error}") from None
    if name != "InputLayer":   # Keras's InputLayer keeps its dtype as a plain name
        config = _config_to_keras(config)
    entry = {"module": "keras.layers", "class_name": (form and form.keras_class) or name,
             "config": config, "registered_name": None}
    if layer.built and name != "InputLayer" and layer.input_shape is not None:
        entry["build_config"] = {"input_shape": layer.input_shape}
    return entry
