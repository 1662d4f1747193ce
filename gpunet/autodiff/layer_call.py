"""Layers and models written as ``call()`` with gn.ops, fitted to the layer contract
(``forward`` / ``backward`` / ``grads``) that models and the training loop already speak.

* ``forward(layer, x, training)``: runs ``layer.call`` on Tensors; when gradients may be wanted
  (training, or a tape open around the call) the ops are recorded on a private tape kept until
  ``backward``. ``backward(layer, dy)`` walks that tape: the input gradient is returned and the
  weights' gradients fill ``layer.grads``. So a call() layer sits in Sequential, functional and
  subclassed models beside layers with fused hand-written backwards.
* ``call_layer(layer, inputs, training)``: any layer (fused or call()) called on Tensors while a
  tape records becomes one node of that tape: forward now, ``layer.backward`` as its backward.
* Sublayers held in attributes are tracked (Keras's rule): their weights are the layer's too.
"""
import inspect
import itertools

from .. import backend
from .tape import GradientTape, active, any_open, paused, record, record_many
from .tensor import Tensor

_stamps = itertools.count()


# -- which layers, which sublayers ------------------------------------------------------------------

def tracked_layers(layer):
    """Layers held in ``layer``'s attributes (directly, or in lists / tuples / dicts), in assignment order."""
    from ..layers.base import Layer
    found, seen = [], set()

    def visit(value):
        if isinstance(value, Layer):
            if id(value) not in seen and value is not layer:
                seen.add(id(value))
                found.append(value)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)
    for name, value in vars(layer).items():
        if not name.startswith("_call") and name not in ("inputs", "outputs"):
            visit(value)
    return found


def all_vars(layer):
    """``[name, array, trainable]`` of the layer's own variables, then each tracked sublayer's."""
    own = [list(v) for v in layer._vars]
    for sub in tracked_layers(layer):
        for name, array in zip(sub.weight_names, sub.weights):
            trainable = any(array is w for w in sub.trainable_weights)
            own.append([f"{sub.name}/{name}", array, trainable])
    return own


def _takes_training(layer):
    cls = type(layer)
    cached = cls.__dict__.get("_call_takes_training")
    if cached is None:
        params = inspect.signature(cls.call).parameters
        cached = "training" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
        setattr(cls, "_call_takes_training", cached)
    return cached


# -- forward / backward of a call() layer -------------------------------------------------------------

def _wrap(x):
    return [Tensor(a) if not isinstance(a, Tensor) else a for a in x] if isinstance(x, (list, tuple)) \
        else (Tensor(x) if not isinstance(x, Tensor) else x)


def _flat(out, layer):
    """A dict returned by call() as the list of its values in sorted key order (Keras's flattening).
    ``layer._call_output_keys``: the keys, "tuple" for a tuple, None for anything else."""
    if isinstance(out, dict):
        keys = sorted(out)
        layer._call_output_keys = keys
        return [out[k] for k in keys]
    layer._call_output_keys = "tuple" if isinstance(out, tuple) else None
    return out


def _unwrap(out, layer):
    if isinstance(out, (list, tuple)):
        return [_unwrap(o, layer) for o in out]
    if isinstance(out, Tensor):
        return out.data
    if hasattr(out, "shape") and hasattr(out, "dtype"):
        return backend.current().asarray(out, dtype=out.dtype)
    raise TypeError(f"Layer '{layer.name}': call() must return a tensor (from gn.ops) or a list of them; "
                    f"received {type(out).__name__}.")


def _run_call(layer, inputs, training):
    from . import _autocasting
    from ..layers.autocast import differs, work_dtype
    layer._call_losses = []
    work = work_dtype(layer)
    scope = [({id(v[1]) for v in layer._vars if differs(v[1].dtype, work)}, work)]
    _autocasting.extend(scope if scope[0][0] else [])
    try:
        if _takes_training(layer):
            return _flat(layer.call(inputs, training=training), layer)
        return _flat(layer.call(inputs), layer)
    finally:
        if scope[0][0]:
            _autocasting.pop()


def forward(layer, x, training=False):
    """``layer.call`` on ``x`` (backend arrays); records a private tape when gradients may follow."""
    inputs = _wrap(x)
    if not (training or any_open()):
        with paused():
            out = _run_call(layer, inputs, training)
        layer._call_record = None
        return _unwrap(out, layer)
    tape = GradientTape()
    with tape:
        tape.watch(inputs)
        out = _run_call(layer, inputs, training)
    many = isinstance(out, (list, tuple))
    outs = [o if isinstance(o, Tensor) else Tensor(_unwrap(o, layer)) for o in (out if many else [out])]
    layer._call_record = (tape, inputs, outs if many else outs[0], list(layer._call_losses))
    return [o.data for o in outs] if many else outs[0].data


def _key(tape, x):
    if isinstance(x, Tensor):
        return x.serial
    leaf = tape._leaves.get(id(x))
    return leaf.serial if leaf is not None and leaf.data is x else None


def backward(layer, dy):
    """Gradients of the last recorded ``forward``: returns dx (a list for list inputs); fills ``grads``."""
    record_ = getattr(layer, "_call_record", None)
    if record_ is None:
        raise RuntimeError(f"Layer '{layer.name}': backward() needs a forward with training=True (or inside "
                           "a GradientTape) first; each forward's record serves one backward.")
    tape, inputs, out, added = record_
    layer._call_record = None
    many = isinstance(inputs, list)
    xs = inputs if many else [inputs]
    weights = layer.trainable_weights
    keys = [_key(tape, v) for v in [*xs, *weights]]
    outs, dys = (out, dy) if isinstance(out, list) else ([out], [dy])
    if len(dys) != len(outs):
        raise ValueError(f"Layer '{layer.name}': backward expects one gradient per output ({len(outs)}); "
                         f"received {len(dys)}.")
    seeds = [(o.serial, o, d) for o, d in zip(outs, dys) if d is not None]
    seeds += [(loss.serial, loss, None) for loss in added]
    with paused():
        found = tape.backward(seeds, [k for k in keys if k is not None])
    xp = backend.current().xp

    def grad_or_zeros(key, like):
        g = found.get(key) if key is not None else None
        return g if g is not None else xp.zeros(tuple(like.shape), dtype=like.dtype)
    layer.grads = [grad_or_zeros(k, w) for k, w in zip(keys[len(xs):], weights)]
    dxs = [grad_or_zeros(k, x) for k, x in zip(keys, xs)]
    return dxs if many else dxs[0]


def infer_output_shape(layer, input_shape):
    """Output shape (batch None) of ``layer`` for ``input_shape``, by running call() on a batch of one."""
    many = isinstance(input_shape, list)
    shapes = input_shape if many else [input_shape]
    dtype = layer._compute_np
    probes = [backend.current().zeros((1, *[1 if s is None else s for s in shape[1:]]), dtype) for shape in shapes]
    with paused():
        out = _run_call(layer, _wrap(probes if many else probes[0]), False)
    outs = out if isinstance(out, (list, tuple)) else [out]
    found = [(None, *tuple(o.shape)[1:]) for o in outs]
    return found if isinstance(out, (list, tuple)) else found[0]


# -- any layer called on Tensors ----------------------------------------------------------------------

def call_layer(layer, inputs, training):
    """``layer(x)`` on Tensors (or while a tape records): forward now; one tape node whose backward
    is ``layer.backward`` and whose inputs are x and the layer's trainable weights."""
    from . import as_tensor
    many = isinstance(inputs, (list, tuple))
    items = [as_tensor(x, f"Layer '{layer.name}'") for x in (inputs if many else [inputs])]
    layer.ensure_built([t.shape for t in items] if many else items[0].shape)
    arrays = [t.data for t in items] if many else items[0].data
    tape = active()
    if tape is None:
        with paused():
            out = layer.forward(arrays, training=training)
        return [Tensor(o) for o in out] if isinstance(out, list) else Tensor(out)
    weights = [tape.leaf(w) for w in layer.trainable_weights]
    stamp = layer._call_stamp = next(_stamps)
    with paused():
        out = layer.forward(arrays, training=training)

    def node_backward(dy, needs):   # dy: a list (one per output) for a layer with several outputs
        if getattr(layer, "_call_stamp", None) != stamp:
            raise RuntimeError(f"GradientTape.gradient: layer '{layer.name}' was called again after the call "
                               "being differentiated; a layer keeps the state of its latest call only. Use a "
                               "second layer for a second call inside one tape.")
        with paused():
            dx = layer.backward(dy)
        grads = list(layer.grads) if weights else []
        return (*(dx if many else [dx]), *grads)
    if isinstance(out, (list, tuple)):
        return record_many(f"layer '{layer.name}'", list(out), (*items, *weights), node_backward)
    return record(f"layer '{layer.name}'", out, (*items, *weights), node_backward)


def wants_tape_call(inputs):
    """True when a layer call should go through ``call_layer`` (Tensor inputs, or a recording tape)."""
    if active() is not None:
        return True
    items = inputs if isinstance(inputs, (list, tuple)) else [inputs]
    return any(isinstance(t, Tensor) for t in items)


def add_loss(layer, value):
    """Keras's ``add_loss`` inside call(): ``value`` (a scalar Tensor) joins the model's loss."""
    from . import as_tensor
    losses = getattr(layer, "_call_losses", None)
    if losses is None:
        raise RuntimeError(f"Layer '{layer.name}': add_loss() is for use inside call().")
    tensor = as_tensor(value, f"Layer '{layer.name}'.add_loss")
    if tensor.size != 1:
        raise ValueError(f"Layer '{layer.name}'.add_loss expects a scalar; received shape {tensor.shape}.")
    losses.append(tensor)


def added_losses(layer):
    """The add_loss values of ``layer``'s last recorded call and of every layer inside it (Tensors)."""
    found = list(getattr(layer, "_call_losses", None) or [])
    inner = getattr(layer, "layers", None) if not hasattr(layer, "call") else tracked_layers(layer)
    for sub in inner or []:
        if sub is not layer:
            found.extend(added_losses(sub))
    return found
