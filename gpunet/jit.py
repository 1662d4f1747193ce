"""``model.compile(..., jit_compile=True)``: the whole training step as one CUDA graph.

For each batch signature (shapes and dtypes of x, y and sample weights) ``fit`` runs:

1. a warm-up step, eagerly: it builds the optimizer's slots and device step state, compiles
   the kernels and creates each Dropout's device call count;
2. at the next batch of that signature, the capture: the batch is copied into static device
   buffers and the step (forward, loss, backward, optimizer; not the metrics) is captured with
   ``backend.current().capture()``; as on a GPU, the capture runs nothing, so the graph is then
   replayed for this batch;
3. every later batch: copied into the static buffers, the graph replayed (one host call), the
   metrics updated eagerly from the static outputs, the loss copied out of its static buffer.

A batch of another size (an epoch's short last batch) thus gets its own graph after its own
warm-up. Nothing a step needs changes on the host: the optimizer's step count and schedule, a
LossScaleOptimizer's scale and skip flag and Dropout's call count live in device memory.

Eager instead, with a one-time warning naming the reason (never a wrong result): the numpy
backend (nothing to capture: silently), several outputs or inputs, data parallel training, an
optimizer whose update is not one fused kernel or whose learning rate is a plain callable, and a
step that cannot be captured (a layer reading a value on the host, an operation cudasim cannot
record: the warning names the layer). A graph is captured again when the weights' arrays or the
optimizer's settings (a new learning rate) change.
"""
import sys
import warnings

from . import backend
from .backend import hooks

__all__ = ["CapturedTrainStep"]

_WARM, _EAGER = "warm", "eager"   # a signature seen once (warmed up); one whose capture failed


class _Entry:
    """One captured step: its graph, static inputs and outputs, and what it was captured against."""

    def __init__(self, graph, inputs, value, y_pred, guard):
        self.graph, self.inputs, self.value, self.y_pred, self.guard = graph, inputs, value, y_pred, guard


class CapturedTrainStep:
    """``step(xb, yb, wb) -> loss`` for ``Trainer._run_steps``, replaying a graph per batch signature."""

    def __init__(self, model):
        self.model, self.entries, self.warned = model, {}, set()

    def __call__(self, xb, yb, wb=None):
        reason = self._eager_reason()
        if reason is not None:
            self._warn(reason)
            return self.model._train_step(xb, yb, wb)
        key = tuple((tuple(a.shape), str(a.dtype)) if a is not None else None for a in (xb, yb, wb))
        entry = self.entries.get(key)
        if isinstance(entry, _Entry) and entry.guard != self._guard():
            entry = _WARM   # new weight arrays or optimizer settings: capture again
        if entry is None or entry is _EAGER:
            self.entries.setdefault(key, _WARM)
            return self.model._train_step(xb, yb, wb)
        if entry is _WARM:
            entry = self._capture(xb, yb, wb)
            self.entries[key] = _EAGER if entry is None else entry
            if entry is None:
                return self.model._train_step(xb, yb, wb)
        return self._replay(entry, xb, yb, wb)

    # -- why not ----------------------------------------------------------------------
    def _eager_reason(self):
        model, be = self.model, backend.current()
        if not hasattr(be, "capture"):
            return ""   # numpy: eager by nature, no warning
        if model._many_outputs or model._many_inputs:
            return "a model with several inputs or outputs is not captured"
        if model._replicas.size > 1:
            return "data parallel training is not captured"
        optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
        if not optimizer._fuses():
            return (f"the optimizer {type(optimizer).__name__} updates with several launches; only SGD, Adam, "
                    "AdamW and RMSprop (one fused kernel) are captured")
        if optimizer._step is not None and optimizer._device_step() is None:
            return "the learning rate is a plain callable, which the device cannot evaluate"
        return None

    def _warn(self, reason, layer=None):
        if not reason or reason in self.warned:
            return
        self.warned.add(reason)
        where = f" (layer '{layer}')" if layer else ""
        warnings.warn(f"jit_compile=True: model '{self.model.name}' trains eagerly{where}: {reason}.", stacklevel=4)

    # -- capture and replay ------------------------------------------------------------------
    def _guard(self):
        """What a graph holds by address or value and the host may replace between steps."""
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        step = optimizer._device_step()
        return tuple(id(w) for w in self.model.weights), None if step is None else id(step[1])

    def _capture(self, xb, yb, wb):
        model, be = self.model, backend.current()
        inputs = [None if a is None else a.copy() for a in (xb, yb, wb)]   # the static buffers
        for layer in model.layers:
            if hasattr(layer, "device_seeds"):
                layer.device_seeds()
        guard = self._guard()
        try:
            with be.capture() as graph:
                value, y_pred = model._train_step_core(*inputs)
        except hooks.CaptureError as error:
            self._warn(str(error).rstrip("."), _layer_in_traceback(sys.exc_info()[2]))
            return None
        finally:
            self._host_counts_unknown()
        return _Entry(graph, inputs, value, y_pred, guard)

    def _replay(self, entry, xb, yb, wb):
        for static, batch in zip(entry.inputs, (xb, yb, wb)):
            if static is not None:
                static[...] = batch   # a device-to-device copy, queued before the replay
        entry.graph.replay()
        self._host_counts_unknown()
        self.model._update_metrics(entry.inputs[1], entry.y_pred, entry.inputs[2])
        return entry.value.copy()   # the static buffer is overwritten by the next replay

    def _host_counts_unknown(self):
        """After a capture (which ran nothing) or a replay (which Python did not follow), the host's
        mirrors of device counts are stale: the next read goes to the device."""
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        optimizer._host_iterations = None
        for layer in self.model.layers:
            if getattr(layer, "_calls_device", None) is not None:
                layer._calls_host = None


def _layer_in_traceback(tb):
    """The name of the innermost gpunet layer whose method was running when ``tb`` was raised."""
    from .layers.base import Layer
    name = None
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, Layer):
            name = owner.name
        tb = tb.tb_next
    return name
