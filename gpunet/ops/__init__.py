"""gn.ops: keras.ops-style functions on tensors of the active backend, differentiated by gn.GradientTape.

    import gpunet as gn
    from gpunet import ops
    y = ops.mean(ops.square(ops.subtract(y_pred, y_true)), axis=-1)

Names, arguments and broadcasting follow keras.ops; every op returns a ``gn.Tensor`` and accepts
Tensors, backend arrays, NumPy arrays and Python numbers. See docs/ops.md.
"""
from .core import *    # convert_to_tensor, convert_to_numpy, cast, zeros, ones, *_like, stop_gradient
from .math import *    # arithmetic, comparisons, reductions
from .array import *   # reshape, transpose, concatenate, slicing, take, matmul
from .nn import *      # activations, conv, pooling, batch_normalization, cross-entropies
from .math_extra import *    # rsqrt, logical_*, moments, norm, linspace
from .array_extra import *   # flip, roll, tile, repeat, pad, cumsum, cumprod
from .sorting import *       # sort, argsort, top_k
from .einsums import *       # einsum
from . import core as _core, math as _math, array as _array, nn as _nn, math_extra as _math_extra
from . import array_extra as _array_extra, sorting as _sorting, einsums as _einsums

__all__ = sorted(set(_core.__all__ + _math.__all__ + _array.__all__ + _nn.__all__ + _math_extra.__all__
                     + _array_extra.__all__ + _sorting.__all__ + _einsums.__all__))
