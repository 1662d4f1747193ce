"""How weight files see a model: containers, class-derived keys, variable paths, and the
all-or-nothing assignment of loaded values.

``model.layers`` is the unit everywhere. A nested model (a ``Model`` used as a layer) is a
container: the Keras 3 format descends into it, the legacy format treats it as one layer.
"""
import warnings

import numpy as np

from ..primitives import precision

from .. import backend, utils


def _model_classes():
    from ..models import Model, Sequential   # models imports saving: resolve at call time
    return Model, Sequential


def is_container(layer):
    return isinstance(layer, _model_classes()[0])


def class_key(layer):
    """Keras's group name for a layer's class: ``Conv2DTranspose`` -> ``conv2d_transpose``.

    gpunet's functional ``Model`` is Keras's ``Functional`` class, hence ``functional``.
    """
    if type(layer) is _model_classes()[0]:
        return "functional"
    return utils.snake_case(type(layer).__name__)


def keyed_layers(container):
    """``(key, layer)`` for ``container.layers``: class keys numbered ``_1, _2, ...`` per class."""
    used = {}
    for layer in container.layers:
        key = class_key(layer)
        count = used.get(key, 0)
        used[key] = count + 1
        yield (key if count == 0 else f"{key}_{count}"), layer


def leaves(layer):
    """The non-container layers at or under ``layer``, in ``layers`` order."""
    if not is_container(layer):
        return [layer]
    return [leaf for sub in layer.layers for leaf in leaves(sub)]


def sequential_scope(model):
    """The path prefix Keras 3 gives the variables a model builds: ``"sequential/"`` or ``""``."""
    return f"{model.name}/" if isinstance(model, _model_classes()[1]) else ""


def variable_paths(layer, prefix=""):
    """``{id(array): "scope/layer/var"}`` for every variable under ``layer``, as Keras 3 names
    them: a Sequential scopes the layers it builds with its own name, a functional model does not."""
    if not is_container(layer):
        return {id(array): f"{prefix}{layer.name}/{name}" for name, array in zip(layer.weight_names, layer.weights)}
    prefix += sequential_scope(layer)
    paths = {}
    for sub in layer.layers:
        paths.update(variable_paths(sub, prefix))
    return paths


def legacy_variables(layer):
    """A layer's variables in the legacy ``.h5`` order: trainable ones, then the others."""
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def to_numpy(array):
    """A host copy of a backend array, whichever backend made it, as a weights file stores it:
    bfloat16 widened to float32 (exact; HDF5 has no bfloat16 type, and a "bfloat16" policy's
    file then loads anywhere, as a mixed policy's float32 one does)."""
    if isinstance(array, np.ndarray):
        host = np.array(array, copy=True)
    elif hasattr(array, "get"):   # a CuPy array, even when another backend is active now
        host = array.get()
    else:
        host = np.array(backend.current().to_numpy(array), copy=True)
    return host.astype(np.float32) if host.dtype == precision.BFLOAT16 else host


def require_built(model, action):
    if not getattr(model, "built", False):
        raise ValueError(f"Model '{model.name}' is not built yet, so it has no weights to {action}. "
                         f"Build it first: give it a gn.Input, call model.build((None, *input_shape)), "
                         f"or run it on a batch.")


# -- all-or-nothing assignment ------------------------------------------------------------
class WeightPlan:
    """Values for layers, checked in full before any layer is touched.

    ``add(layer, values, where)`` queues NumPy arrays in ``layer.weights`` order; ``where`` says
    where they came from, for error messages. ``apply()`` raises on the first mismatch (count,
    shape, or a dtype that cannot become the weight's) before assigning anything; with
    ``skip_mismatch`` the mismatching layers are left alone with a warning instead.
    """

    def __init__(self, skip_mismatch=False):
        self.skip_mismatch = skip_mismatch
        self.entries = []

    def add(self, layer, values, where):
        self.entries.append((layer, list(values), where))

    def mismatch(self, message):
        if not self.skip_mismatch:
            raise ValueError(message + " No weights were loaded.")
        warnings.warn(message + " Skipped (skip_mismatch=True).", stacklevel=4)

    def _problem(self, layer, values, where):
        targets, names = layer.weights, layer.weight_names
        kind = type(getattr(layer, "layer", layer)).__name__   # nested.OwnVariables stands for its layer
        if len(values) != len(targets):
            hint = "" if layer.built else " (the layer is not built yet: build the model before loading)"
            return (f"Layer '{layer.name}' ({kind}) expects {len(targets)} weights "
                    f"{[tuple(t.shape) for t in targets]}{hint}; {where} holds {len(values)} "
                    f"{[tuple(v.shape) for v in values]}.")
        for name, target, value in zip(names, targets, values):
            if tuple(value.shape) != tuple(target.shape):
                return (f"Layer '{layer.name}' ({kind}) weight '{name}' has shape "
                        f"{tuple(target.shape)} in the model; {where} holds shape {tuple(value.shape)}.")
            if _kind(value.dtype) != _kind(target.dtype):   # float32 <-> float64 / bf16 / fp16 is a cast, as in Keras
                return (f"Layer '{layer.name}' ({kind}) weight '{name}' has dtype "
                        f"{np.dtype(target.dtype).name} in the model; {where} holds dtype {value.dtype}.")
        return None

    def check(self):
        """The entries that fit (all of them, unless skip_mismatch let some go)."""
        ready = []
        for layer, values, where in self.entries:
            problem = self._problem(layer, values, where)
            if problem is None:
                ready.append((layer, values))
            else:
                self.mismatch(problem)
        return ready

    def apply(self):
        for layer, values in self.check():
            layer.set_weights(values)


def _kind(dtype):
    """NumPy's kind letter, with bfloat16 (ml_dtypes, kind 'V') counted as a float."""
    dtype = np.dtype(dtype)
    return "f" if dtype in precision.HALF else dtype.kind
