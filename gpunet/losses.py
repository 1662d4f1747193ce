"""Loss objects with Keras's names, and ``get`` / ``serialize``, the registry by name.

    loss = gn.losses.get("sparse_categorical_crossentropy")
    value = loss(y_true, y_pred)                     # a float, the mean over the batch
    value, dy_pred = loss.compute(y_true, y_pred)    # and d(value)/d(y_pred)

The training loop calls the ``device_*`` forms, which return the mean as a 0-d backend array
and never read it on the host (a read would wait for the device). Sparse labels outside
[0, classes) give a NaN loss there, from the kernels themselves; ``check_targets`` refuses
them with a clear error before fit / evaluate start, on the host data.

Cross-entropies on probabilities also fuse with a final softmax: ``compute_from_logits`` takes
the softmax's input and returns ``(value, dlogits, probs)`` from one stable op.

Where they live: the base class in losses_base.py, the cross-entropies, MSE and MAE in
losses_core.py, the other families in losses_regression.py, losses_classification.py and
losses_segmentation.py, Keras's loss functions in loss_functions.py; this module gathers them.
"""
from . import utils
from .losses_base import Loss, align_targets, label_dtype  # noqa: F401  (label_dtype: losses.label_dtype)
from .losses_core import (BinaryCrossentropy, CategoricalCrossentropy, MeanAbsoluteError, MeanSquaredError,
                          SparseCategoricalCrossentropy)

__all__ = ["Loss", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "BinaryCrossentropy",
           "MeanSquaredError", "MeanAbsoluteError", "get", "align_targets"]


_BY_NAME = {
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
}

# The other Keras losses live in files by family; they join the registry here.
from .losses_regression import *      # noqa: E402,F401,F403  Huber, LogCosh, Poisson, MSLE, MAPE, KLD, CosineSimilarity
from .losses_classification import *  # noqa: E402,F401,F403  Hinge, SquaredHinge, CategoricalHinge, focal losses
from .losses_segmentation import *    # noqa: E402,F401,F403  Dice, Tversky
from . import losses_classification, losses_regression, losses_segmentation  # noqa: E402

_FAMILIES = losses_regression.__all__ + losses_classification.__all__ + losses_segmentation.__all__
__all__ += _FAMILIES
_BY_NAME.update({utils.snake_case(name): globals()[name] for name in _FAMILIES})
_BY_NAME.update({"huber": Huber, "logcosh": LogCosh, "kld": KLDivergence, "msle": MeanSquaredLogarithmicError,
                 "mape": MeanAbsolutePercentageError})
_CLASSES = {cls.__name__: cls for cls in _BY_NAME.values()}

# Keras's loss functions (per-sample values, gn.ops): compile(loss=gn.losses.mean_squared_error)
# gets the fused class of the same formula (the function's defaults are the class's).
from . import loss_functions  # noqa: E402
from .loss_functions import *  # noqa: E402,F401,F403
__all__ += loss_functions.__all__
_FUNCTION_CLASSES = {getattr(loss_functions, name): _BY_NAME[name] for name in loss_functions.__all__ if name in _BY_NAME}


def get(identifier):
    """A Loss from a name, a Loss object, a Loss class or a ``{"class_name", "config"}`` dict.

    None gives None (a model compiled without a loss).
    """
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if callable(identifier) and identifier in _FUNCTION_CLASSES:
        return _FUNCTION_CLASSES[identifier]()
    if callable(identifier) and not isinstance(identifier, type):   # fn(y_true, y_pred) with gn.ops
        from .autodiff.functions import LossFunctionWrapper
        return LossFunctionWrapper(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str):
        key = utils.snake_case(identifier.strip()) if identifier[:1].isupper() else identifier.strip().lower()
        if key in _BY_NAME:
            return _BY_NAME[key]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        return _CLASSES[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise ValueError(f"Unknown loss {identifier!r}; expected one of {', '.join(repr(n) for n in _BY_NAME)}, "
                     f"a Loss object or a Loss class.")


def serialize(loss):
    """``{"class_name", "config"}`` for a Loss (what :func:`get` accepts back)."""
    return {"class_name": type(loss).__name__, "config": loss.get_config()}
