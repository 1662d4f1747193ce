"""Dtype policies, as Keras 3 has them: mixed precision in one line.

    gn.mixed_precision.set_global_policy("mixed_bfloat16")   # layers made from now on compute in bf16

A policy is a name and two dtypes: ``variable_dtype``, the dtype of the weights a layer
creates (and of their gradients, which the optimizer reads), and ``compute_dtype``, the dtype
its forward and backward compute in. Layers read the policy when they are made (``dtype=``
a name or a policy, else the global one); ops and kernels never ask it, they take the dtype
of their inputs. Names:

=================  ===============  ================
name               compute_dtype    variable_dtype
=================  ===============  ================
"float32"          float32          float32          (the default)
"mixed_bfloat16"   bfloat16         float32
"mixed_float16"    float16          float32
"bfloat16"         bfloat16         bfloat16
"float16"          float16          float16
"float64"          float64          float64          (numpy backend only: gradient checks)
=================  ===============  ================

bfloat16 arrays are ``ml_dtypes.bfloat16`` (the package JAX uses); Keras's integer policies
("int32", ...) are valid policies, but no gpunet layer computes in them (the layer says so).
"""
import numpy as np

from .primitives import precision

__all__ = ["DTypePolicy", "Policy", "set_global_policy", "global_policy", "set_dtype_policy", "dtype_policy",
           "get", "serialize", "deserialize", "POLICY_NAMES", "layer_policy"]

_MIXED = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}
_FLOATS = ("float32", "bfloat16", "float16", "float64")
_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool")
POLICY_NAMES = ("float32", "mixed_bfloat16", "mixed_float16", "bfloat16", "float16", "float64")
_accepted_text = ", ".join(repr(n) for n in POLICY_NAMES)


class DTypePolicy:
    """A dtype policy: ``DTypePolicy("mixed_bfloat16")``; ``name``, ``compute_dtype`` and
    ``variable_dtype`` are strings, as in Keras. ``DTypePolicy()`` is the global policy's name."""

    def __init__(self, name=None):
        if name is None:
            name = global_policy().name
        if not isinstance(name, str):
            raise TypeError(f"DTypePolicy name must be a string such as 'mixed_bfloat16'; received {name!r}.")
        canonical = _canonical(name)
        if canonical is None:
            raise ValueError(f"Cannot convert {name!r} to a DTypePolicy; the policies are {_accepted_text} "
                             f"(and Keras's integer dtype names, which no gpunet layer computes in).")
        self._name = name
        self._compute_dtype = _MIXED.get(canonical, canonical)
        self._variable_dtype = "float32" if canonical in _MIXED else canonical

    name = property(lambda self: self._name, doc="The policy's name, e.g. 'mixed_bfloat16'.")
    compute_dtype = property(lambda self: self._compute_dtype, doc="The dtype layers compute in.")
    variable_dtype = property(lambda self: self._variable_dtype, doc="The dtype of the weights layers create.")
    quantization_mode = None   # Keras's quantized policies ("int8_from_...") are not offered

    @property
    def is_mixed(self):
        """True when compute and variable dtypes differ (mixed_float16, mixed_bfloat16)."""
        return self._compute_dtype != self._variable_dtype

    def __eq__(self, other):
        return type(other) is type(self) and other.name == self.name

    __hash__ = None   # as Keras's: equal by name, not usable as a dict key

    def __repr__(self):
        return f'<DTypePolicy "{self._name}">'

    def get_config(self):
        return {"name": self._name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


Policy = DTypePolicy   # keras.mixed_precision.Policy


def _canonical(name):
    if name in _MIXED or name in _FLOATS or name in _INTS:
        return name
    try:
        dtype = np.dtype(name)   # "f4", np.float32's name spellings ...
    except TypeError:
        return None
    return dtype.name if dtype.name in _FLOATS + _INTS else None


def get(identifier):
    """A DTypePolicy from a policy, a name, a config (``{"class_name": "DTypePolicy", "config":
    {"name": ...}}`` or ``{"name": ...}``) or None (the global policy)."""
    if identifier is None:
        return global_policy()
    if isinstance(identifier, DTypePolicy):
        return identifier
    if isinstance(identifier, dict):
        config = identifier.get("config", identifier)
        return DTypePolicy(config.get("name"))
    if isinstance(identifier, np.dtype) or isinstance(identifier, type):
        return DTypePolicy(np.dtype(identifier).name)
    return DTypePolicy(identifier)


def serialize(policy):
    """Keras 3's form of a policy in a layer config: ``{"module": "keras", "class_name": "DTypePolicy",
    "config": {"name": ...}, "registered_name": None}``."""
    return {"module": "keras", "class_name": "DTypePolicy", "config": policy.get_config(), "registered_name": None}


def deserialize(config):
    """The policy of :func:`serialize`'s form (or a name)."""
    return get(config)


_global = {"policy": None}


def set_global_policy(policy):
    """Make ``policy`` (a name or a DTypePolicy; None: "float32") the one layers made from now on use."""
    policy = DTypePolicy("float32") if policy is None else get(policy)
    if policy.compute_dtype not in _FLOATS:
        raise ValueError(f"set_global_policy takes a floating policy ({_accepted_text}); received "
                         f"{policy.name!r}, which computes in {policy.compute_dtype}.")
    _require_dtype(policy.compute_dtype, "set_global_policy")
    _global["policy"] = policy


def global_policy():
    """The policy layers made now take when they get no ``dtype=`` ("float32" unless set)."""
    if _global["policy"] is None:
        _global["policy"] = DTypePolicy("float32")
    return _global["policy"]


set_dtype_policy = set_global_policy   # keras.config.set_dtype_policy
dtype_policy = global_policy           # keras.config.dtype_policy


def _require_dtype(dtype, owner):
    """Raise unless NumPy can hold ``dtype`` here (bfloat16 needs ml_dtypes)."""
    if dtype == "bfloat16" and precision.BFLOAT16 is None:
        raise ImportError(f"{owner}: dtype 'bfloat16' needs the ml_dtypes package (pip install ml_dtypes); "
                          f"the float16 policies ('mixed_float16', 'float16') need nothing extra.")


def layer_policy(dtype, owner):
    """The policy a layer named ``owner`` (e.g. "Dense 'dense_1'") computes with, from its ``dtype=``
    argument (None: the global policy); a clear error when it cannot compute in it."""
    try:
        policy = get(dtype)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{owner}: dtype={dtype!r} is not a dtype policy; expected one of {_accepted_text} "
                         f"or a gn.mixed_precision.DTypePolicy. ({error})") from None
    if policy.compute_dtype not in _FLOATS:
        raise ValueError(f"{owner} cannot compute in dtype {policy.compute_dtype!r} (policy {policy.name!r}); "
                         f"its dtype must be a floating policy: one of {_accepted_text}.")
    _require_dtype(policy.compute_dtype, owner)
    return policy


def check_backend(policy, owner, backend):
    """Raise when ``policy`` computes in float64 on a kernel backend (the kernels are float32 / bf16 / fp16)."""
    if policy.compute_dtype == "float64" and backend.runs_kernels:
        raise ValueError(f"{owner} computes in float64 (dtype policy {policy.name!r}), which only the numpy "
                         f"backend runs; the {backend.name!r} backend's kernels take "
                         f"{', '.join(repr(n) for n in POLICY_NAMES[:-1])}.")


def __getattr__(name):
    # keras.mixed_precision.LossScaleOptimizer is the optimizer (gn.optimizers imports this module)
    if name == "LossScaleOptimizer":
        from . import optimizers
        return optimizers.LossScaleOptimizer
    raise AttributeError(f"module 'gpunet.mixed_precision' has no attribute {name!r}")
