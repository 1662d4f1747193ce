"""The functional graph inside a Model: set up from ``gn.Input`` tensors to outputs (checked,
fusion pairs found), and walked backward (``_backward``: a gradient per tensor, summed where one
tensor feeds several layers, shared layers' calls restored and their gradients summed, input
gradients skipped where no weight needs them). Node and the fusion pairs are ``graph``'s.

``FunctionalGraph`` is mixed into ``models.Model`` (it holds no forward / backward of its own:
those stay on the Layer, where ``layers/autocast.py`` expects them).
"""
from . import backend, shared
from .graph import (Node, absorb_pairs, activation_fold_pairs, add_gradient, as_list, keras_order,
                    mark_absorbed, mark_activation_folds, mark_relu_pool, relu_pool_pairs)
from .autodiff import layer_call
from .layers.base import SymbolicTensor
from .layers.core import InputLayer


class FunctionalGraph:
    """A functional Model's graph: ``_set_graph(inputs, outputs)`` and the backward walk."""

    def _set_graph(self, inputs, outputs):
        self._many_inputs = isinstance(inputs, (list, tuple))
        self._many_outputs = isinstance(outputs, (list, tuple))
        self.inputs, self.outputs = as_list(inputs), as_list(outputs)
        self._check_graph_ends()
        self._nodes = [Node(t) for t in keras_order(self.outputs)]
        self._check_graph_nodes()
        self._shared = shared.shared_layer_ids(self._nodes)
        self._relu_pools = [pair for pair in relu_pool_pairs(self._nodes, self.outputs)
                            if not any(id(layer) in self._shared for layer in pair)]
        self._activation_folds = [pair for pair in activation_fold_pairs(self._nodes, self.outputs)
                                  if not any(id(layer) in self._shared for layer in pair)]
        mark_absorbed(getattr(self, "_absorbed", []), False)   # a rebuilt graph (pop, add) pairs anew
        self._absorbed = [pair for pair in absorb_pairs(self._nodes, self.outputs)
                          if not any(id(layer) in self._shared for layer in pair)]
        shapes_in = [t.shape for t in self.inputs]
        shapes_out = [t.shape for t in self.outputs]
        self.input_shape = shapes_in if self._many_inputs else shapes_in[0]
        self.output_shape = shapes_out if self._many_outputs else shapes_out[0]
        self.built = True

    def _check_graph_ends(self):
        if not self.inputs or not self.outputs:
            raise ValueError(f"Model '{self.name}' needs at least one input and one output; "
                             f"received {len(self.inputs)} inputs and {len(self.outputs)} outputs.")
        for t in self.inputs:
            if not (isinstance(t, SymbolicTensor) and isinstance(t.layer, InputLayer)):
                raise TypeError(f"Model '{self.name}' inputs must be tensors from gn.Input(...); received {t!r}.")
        for t in self.outputs:
            if not isinstance(t, SymbolicTensor) or t.layer is None:
                raise TypeError(f"Model '{self.name}' outputs must be tensors made by calling layers "
                                f"on gn.Input(...) tensors; received {t!r}.")

    def _check_graph_nodes(self):
        input_ids = {id(t) for t in self.inputs}
        for node in self._nodes:
            if isinstance(node.layer, InputLayer) and id(node.tensor) not in input_ids:
                raise ValueError(f"Model '{self.name}': the outputs depend on Input '{node.layer.name}' "
                                 f"{node.tensor.shape}, which is not among the model's inputs "
                                 f"{[t.layer.name for t in self.inputs]}.")

    def _backward(self, dys, from_logits, input_gradients=True):
        if self._subclassed:   # several outputs: the call()'s tape takes a gradient per output
            return layer_call.backward(self, list(dys))
        grads = {}
        for t, g in zip(self.outputs, dys):
            add_gradient(grads, t, g)
        # Tensors that no trainable weight feeds (the inputs, and what weightless layers such as
        # preprocessing ones make of them): a layer reading only those need not compute its dx.
        weightless = set() if input_gradients else self._weightless_tensors()
        relu_pools = [] if backend.current().runs_kernels else self._relu_pools
        folds = self._activation_folds if backend.current().runs_kernels else []
        mark_relu_pool(relu_pools, True)
        mark_activation_folds(folds, True)
        summed = shared.GradientSums()
        try:
            for node in reversed(self._nodes):
                if isinstance(node.layer, InputLayer) or id(node.tensor) not in grads:
                    continue
                grad = grads.pop(id(node.tensor))
                skip = not input_gradients and all(id(t) in weightless for t in node.inputs)
                if skip and id(node.tensor) in weightless:   # nothing to learn here or upstream
                    node.layer.grads = []
                    continue
                if id(node.layer) in self._shared:
                    with shared.restored(node.layer, self._call_states[id(node)]):
                        dx = self._node_backward(node, grad, from_logits, skip)
                        summed.add(node.layer)
                    final = summed.complete(node.layer, self._shared[id(node.layer)])
                else:
                    dx = self._node_backward(node, grad, from_logits, skip)
                    final = node.layer
                if final is not None and getattr(self, "_grad_ready", None) is not None:
                    # data parallel: these gradients are final (a shared layer's after its last call)
                    self._grad_ready(final, final.grads)
                for t, g in zip(node.inputs, as_list(dx) if node.many else [dx]):
                    add_gradient(grads, t, g)
        finally:
            mark_relu_pool(relu_pools, False)
            mark_activation_folds(folds, False)
        for layer in summed.assign():   # shared layers some of whose calls got no gradient
            if getattr(self, "_grad_ready", None) is not None:
                self._grad_ready(layer, layer.grads)
        self.grads = self._collect_grads()
        dxs = [grads.get(id(t)) for t in self.inputs]
        return dxs if self._many_inputs else dxs[0]

    def _weightless_tensors(self):
        found = {id(t) for t in self.inputs}
        for node in self._nodes:
            if all(id(t) in found for t in node.inputs) and not node.layer.trainable_weights \
                    and not isinstance(node.layer, InputLayer):
                found.add(id(node.tensor))
        return found

    def _node_backward(self, node, grad, from_logits, skip_input_gradient):
        """One layer's backward; a layer with ``needs_input_gradient`` may be told to skip dx."""
        layer = node.layer
        skip = skip_input_gradient and hasattr(layer, "needs_input_gradient")
        if skip:
            before, layer.needs_input_gradient = layer.needs_input_gradient, False
        try:
            if from_logits and node.tensor is self.outputs[0]:
                return layer.backward_logits(grad)
            return layer.backward(grad)
        finally:
            if skip:
                layer.needs_input_gradient = before

    def _collect_grads(self):
        if not self.trainable:
            return []
        grads = []
        for layer in self.layers:
            expected = len(layer.trainable_weights)
            if expected and len(layer.grads) != expected:
                raise RuntimeError(f"Layer '{layer.name}' left {len(layer.grads)} gradients for its {expected} "
                                   f"trainable weights; backward must fill layer.grads in trainable_weights order.")
            grads.extend(layer.grads if expected else [])
        return grads
