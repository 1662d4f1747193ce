"""``model.compile(..., jit_compile=True)``: fit's, evaluate's and predict's steps as CUDA graphs.

For each kind of step (training, test, predict) and batch signature (shapes and dtypes of x, y
and sample weights; lists of them for several inputs or outputs) the training loop runs:

1. a warm-up step, eagerly: it builds the optimizer's slots and device step state, compiles
   the kernels and creates each Dropout's device call count;
2. at the next batch of that signature, the capture: the batch is copied into static device
   buffers and the step's core (gpunet.training_steps: forward, loss and, training, backward and
   optimizer; not the metrics) is captured with ``backend.current().capture()``; as on a GPU,
   the capture runs nothing, so the graph is then replayed for this batch;
3. every later batch: copied into the static buffers, the graph replayed (one host call), the
   metrics and per-output loss trackers updated eagerly from the static outputs, the loss (or
   predict's outputs) copied out of its static buffer.

A batch of another size (an epoch's short last batch) thus gets its own graph after its own
warm-up. Nothing a step needs changes on the host: the optimizer's step count and schedule, a
LossScaleOptimizer's scale and skip flag and Dropout's call count live in device memory.

Eager instead, with a one-time warning naming the reason (never a wrong result): the numpy
backend (nothing to capture: silently); for training, data parallel training, an optimizer whose
update is not one fused kernel (Adafactor, a subclass with its own ``update_step``) or whose
learning rate is a plain callable; and any step that cannot be captured (a layer reading a value
on the host, an operation cudasim cannot record such as the regularization penalties' sum: the
warning names the layer). A graph is captured again when the weights' arrays or the optimizer's
settings (a new learning rate) change.
"""
import sys
import warnings

from . import backend
from .backend import hooks

__all__ = ["captured_step", "CapturedTrainStep", "CapturedTestStep", "CapturedPredictStep"]

_WARM, _EAGER = "warm", "eager"   # a signature seen once (warmed up); one whose capture failed


def captured_step(model, kind):
    """The graph-replaying step of ``kind`` ("train", "test" or "predict") for ``model``."""
    return {"train": CapturedTrainStep, "test": CapturedTestStep, "predict": CapturedPredictStep}[kind](model)


class _Entry:
    """One captured step: its graph, static inputs and outputs, and what it was captured against."""

    def __init__(self, graph, inputs, outputs, guard):
        self.graph, self.inputs, self.outputs, self.guard = graph, inputs, outputs, guard


class _CapturedStep:
    """``step(*batch)`` for the training loop, replaying a graph per batch signature.

    A subclass names the eager step (``_eager``), the part a graph holds (``_core``: device work
    only, returning the static outputs) and what follows a replay (``_finish``)."""

    def __init__(self, model):
        self.model, self.entries, self.warned = model, {}, set()

    def __call__(self, *batch):
        reason = self._eager_reason()
        if reason is not None:
            self._warn(reason)
            return self._eager(*batch)
        key = _signature(batch)
        entry = self.entries.get(key)
        if isinstance(entry, _Entry) and entry.guard != self._guard():
            entry = _WARM   # new weight arrays or optimizer settings: capture again
        if entry is None or entry is _EAGER:
            self.entries.setdefault(key, _WARM)
            return self._eager(*batch)
        if entry is _WARM:
            entry = self._capture(batch)
            self.entries[key] = _EAGER if entry is None else entry
            if entry is None:
                return self._eager(*batch)
        return self._replay(entry, batch)

    # -- why not ----------------------------------------------------------------------
    def _eager_reason(self):
        return "" if not hasattr(backend.current(), "capture") else None   # numpy: eager by nature, no warning

    def _warn(self, reason, layer=None):
        if not reason or reason in self.warned:
            return
        self.warned.add(reason)
        where = f" (layer '{layer}')" if layer else ""
        warnings.warn(f"jit_compile=True: model '{self.model.name}' {self.verb} eagerly{where}: {reason}.",
                      stacklevel=4)

    # -- capture and replay ------------------------------------------------------------------
    def _guard(self):
        """What a graph holds by address and the host may replace between steps: the weights."""
        return tuple(id(w) for w in self.model.weights)

    def _capture(self, batch):
        be = backend.current()
        inputs = [_static(a) for a in batch]
        self._before_capture()
        guard = self._guard()
        try:
            with be.capture() as graph:
                outputs = self._core(*inputs)
        except hooks.CaptureError as error:
            self._warn(str(error).rstrip("."), _layer_in_traceback(sys.exc_info()[2]))
            return None
        finally:
            self._after_run()
        return _Entry(graph, inputs, outputs, guard)

    def _replay(self, entry, batch):
        for static, array in zip(entry.inputs, batch):
            _copy_into(static, array)   # device-to-device copies, queued before the replay
        entry.graph.replay()
        self._after_run()
        return self._finish(entry)

    def _before_capture(self):
        pass

    def _after_run(self):
        pass


class CapturedTestStep(_CapturedStep):
    """evaluate's (and fit's validation) step: forward and loss captured; the metrics and the
    per-output loss trackers updated eagerly after each replay, from the static outputs."""

    verb = "evaluates"

    def _eager(self, xb, yb, wb=None):
        return self.model._test_step(xb, yb, wb)

    def _core(self, xb, yb, wb=None):
        return self.model._test_core(xb, yb, wb)

    def _finish(self, entry):
        value, y_pred, values = entry.outputs
        # the trackers keep what they are given until the logs are read: copies, not static buffers
        self.model._record(entry.inputs[1], y_pred, _copied(values), entry.inputs[2])
        return value.copy()


class CapturedPredictStep(_CapturedStep):
    """predict's step: the forward pass captured; each replay's output copied out of its static buffer."""

    verb = "predicts"

    def _eager(self, xb):
        return self.model._predict_step(xb)

    def _core(self, xb):
        return self.model._predict_step(xb)

    def _finish(self, entry):
        return _copied(entry.outputs)


class CapturedTrainStep(CapturedTestStep):
    """fit's training step: forward, loss, backward and the optimizer's update captured."""

    verb = "trains"

    def _eager(self, xb, yb, wb=None):
        return self.model._train_step(xb, yb, wb)

    def _core(self, xb, yb, wb=None):
        return self.model._train_core(xb, yb, wb)

    def _eager_reason(self):
        model, reason = self.model, super()._eager_reason()
        if reason is not None:
            return reason
        if model._replicas.size > 1:
            return "data parallel training is not captured"
        optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
        if not optimizer._fuses():
            return (f"the optimizer {type(optimizer).__name__} updates with several launches; only SGD, Adam, "
                    "AdamW, RMSprop, Adagrad, Adadelta, Adamax, Nadam and Lion (one fused kernel) are captured")
        if optimizer._step is not None and optimizer._device_step() is None:
            return "the learning rate is a plain callable, which the device cannot evaluate"
        return None

    def _guard(self):
        """The weights, and the optimizer's device step state (a new one after set_state...)."""
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        step = optimizer._device_step()
        return super()._guard(), None if step is None else id(step[1])

    def _before_capture(self):
        for layer in self.model.layers:
            if hasattr(layer, "device_seeds"):
                layer.device_seeds()

    def _after_run(self):
        """After a capture (which ran nothing) or a replay (which Python did not follow), the host's
        mirrors of device counts are stale: the next read goes to the device."""
        optimizer = getattr(self.model.optimizer, "inner_optimizer", self.model.optimizer)
        optimizer._host_iterations = None
        for layer in self.model.layers:
            if getattr(layer, "_calls_device", None) is not None:
                layer._calls_host = None


# -- batches: an array, a list of arrays (several inputs or outputs) or None ------------------
def _signature(batch):
    """Shapes and dtypes of a batch's arrays: a graph per signature."""
    def one(a):
        if a is None:
            return None
        if isinstance(a, (list, tuple)):
            return tuple(one(b) for b in a)
        return tuple(a.shape), str(a.dtype)
    return tuple(one(a) for a in batch)


def _static(a):
    """A captured step's own input buffer (a device copy) for ``a``."""
    if a is None:
        return None
    return [_static(b) for b in a] if isinstance(a, (list, tuple)) else a.copy()


def _copy_into(static, a):
    if isinstance(static, list):
        for s, b in zip(static, a):
            _copy_into(s, b)
    elif static is not None:
        static[...] = a


def _copied(outputs):
    """Copies of a graph's static outputs (an array, a list of them or None), which the next replay overwrites."""
    if outputs is None:
        return None
    return [_copied(o) for o in outputs] if isinstance(outputs, list) else outputs.copy()


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
