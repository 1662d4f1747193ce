"""An optimizer's state as the list of variables Keras 3 saves, and back.

Keras's order (``optimizer.variables``): ``iteration`` (int32 scalar), ``learning_rate``
(float32 scalar, absent when the rate is a schedule), then the slots of every trainable
variable of the model. Adam and AdamW create ``momentum`` and ``velocity`` together per
variable (interleaved); every other slot kind comes as its own block over all variables
(SGD ``momentum``; RMSprop ``velocity``, ``momentum``, ``average_gradient``; Adam's
``velocity_hat``).
"""
import warnings

import numpy as np

from .. import optimizers


def slot_groups(optimizer):
    """Slot names grouped as Keras creates them: names in one group alternate per variable."""
    names = list(optimizer.slot_names())
    if getattr(optimizer, "interleaved_slots", False):
        return [names]
    if isinstance(optimizer, optimizers.Adam) and names[:2] == ["momentum", "velocity"]:
        return [names[:2]] + [[n] for n in names[2:]]
    return [[n] for n in names]


def _keys(optimizer, count, has_rate, with_slots=True):
    """gpunet ``get_state`` keys in Keras's variable order, for ``count`` parameters."""
    keys = ["iterations"] + (["learning_rate"] if has_rate else [])
    if with_slots:
        keys += [f"{name}_{i}" for group in slot_groups(optimizer) for i in range(count) for name in group]
    return keys


def _slot_count(optimizer, state):
    names = optimizer.slot_names()
    return sum(1 for key in state if names and key.startswith(f"{names[0]}_") and key[len(names[0]) + 1:].isdigit())


def keras_variables(optimizer):
    """``[(key, array)]`` in Keras's order; key is ``"iteration"``, ``"learning_rate"`` or
    ``(slot, parameter index)``. Before the first update there are no slots (as in Keras)."""
    state = optimizer.get_state()
    count = _slot_count(optimizer, state)
    out = []
    for key in _keys(optimizer, count, "learning_rate" in state, with_slots=count > 0):
        if key == "iterations":
            out.append(("iteration", np.array(state[key], dtype=np.int32)))
        elif key == "learning_rate":
            out.append(("learning_rate", np.array(state[key], dtype=np.float32)))
        else:
            slot, index = key.rsplit("_", 1)
            out.append(((slot, int(index)), np.asarray(state[key])))
    return out


def state_from_keras(optimizer, params, arrays, where):
    """The ``set_state`` dict for Keras-ordered ``arrays`` saved for ``params`` (the model's
    trainable weights), or None after a warning when the counts cannot match (as Keras skips).

    A slot whose shape differs from its parameter's is an error naming both shapes.
    """
    current = optimizer.get_state()
    has_rate = "learning_rate" in current
    full = _keys(optimizer, len(params), has_rate)
    bare = _keys(optimizer, len(params), has_rate, with_slots=False)
    if len(arrays) == len(full):
        keys = full
    elif len(arrays) == len(bare) and not optimizer.built:
        keys = bare
    else:
        warnings.warn(f"Skipping the optimizer state in {where}: optimizer '{optimizer.name}' "
                      f"({type(optimizer).__name__}) for {len(params)} trainable weights has {len(full)} "
                      f"variables, whereas the file holds {len(arrays)}.", stacklevel=4)
        return None
    state = dict(zip(keys, arrays))
    slot_shape = getattr(optimizer, "slot_shape", lambda name, shape: tuple(shape))
    for key in keys[len(bare):]:
        name, index = key.rsplit("_", 1)
        param = params[int(index)]
        if tuple(state[key].shape) != tuple(slot_shape(name, param.shape)):
            raise ValueError(f"Optimizer '{optimizer.name}' slot '{key}' must have the shape of its weight "
                             f"{tuple(param.shape)}; {where} holds shape {tuple(state[key].shape)}.")
    state["iterations"] = int(np.asarray(state["iterations"]))
    if has_rate:
        state["learning_rate"] = _same_rate(current["learning_rate"], state["learning_rate"])
    return state


def _same_rate(current, saved):
    """Keras stores the rate in float32; keep the exact float64 rate when that is what was saved."""
    current, saved = float(current), np.asarray(saved)
    if saved.dtype == np.float32 and np.float32(current) == saved:
        return current
    return float(saved)
