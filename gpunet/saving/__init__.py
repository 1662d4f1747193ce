"""Weights and whole models on disk, in the HDF5 layouts Keras reads and writes.

    gn.saving.save_weights(model, "m.weights.h5")   # Keras 3 layout (keras.Model.load_weights reads it)
    gn.saving.save_weights(model, "m.h5")           # legacy Keras 2 layout
    gn.saving.load_weights(model, "m.weights.h5")   # also reads Keras's legacy .h5 files
    gn.saving.save_model(model, "m.h5"); model = gn.saving.load_model("m.h5")

Every write goes to a temporary file in the target's folder that is renamed into place when
complete, so an interrupted save leaves the previous file intact. Every load checks all counts,
shapes and dtypes before it assigns anything, so a mismatch leaves the model untouched.
Files hold NumPy data only: weights saved under one backend load under any other.
"""
import os

from . import keras3, legacy
from .h5file import FileFormatError, atomic_h5, open_h5
from .model_file import load_model, save_model
from ..autodiff.functions import get_registered_object, register_keras_serializable
from .tree import WeightPlan, require_built

__all__ = ["save_weights", "load_weights", "save_model", "load_model", "FileFormatError",
           "register_keras_serializable", "get_registered_object"]


def save_weights(model, path, overwrite=True):
    """Write ``model``'s weights to ``path``.

    ``*.weights.h5``: the Keras 3 layout (``layers/<class key>/vars/<i>``, ``optimizer/vars`` once
    compiled). Any other ``*.h5`` / ``*.hdf5``: the legacy layout Keras 2's ``save_weights`` wrote.
    ``overwrite=False`` refuses to replace an existing file (FileExistsError).
    """
    path = os.fspath(path)
    if path.endswith(".weights.h5"):
        writer = keras3.write
    elif path.endswith((".h5", ".hdf5")):
        writer = legacy.write
    else:
        raise ValueError(f"save_weights writes HDF5: the path must end in '.weights.h5' (Keras 3 layout) "
                         f"or '.h5' (legacy layout); received '{path}'.")
    require_built(model, "save")
    with atomic_h5(path, overwrite) as f:
        writer(f, model)


def _read_weights(path):
    """``(kind, content)`` of a weights file, read in one guarded pass."""
    with open_h5(path) as f:
        if keras3.is_keras3(f):
            return "keras3", keras3.read(f)
        if legacy.is_weights_only(f):
            return "legacy", legacy.read(f, f"'{path}'")
        if "model_weights" in f:
            return "legacy", legacy.read(f["model_weights"], f"'{path}' model_weights")
        raise FileFormatError(
            f"'{path}' is an HDF5 file but not a weights file: it has no 'layers'/'vars' groups (Keras 3 "
            f".weights.h5), no 'layer_names' attribute (legacy weights .h5) and no 'model_weights' group "
            f"(legacy model .h5). It holds {sorted(f.keys())}.")


def load_weights(model, path, skip_mismatch=False):
    """Load weights saved by gpunet or Keras into ``model`` (built, same architecture).

    Reads the Keras 3 ``.weights.h5`` layout (matched by class keys, as Keras does; the optimizer's
    variables too when ``model`` is compiled), and the legacy ``.h5`` layouts (weights-only or
    full-model), matched by the position of the layers that have weights. Nothing is assigned
    unless every layer fits: a count, shape or dtype mismatch raises a ValueError naming the layer
    and both shapes. ``skip_mismatch=True`` skips the mismatching layers with a warning instead.
    """
    path = os.fspath(path)
    require_built(model, "load")
    kind, content = _read_weights(path)
    weight_plan = WeightPlan(skip_mismatch)
    state = None
    if kind == "keras3":
        keras3.plan(model, content, weight_plan)
        state = keras3.optimizer_state(model, content, f"'{path}'")
    else:
        legacy.plan(model, content, weight_plan, f"'{path}'")
    weight_plan.apply()
    if state is not None:
        model.optimizer.set_state(state)
