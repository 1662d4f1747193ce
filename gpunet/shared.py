"""Shared layers: one layer called more than once in a functional graph.

A layer keeps what its backward needs from its last forward (the layer contract), so a second
call would overwrite the first call's state. The model therefore keeps a snapshot of a shared
layer's attributes after each of its calls and puts the right one back around that call's
backward; the calls' weight gradients are added up. The weights themselves are one set.

A snapshot is shallow: it holds the arrays a forward assigned to the layer, so a layer that writes
its saved state into a buffer it reuses from call to call (rather than assigning a new array)
cannot be shared. Every gpunet layer assigns.
"""
import contextlib

from .primitives import shape as shape_ops

__all__ = ["shared_layer_ids", "unique_layers", "tensor_keys", "snapshot", "restored", "GradientSums"]


def shared_layer_ids(nodes):
    """{id(layer): number of calls} for the layers that more than one node calls."""
    calls = {}
    for node in nodes:
        calls[id(node.layer)] = calls.get(id(node.layer), 0) + 1
    return {key: count for key, count in calls.items() if count > 1}


def unique_layers(nodes):
    """Each node's layer once, in node order (a shared layer where it is first called)."""
    seen, layers = set(), []
    for node in nodes:
        if id(node.layer) not in seen:
            seen.add(id(node.layer))
            layers.append(node.layer)
    return layers


def tensor_keys(nodes):
    """id(tensor) -> its name in a model config: the layer's name, ``name:k`` for a shared layer's call k > 0."""
    calls, keys = {}, {}
    for node in nodes:
        k = calls.get(id(node.layer), 0)
        calls[id(node.layer)] = k + 1
        keys[id(node.tensor)] = node.layer.name if k == 0 else f"{node.layer.name}:{k}"
    return keys


def _with_inner_layers(layer, seen=None):
    """The layer and every layer it holds (an activation object, a nested model's layers): each
    keeps state of the call too."""
    from .layers.base import Layer
    seen = set() if seen is None else seen
    if id(layer) in seen:
        return []
    seen.add(id(layer))
    found = [layer]
    held = list(layer.layers) if getattr(layer, "_nodes", None) else []
    for value in layer.__dict__.values():
        held.extend(v for v in (value if isinstance(value, (list, tuple)) else [value]) if isinstance(v, Layer))
    for inner in held:
        found.extend(_with_inner_layers(inner, seen))
    return found


def snapshot(layer):
    """The attributes of ``layer`` (and of the layers of a nested model) as they are now."""
    return [(item, dict(item.__dict__)) for item in _with_inner_layers(layer)]


def _restore(saved):
    for item, attributes in saved:
        item.__dict__.clear()
        item.__dict__.update(attributes)


@contextlib.contextmanager
def restored(layer, saved):
    """Run a call's backward with the state its forward left; then the current state comes back
    (the latest call's, so that counters such as a seeded Dropout's go on from there)."""
    current = snapshot(layer)
    _restore(saved)
    try:
        yield
    finally:
        _restore(current)


class GradientSums:
    """Adds up the weight gradients of each shared layer's calls (``add`` after each backward)."""

    def __init__(self):
        self._sums, self._calls, self._done = {}, {}, set()

    def add(self, layer):
        grads = list(layer.grads)
        self._calls[id(layer)] = self._calls.get(id(layer), 0) + 1
        if id(layer) not in self._sums:
            # A copy: a layer may reuse its gradient buffers in its next call's backward.
            self._sums[id(layer)] = (layer, [g.copy() for g in grads])
            return
        _, total = self._sums[id(layer)]
        self._sums[id(layer)] = (layer, [shape_ops.add_forward([a, b]) for a, b in zip(total, grads)])

    def complete(self, layer, calls):
        """After the last of ``calls`` backward calls: the layer, its grads now the sum; else None."""
        if self._calls.get(id(layer)) != calls:
            return None
        layer.grads = self._sums[id(layer)][1]
        self._done.add(id(layer))
        return layer

    def assign(self):
        """Give every shared layer its summed grads; returns those not completed by ``complete``."""
        left = []
        for key, (layer, total) in self._sums.items():
            layer.grads = total
            if key not in self._done:
                left.append(layer)
        return left
