"""Keras's ways to change what fit / evaluate / predict do with one batch, mixed into Model.

    class Distiller(gn.Model):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            ...                                   # gn.ops / loss objects on gn.Tensors
    class GAN(gn.Model):
        def train_step(self, data):
            x, y, sample_weight = gn.utils.unpack_x_y_sample_weight(data)
            with gn.GradientTape() as tape:
                ...
            self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
            return {"loss": ...}

A model that overrides ``train_step``, ``test_step``, ``predict_step``, ``compute_loss`` or
``compute_metrics`` is stepped through those methods, on the tape, with Keras 3's defaults for
the ones it keeps (below); a model that overrides none of them keeps the fused step
(gpunet/training_steps.py), which computes the same loss without a tape. A step's ``data`` is
``x``, ``(x, y)`` or ``(x, y, sample_weight)`` of backend arrays, as fit's data gives them.

``self.metrics`` is Keras's list: the loss tracker (a Mean named "loss"), the compiled metrics,
then the Metric objects the model holds as attributes. fit and evaluate reset them before each
epoch / evaluation. A custom step's logs are what it returns; their values (floats, 0-d arrays,
tensors, metric results) are read when the progress bar, a callback or the epoch's end asks;
a metric's ``result()`` is itself a read, so the default steps (which return results, as Keras's
do) wait for the device every step, which the fused step never does.
"""
import inspect
import warnings

import numpy as np

from . import backend
from .autodiff import GradientTape, Tensor, raw

__all__ = ["CustomSteps", "unpack_x_y_sample_weight", "pack_x_y_sample_weight"]

_OVERRIDABLE = ("train_step", "test_step", "predict_step", "compute_loss", "compute_metrics")


def unpack_x_y_sample_weight(data):
    """``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` -> ``(x, y, sample_weight)``."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) == 1:
        return data[0], None, None
    if len(data) == 2:
        return data[0], data[1], None
    if len(data) == 3:
        return data
    raise ValueError(f"Data is expected to be x, (x,), (x, y) or (x, y, sample_weight); received a tuple "
                     f"of {len(data)} entries.")


def pack_x_y_sample_weight(x, y=None, sample_weight=None):
    """The inverse of :func:`unpack_x_y_sample_weight`, as Keras packs: ``(x,)`` alone."""
    if y is None:
        return (x,) if not isinstance(x, (tuple, list)) else (tuple(x),)
    return (x, y) if sample_weight is None else (x, y, sample_weight)


def _value(v):
    """A log value as a float: floats, 0-d backend arrays, gn.Tensors, metric results."""
    v = raw(v)
    if hasattr(v, "shape") and not isinstance(v, np.ndarray):
        v = backend.current().to_numpy(v)
    return float(np.asarray(v, dtype=np.float64).reshape(()))


def read_logs(logs):
    """A custom step's returned logs as floats (this reads the device)."""
    if not isinstance(logs, dict):
        raise TypeError(f"train_step / test_step must return a dict of logs such as {{'loss': ...}}; "
                        f"received {type(logs).__name__}.")
    out = {}
    for name, v in logs.items():
        if isinstance(v, dict):   # a metric whose result is a dict: its entries go to the top level
            out.update({k: _value(x) for k, x in v.items()})
        else:
            out[name] = _value(v)
    return out


class CustomSteps:
    """train_step / test_step / predict_step, compute_loss / compute_metrics and ``metrics``."""

    # -- which path a model takes ------------------------------------------------------------
    def _overrides(self, *names):
        """True when the model's class defines any of ``names`` itself (Keras's customisation)."""
        return any(getattr(type(self), n) is not getattr(CustomSteps, n) for n in names)

    def _steps_on_tape(self, kind):
        """fit / evaluate / predict step through the public methods when the model customises them."""
        if kind == "train":
            return self._overrides("train_step", "compute_loss", "compute_metrics")
        if kind == "test":
            return self._overrides("test_step", "compute_loss", "compute_metrics")
        return self._overrides("predict_step")

    def _tape_step(self, kind):
        """fit's / evaluate's step for a customised model: ``(xb, yb, wb) -> logs`` (a dict)."""
        if getattr(self, "_replicas", None) is not None and self._replicas.size > 1:
            raise ValueError(f"Model '{self.name}' overrides {kind}_step / compute_loss: data parallel training "
                             f"(gn.distribute) runs the built-in step only.")
        if kind == "train" and getattr(self, "jit_compile", False) and not self.__dict__.get("_warned_tape_jit"):
            self.__dict__["_warned_tape_jit"] = True
            warnings.warn(f"jit_compile=True: model '{self.name}' trains eagerly: it overrides train_step / "
                          f"compute_loss, which run on the GradientTape (no CUDA graph).", stacklevel=4)
        method = self.train_step if kind == "train" else self.test_step
        return lambda xb, yb, wb: method(pack_x_y_sample_weight(xb, yb, wb))

    def _predict_batch(self, xb):
        """predict's step: the model's forward, or an overriding ``predict_step`` (its tensors read)."""
        if not self._steps_on_tape("predict"):
            return self.forward(xb, training=False)
        out = self.predict_step(pack_x_y_sample_weight(xb))
        unwrap = lambda o: o.data if isinstance(o, Tensor) else backend.current().asarray(o)   # noqa: E731
        return [unwrap(o) for o in out] if isinstance(out, (list, tuple)) else unwrap(out)

    # -- Keras 3's defaults -------------------------------------------------------------------
    def train_step(self, data):
        """One training step on the tape: forward, ``compute_loss``, gradients, the optimizer's
        update, ``compute_metrics``; returns the logs."""
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        with GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self._compute_loss(x, y, y_pred, sample_weight, training=True)
            scaled = self.optimizer.scale_loss(loss)   # a LossScaleOptimizer's scale (mixed_float16)
        self._compile_loss_tracker().update_state(loss, sample_weight=_rows(x))
        variables = self.trainable_variables
        if variables:
            self.optimizer.apply(tape.gradient(scaled, variables), variables)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        """One evaluation step: forward with ``training=False``, the loss, the metrics; the logs."""
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        loss = self._compute_loss(x, y, y_pred, sample_weight, training=False)
        self._compile_loss_tracker().update_state(loss, sample_weight=_rows(x))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def predict_step(self, data):
        """The model's output for the batch's x (its y, if any, is ignored)."""
        x, _, _ = unpack_x_y_sample_weight(data)
        return self(x, training=False)

    def _compute_loss(self, x, y, y_pred, sample_weight, training):
        """``compute_loss``, without ``training`` for an override written before Keras 3.3 added it."""
        if "training" in inspect.signature(self.compute_loss).parameters:
            return self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        return self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss of ``(y, y_pred)`` plus the model's own losses (regularization
        penalties, ``add_loss``), a 0-d tensor on the tape when y_pred is one. The penalties are
        added as values: their gradients reach the weights through the layers' own backward."""
        del x, training   # as in Keras: the default uses neither
        total = None
        if getattr(self, "compiled_loss", None) is not None:
            total = self.compiled_loss(y, y_pred, sample_weight)
        elif getattr(self, "_outputs", None) is not None:   # several outputs: sum(loss_weight * loss)
            total = _outputs_loss(self._outputs, y, y_pred, sample_weight)
        for penalty in self.losses:
            penalty = Tensor(backend.current().asarray(penalty, dtype=np.float32).reshape(()))
            total = penalty if total is None else total + penalty
        if total is None:
            raise ValueError(f"Model '{self.name}': no loss to compute; pass loss= to compile() or override "
                             f"compute_loss / train_step.")
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the compiled metrics with the batch; returns ``get_metrics_result()``."""
        del x
        outputs = getattr(self, "_outputs", None)
        if outputs is not None:   # several outputs: each metric reads its output
            ys, preds, ws = (_per_output(v, len(outputs.names)) for v in (y, y_pred, sample_weight))
            for k, metric, weighted in outputs.metrics:
                if ys[k] is not None:
                    w = ws[k] if weighted else None
                    metric.update_state(ys[k], raw(preds[k]), **({} if w is None else {"sample_weight": w}))
        elif getattr(self, "compiled_metrics", None):
            self._update_metrics(y, raw(y_pred), sample_weight)
        return self.get_metrics_result()

    def get_metrics_result(self):
        """``{name: result}`` of every metric in ``self.metrics`` (dict results flattened)."""
        out = {}
        for metric in self.metrics:
            result = metric.result()
            if isinstance(result, dict):
                out.update(result)
            else:
                out[metric.name] = result
        return out

    # -- the metrics list ---------------------------------------------------------------------
    def _compile_loss_tracker(self):
        """The Mean named "loss" that the default steps update (Keras's ``_loss_tracker``; a model's
        own ``self.loss_tracker``, as the Keras guides name theirs, is another metric)."""
        tracker = self.__dict__.get("_loss_tracker")
        if tracker is None:
            from .metrics import Mean
            tracker = self.__dict__["_loss_tracker"] = Mean(name="loss")
        return tracker

    @property
    def metrics(self):
        """Keras's order: the loss tracker (once compiled), the compiled metrics, then the Metric
        objects held as attributes of the model (directly or in a list / tuple)."""
        from .metrics import Metric
        found = [self._compile_loss_tracker()] if getattr(self, "compiled", False) else []
        found += list(getattr(self, "compiled_metrics", None) or [])
        for name, value in vars(self).items():
            if name == "_loss_tracker" or name == "compiled_metrics":
                continue
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, Metric) and all(item is not m for m in found):
                    found.append(item)
        return found

    def reset_metrics(self):
        for metric in self.metrics:
            metric.reset_state()


def _per_output(value, n):
    if isinstance(value, dict):
        return list(value.values())
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


def _outputs_loss(outputs, y, y_pred, sample_weight):
    """sum(loss_weight * loss) over the outputs; each output's own loss goes to its tracker, as
    Keras's compiled loss records them."""
    ys, preds, ws = (_per_output(v, len(outputs.names)) for v in (y, y_pred, sample_weight))
    total, trackers = None, iter(outputs.trackers)
    for loss, weight, target, pred, w in zip(outputs.losses, outputs.loss_weights, ys, preds, ws):
        if loss is None:
            continue
        tracker = next(trackers)
        if target is None:
            continue
        value = loss(target, pred, w)
        tracker.record(raw(value), int(pred.shape[0]))
        term = value * weight
        total = term if total is None else total + term
    return total


def _rows(x):
    first = x[0] if isinstance(x, (list, tuple)) else x
    return int(first.shape[0])
