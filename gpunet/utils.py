"""Seeding and small helpers shared by the library."""
import random
import re

import numpy as np

from .plotting import plot_history  # re-exported: gn.utils.plot_history, as in Keras

_rng = np.random.default_rng()


def set_random_seed(seed):
    """Seed every random source gpunet uses: weight initialisation, shuffling, dropout.

    Two runs with the same seed give bit-identical weights and losses on one backend.
    """
    global _rng
    seed = int(seed)
    _rng = np.random.default_rng(seed)
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))


def rng():
    """The generator behind initialisers, shuffling and dropout seeds."""
    return _rng


def get_rng_state():
    """The generator's state, a plain dict (saved with checkpoints to resume exactly)."""
    return _rng.bit_generator.state


def set_rng_state(state):
    _rng.bit_generator.state = state


def snake_case(name):
    """``Conv2DTranspose`` -> ``conv2d_transpose``, as Keras names layers and weight groups."""
    name = re.sub(r"\W+", "", name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub(r"([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def normalize_tuple(value, n, what):
    """An int or a sequence of n ints -> tuple of n ints, with a clear error otherwise."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * n
    try:
        values = tuple(int(v) for v in value)
    except TypeError:
        raise ValueError(f"{what} must be an int or a tuple of {n} ints; received {value!r}.") from None
    if len(values) != n:
        raise ValueError(f"{what} must be an int or a tuple of {n} ints; received {value!r}.")
    return values


def without_keras_defaults(config, keras_only, owner):
    """A copy of a Keras-style ``config`` without the settings gpunet lacks (``keras_only``:
    name -> the value that means "not used"); a setting with any other value is a ValueError
    naming ``owner``, so a Keras config loads only when it asks for nothing gpunet lacks."""
    config = dict(config)
    for key, default in keras_only.items():
        value = config.pop(key, default)
        if value != default:
            raise ValueError(f"{owner}: gpunet does not support {key}={value!r} (only the default {default!r}).")
    return config



_FROM_DATA = ("PyDataset", "Sequence", "image_dataset_from_directory", "segmentation_dataset_from_directory",
              "load_img", "img_to_array", "array_to_img", "save_img", "to_categorical")


def __getattr__(name):
    # keras.utils' data helpers live in gpunet.data (which imports this module): loaded on first use.
    if name in _FROM_DATA:
        from . import data
        return getattr(data, name)
    if name in ("unpack_x_y_sample_weight", "pack_x_y_sample_weight"):
        from . import custom_steps
        return getattr(custom_steps, name)
    raise AttributeError(f"module 'gpunet.utils' has no attribute {name!r}")
