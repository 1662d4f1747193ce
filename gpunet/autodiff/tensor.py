"""``gn.Tensor``: what every ``gn.ops`` function returns - a backend array, the backend it lives on,
a serial number the tape keys gradients by, and a version counter that in-place writes bump.

Python operators map onto ``gn.ops`` (``x * w + 1`` records like ``ops.add(ops.multiply(x, w), 1)``),
NumPy defers to them (``__array_ufunc__ = None``), and ``np.asarray(t)`` gives a host copy.
"""
import itertools

import numpy as np

from .. import backend

_serials = itertools.count()


class Tensor:
    """A backend array as gn.ops sees it. ``data``: the array; ``shape``, ``dtype``, ``ndim`` as NumPy."""

    __slots__ = ("data", "serial", "version", "backend", "__weakref__")
    __array_ufunc__ = None        # NumPy operators on (array, Tensor) call the Tensor's reflected method
    __array_priority__ = 1000

    def __init__(self, data, backend_name=None):
        self.data = data
        self.serial = next(_serials)
        self.version = 0
        self.backend = backend_name or backend.current().name

    # -- what NumPy users expect ---------------------------------------------------------------
    shape = property(lambda self: tuple(self.data.shape))
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: int(self.data.size))

    def numpy(self):
        """A host NumPy copy of the values."""
        data = self.data
        if type(data) is not np.ndarray:      # CuPy's .get(), or cudasim's device memory read
            data = data.get() if hasattr(data, "get") else backend.current().to_numpy(data)
        return np.array(data, copy=True)

    def __array__(self, dtype=None, copy=None):
        values = self.numpy()
        return values if dtype is None else values.astype(dtype)

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d Tensor.")
        return self.shape[0]

    def __float__(self):
        return float(self.numpy())

    def __int__(self):
        return int(self.numpy())

    def __bool__(self):
        if self.size != 1:
            raise ValueError(f"The truth value of a Tensor of shape {self.shape} is ambiguous; use gn.ops.any/all.")
        return bool(self.numpy().reshape(()))

    def __repr__(self):
        return f"<gn.Tensor shape={self.shape} dtype={self.dtype} backend={self.backend!r}>\n{self.numpy()!r}"

    __hash__ = object.__hash__    # == is elementwise (Keras), identity keeps Tensors usable as dict keys

    def __setitem__(self, key, value):
        """In-place write: bumps ``version``, so a tape that saved this tensor refuses to use it."""
        from .. import ops
        self.data[key] = ops.convert_to_tensor(value, dtype=self.dtype).data
        self.version += 1

    def __getitem__(self, key):
        from .. import ops
        return ops.getitem(self, key)

    # -- operators -------------------------------------------------------------------------------
    def _op(name, reflected=False):
        def method(self, other):
            from .. import ops
            fn = getattr(ops, name)
            return fn(other, self) if reflected else fn(self, other)
        method.__name__ = name
        return method

    __add__, __radd__ = _op("add"), _op("add", True)
    __sub__, __rsub__ = _op("subtract"), _op("subtract", True)
    __mul__, __rmul__ = _op("multiply"), _op("multiply", True)
    __truediv__, __rtruediv__ = _op("divide"), _op("divide", True)
    __pow__, __rpow__ = _op("power"), _op("power", True)
    __matmul__, __rmatmul__ = _op("matmul"), _op("matmul", True)
    __eq__, __ne__ = _op("equal"), _op("not_equal")
    __lt__, __le__ = _op("less"), _op("less_equal")
    __gt__, __ge__ = _op("greater"), _op("greater_equal")
    del _op

    def __neg__(self):
        from .. import ops
        return ops.negative(self)

    def __abs__(self):
        from .. import ops
        return ops.abs(self)

    @property
    def T(self):
        from .. import ops
        return ops.transpose(self)
