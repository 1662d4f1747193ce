"""The functional graph a Model runs: its nodes in topological order and the bookkeeping of
its backward pass (summing the gradients of a tensor read by several layers, the ReLU/pool
fusion on the numpy backend)."""
import collections

from .primitives import shape as shape_ops


class Node:
    """One layer call: the tensor it made, its layer, the tensors it read, whether it took a list."""

    __slots__ = ("tensor", "layer", "inputs", "many")

    def __init__(self, tensor):
        self.tensor, self.layer, self.inputs = tensor, tensor.layer, tensor.inputs
        self.many = len(self.inputs) > 1 or isinstance(self.layer.input_shape, list)


def post_order(outputs):
    """Tensors reachable from ``outputs``, each after the tensors it reads (depth-first, in input order)."""
    order, seen = [], set()
    stack = [(t, False) for t in reversed(outputs)]
    while stack:
        tensor, expanded = stack.pop()
        if expanded:
            order.append(tensor)
        elif id(tensor) not in seen:
            seen.add(id(tensor))
            stack.append((tensor, True))
            stack.extend((t, False) for t in reversed(tensor.inputs))
    return order


def keras_order(outputs):
    """Topological order as Keras lists a functional model's layers: by decreasing depth
    (distance to the outputs), ties by depth-first order. Weight files index layers by it."""
    order = post_order(outputs)
    depth = {id(t): 0 for t in order}
    for tensor in reversed(order):
        for source in tensor.inputs:
            depth[id(source)] = max(depth[id(source)], depth[id(tensor)] + 1)
    rank = {id(t): i for i, t in enumerate(order)}
    return sorted(order, key=lambda t: (-depth[id(t)], rank[id(t)]))


def as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _same_compute(a, b):
    """Two layers whose fused pair would hand arrays straight across: only within one compute dtype."""
    return getattr(a, "compute_dtype", None) == getattr(b, "compute_dtype", None)


def relu_pool_pairs(nodes, outputs):
    """(producer, pool) layers where a plain ReLU's output feeds one max pool and nothing else:
    the pool then applies the ReLU's mask to its 4x smaller gradient and the producer skips it."""
    readers = collections.Counter(id(t) for node in nodes for t in node.inputs)
    ends = {id(t) for t in outputs}
    return [(node.inputs[0].layer, node.layer) for node in nodes
            if getattr(node.layer, "takes_relu_mask", False) and len(node.inputs) == 1
            and readers[id(node.inputs[0])] == 1 and id(node.inputs[0]) not in ends
            and getattr(node.inputs[0].layer, "gives_relu_mask", False)
            and _same_compute(node.inputs[0].layer, node.layer)]


def mark_relu_pool(pairs, on):
    for producer, pool_layer in pairs:
        producer.relu_mask_applied = pool_layer.apply_relu_mask = on


def activation_fold_pairs(nodes, outputs):
    """(producer, consumer) layers where a layer's output feeds one layer and nothing else, and
    that layer's input-gradient kernel can apply the producer's activation derivative (its
    ``fold_from``): on a kernel backend the producer then launches nothing for it."""
    readers = collections.Counter(id(t) for node in nodes for t in node.inputs)
    ends = {id(t) for t in outputs}
    return [(node.inputs[0].layer, node.layer) for node in nodes
            if getattr(node.layer, "takes_fold", False) and len(node.inputs) == 1 and not node.many
            and readers[id(node.inputs[0])] == 1 and id(node.inputs[0]) not in ends
            and hasattr(node.inputs[0].layer, "activation_fold")
            and _same_compute(node.inputs[0].layer, node.layer)]


def mark_activation_folds(pairs, on):
    """Before a backward pass (``on``): each consumer gets the producer's fused activation to fold
    (when the last forward fused one); after it, both are reset."""
    for producer, consumer in pairs:
        fold = producer.activation_fold() if on else None
        consumer.fold_from, producer.activation_folded = fold, fold is not None


def absorb_pairs(nodes, outputs):
    """(producer, activation layer) where a layer that can apply an activation in its own kernel
    (``absorbed``: BatchNormalization) feeds an activation layer with an epilogue and nothing else."""
    readers = collections.Counter(id(t) for node in nodes for t in node.inputs)
    ends = {id(t) for t in outputs}
    return [(node.inputs[0].layer, node.layer) for node in nodes
            if getattr(node.layer, "epilogue", None) is not None and len(node.inputs) == 1
            and readers[id(node.inputs[0])] == 1 and id(node.inputs[0]) not in ends
            and hasattr(node.inputs[0].layer, "absorbed")
            and _same_compute(node.inputs[0].layer, node.layer)]


def mark_absorbed(pairs, on):
    """Before a forward pass on a kernel backend (``on``): each producer applies its activation
    layer's epilogue and the activation layer passes its input through; otherwise both undone."""
    for producer, activation in pairs:
        producer.absorbed = activation.absorbed = activation.epilogue if on else None


def add_gradient(grads, tensor, grad):
    """Sum ``grad`` into ``grads[id(tensor)]``: a tensor read by several layers gets the sum.

    The sum is a new array from the add op (a kernel on the kernel backends), never ``+=``:
    the incoming gradient may be a buffer a layer keeps for its next step."""
    if grad is None:     # a layer that was told its input gradient is not needed
        return
    key = id(tensor)
    grads[key] = grad if key not in grads else shape_ops.add_forward([grads[key], grad])
