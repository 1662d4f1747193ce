"""The tape: while a ``GradientTape`` is open, every ``gn.ops`` call appends one ``Node`` - the op's
name, the serials of its inputs and output, its backward function and the tensors that backward
reads (Chainer's FunctionNode: a forward already run, a backward, the inputs it retains).
``gradient`` is the one graph walk: reverse creation order, freeing each node's saved tensors
once its backward has run.

Only the innermost tape records. A layer call is one node of the tape that is open around it:
built-in layers run their fused forward / backward, a ``call()`` layer records its insides on a
private tape of its own (see ``gpunet/autodiff/layer_call.py``).
"""
import contextlib

from .. import backend
from ..primitives import elementwise_nd as E
from .tensor import Tensor

_stack = []     # open tapes, innermost last; None pauses recording (inside a fused layer call)


class Node:
    """One recorded op: ``backward(dy, needs, *saved arrays) -> a gradient (or None) per input``.

    An op with several outputs (a layer returning a list) is one node with ``many`` set: its
    backward then takes the list of the outputs' gradients, zeros for an output nothing used."""

    __slots__ = ("name", "inputs", "outputs", "many", "backward", "saved", "versions", "out_info")

    def __init__(self, name, inputs, outputs, backward, saved, many=False):
        self.name, self.backward, self.saved, self.many = name, backward, saved, many
        self.inputs = tuple(t.serial for t in inputs)
        self.outputs = tuple(t.serial for t in outputs)
        self.versions = tuple(t.version for t in saved)
        self.out_info = [(t.shape, t.dtype) for t in outputs]


def active():
    """The tape that records now, or None."""
    return _stack[-1] if _stack else None


def any_open():
    """True while any tape is open, even one paused by a layer call (its caller wants gradients)."""
    return any(t is not None for t in _stack)


def record(name, data, inputs, backward, saved=(), save_output=False):
    """Wrap ``data`` (an op's output array) as a Tensor and, while a tape records, append its node.

    ``inputs``: the op's Tensor inputs; ``backward``: None marks a non-differentiable op;
    ``saved``: the Tensors whose arrays ``backward`` reads (checked for in-place writes), followed
    by the output itself when ``save_output``."""
    out = Tensor(data)
    tape = _stack[-1] if _stack else None
    if tape is not None:
        tape._nodes.append(Node(name, inputs, [out], backward, (*saved, out) if save_output else saved))
    return out


def record_many(name, datas, inputs, backward, saved=()):
    """``record`` for an op with several outputs: a list of Tensors, one node whose
    ``backward(dys, needs, *saved)`` receives a gradient per output (zeros where none flowed)."""
    outs = [Tensor(d) for d in datas]
    tape = _stack[-1] if _stack else None
    if tape is not None:
        tape._nodes.append(Node(name, inputs, outs, backward, saved, many=True))
    return outs


@contextlib.contextmanager
def paused():
    """Record nothing inside (a fused layer's forward, a metric)."""
    _stack.append(None)
    try:
        yield
    finally:
        _stack.pop()


class GradientTape:
    """Records ``gn.ops`` calls inside ``with`` and computes gradients of a result afterwards::

        with gn.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_weights)

    Arrays (a layer's weights) and Tensors used by an op inside the block are on the tape;
    ``watch(x)`` puts one there without an op. A tape gives one ``gradient`` call unless
    ``persistent=True`` (then it keeps its saved tensors until it is dropped).
    """

    def __init__(self, persistent=False, watch_accessed_variables=True):
        self.persistent = bool(persistent)
        self._nodes, self._leaves, self._watched, self._used = [], {}, set(), False

    def __enter__(self):
        _stack.append(self)
        return self

    def __exit__(self, *exc):
        _stack.remove(self)

    def leaf(self, array):
        """The Tensor that stands for a raw backend ``array`` (a weight) on this tape, made once."""
        tensor = self._leaves.get(id(array))
        if tensor is None or tensor.data is not array:
            tensor = self._leaves[id(array)] = Tensor(array)
        return tensor

    def watch(self, x):
        """Put ``x`` (a Tensor, an array, or a list of them) on the tape."""
        for item in x if isinstance(x, (list, tuple)) else [x]:
            self._watched.add((item if isinstance(item, Tensor) else self.leaf(item)).serial)

    @contextlib.contextmanager
    def stop_recording(self):
        """Ops inside record nothing."""
        with paused():
            yield

    def gradient(self, target, sources, output_gradients=None, unconnected_gradients="none"):
        """d(sum of ``target`` * ``output_gradients``)/d(each source), shaped like the source.

        ``sources``: a Tensor / array or a (nested one level) list of them; the result has the same
        structure. A source the target does not depend on gets None (``"zeros"``: zeros)."""
        if self._nodes is None:
            raise RuntimeError("GradientTape.gradient: a non-persistent tape gives one gradient call; "
                               "use gn.GradientTape(persistent=True) to call it again.")
        many = isinstance(sources, (list, tuple))
        items = list(sources) if many else [sources]
        known = self._watched.union(*(n.inputs for n in self._nodes), *(n.outputs for n in self._nodes))
        keys = [self._source_key(k, s, known) for k, s in enumerate(items)]
        found = self.backward([(self._target_key(target, known), target, output_gradients)], keys)
        out = []
        for key, item in zip(keys, items):
            grad = found.get(key)
            if grad is None and unconnected_gradients == "zeros":
                grad = backend.current().zeros(tuple(item.shape), item.dtype)
            out.append(None if grad is None else Tensor(grad))
        return out if many else out[0]

    # -- the walk ----------------------------------------------------------------------------------
    def backward(self, seeds, source_keys):
        """Walk the nodes newest first from ``seeds``, ``(key, target, gradient or None for ones)``
        each; returns {source key: gradient array} for the keys reached. Frees what it used unless
        persistent."""
        sources = set(source_keys)
        depends = set(sources)
        for node in self._nodes:
            if any(i in depends for i in node.inputs):
                depends.update(node.outputs)
        grads = {}
        for key, target, seed in seeds:
            g = _seed(target.data if isinstance(target, Tensor) else target, seed)
            grads[key] = g if key not in grads else E.binary("add", grads[key], g)
        found = {}
        for node in reversed(self._nodes):   # every user of an output comes after its node
            outs = [grads.get(o) if o in depends else None for o in node.outputs]
            if all(g is None for g in outs):
                continue
            for o in node.outputs:
                if o not in sources:
                    grads.pop(o, None)
            if node.many:
                xp = backend.current().xp
                outs = [g if g is not None else xp.zeros(shape, dtype) for g, (shape, dtype) in zip(outs, node.out_info)]
            self._run_node(node, outs if node.many else outs[0], depends, grads)
        if not self.persistent:
            self._nodes, self._leaves = None, None
        for key in sources:
            if key in grads:
                found[key] = grads[key]
        return found

    def _run_node(self, node, grad, depends, grads):
        if node.backward is None:
            shape, dtype = node.out_info[0]
            raise ValueError(f"GradientTape.gradient: the path from the target to a source goes through "
                             f"'{node.name}', which is not differentiable (it gave a {dtype} tensor of shape "
                             f"{shape}). Compute it outside the tape or pass it through gn.ops.stop_gradient.")
        saved = node.saved
        for k, (tensor, version) in enumerate(zip(saved, node.versions)):
            if tensor.version != version:
                raise RuntimeError(f"GradientTape.gradient: a tensor of shape {tensor.shape} that '{node.name}' "
                                   f"saved for its gradient was modified in place afterwards (version {version} "
                                   f"-> {tensor.version}); the gradient would be wrong. Write to a copy instead.")
        needs = tuple(i in depends for i in node.inputs)
        in_grads = node.backward(grad, needs, *[t.data for t in saved])
        if not self.persistent:
            node.saved = node.backward = None     # free what this op kept, as the walk goes
        for key, g, need in zip(node.inputs, in_grads, needs):
            if need and g is not None:
                grads[key] = g if key not in grads else E.binary("add", grads[key], g)

    def _target_key(self, target, known):
        if isinstance(target, Tensor):
            if target.serial in known:
                return target.serial
        elif id(target) in self._leaves:
            return self._leaves[id(target)].serial
        raise ValueError(f"GradientTape.gradient: the target (shape {tuple(getattr(target, 'shape', ()))}) was not "
                         "computed by gn.ops while this tape was recording; compute it inside the `with` block.")

    def _source_key(self, index, source, known):
        if isinstance(source, Tensor):
            if source.serial in known:
                return source.serial
        elif id(source) in self._leaves and self._leaves[id(source)].data is source:
            return self._leaves[id(source)].serial
        raise ValueError(f"GradientTape.gradient: source {index} (shape {tuple(getattr(source, 'shape', ()))}, "
                         f"{type(source).__name__}) is not on this tape: no op inside the `with` block used it. "
                         "Use it in an op inside the block, or call tape.watch(source) there.")


def _seed(data, seed):
    if seed is None:
        return backend.current().xp.ones(tuple(data.shape), dtype=data.dtype)
    return seed.data if isinstance(seed, Tensor) else backend.current().asarray(seed, dtype=data.dtype)
