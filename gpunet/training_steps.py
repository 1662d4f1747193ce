"""The one-batch steps of the training loop (mixed into Model through Trainer).

Each step comes in two parts: a *core* that runs the model, the loss and (training) the
backward pass and the update, touching nothing but device arrays, and the bookkeeping after it
(metric states, per-output loss trackers). ``jit_compile=True`` captures the cores as CUDA
graphs and replays them (gpunet.jit), then does the bookkeeping eagerly from the graph's static
outputs; the eager steps below run the same two parts one after the other, so both give the
same bits.

    _train_step(xb, yb, wb) -> loss       _train_core(xb, yb, wb) -> (loss, y_pred, values)
    _test_step(xb, yb, wb) -> loss        _test_core(xb, yb, wb) -> (loss, y_pred, values)
    _predict_step(xb) -> y_pred

xb: one array (or a list, one per input); yb, wb: one array or None (lists for several
outputs); values: each output's own loss (several outputs), else None.
"""
import contextlib

import numpy as np

from . import regularizers
from .layers.weight_rules import add_penalties, apply_model_constraints
from .primitives import cast, precision

__all__ = ["Steps"]


class Steps:
    """The training, test and predict steps of one batch on backend arrays."""

    def _fused(self):
        return bool(getattr(self.compiled_loss, "fuses_softmax", False)) and self.fusable_softmax

    # -- training ------------------------------------------------------------------------
    def _train_step(self, xb, yb, wb=None):
        """Forward, loss, backward, update; returns the loss before the update (a 0-d backend array).
        wb: row weights or None."""
        value, y_pred, values = self._train_core(xb, yb, wb)
        self._record(yb, y_pred, values, wb)
        return value

    def _train_core(self, xb, yb, wb=None):
        """The training step without the metrics (what jit_compile captures)."""
        if self._many_outputs:
            return self._train_core_outputs(xb, yb, wb)
        value, y_pred = self._train_step_core(xb, yb, wb)
        return value, y_pred, None

    def _train_step_core(self, xb, yb, wb=None):
        """A single-output training step without the metrics: ``(loss, y_pred)``."""
        y_pred = self.forward(xb, training=True)
        if self._fused():
            logits = self.logits
            value, dlogits, y_pred = self.compiled_loss.device_compute_from_logits(yb, self._loss_input(logits), wb)
            with self._penalties_scaled():
                self._train_backward(self._scaled_seed(dlogits, logits.dtype), from_logits=True)
        else:
            value, dy = self.compiled_loss.device_compute(yb, self._loss_input(y_pred), wb)
            with self._penalties_scaled():
                self._train_backward(self._scaled_seed(dy, y_pred.dtype), from_logits=False)
        value = add_penalties(value, self.losses)   # regularization penalties, as Keras adds them (on the device)
        self.optimizer._apply(self.trainable_weights, self._replicas.gradients(self))
        apply_model_constraints(self)   # kernel_constraint / bias_constraint after each step, as Keras
        return value, y_pred

    def _train_core_outputs(self, xb, ys, ws):
        y_preds = self.forward(xb, training=True)
        total, dys, values = self._outputs.compute(ys, [self._loss_input(p) for p in y_preds], ws, True)
        with self._penalties_scaled():
            self._backward(self._scaled_seed(dys, [p.dtype for p in y_preds]), from_logits=False, input_gradients=False)
        total = add_penalties(total, self.losses)   # as the single-output step
        self.optimizer._apply(self.trainable_weights, self._replicas.gradients(self))
        apply_model_constraints(self)
        return total, y_preds, values

    def _record(self, yb, y_pred, values, wb):
        """After a step's core: the metrics, the weighted ones given the sample weights ``wb`` (and,
        several outputs, each output's loss tracker)."""
        if self._many_outputs:
            self._outputs.record(yb, y_pred, values, wb)
        else:
            self._update_metrics(yb, y_pred, wb)

    def _scaled_seed(self, dy, dtype):
        """The loss gradient that starts the backward pass, in the predictions' ``dtype`` (a list of
        dtypes for a list of gradients), times the loss scale when the optimizer scales the loss (a
        LossScaleOptimizer: Keras multiplies the loss, giving the same gradients); on the device,
        no host read."""
        scale = getattr(self.optimizer, "scale_gradient", None)
        return dy if scale is None else scale(dy, dtype)

    def _penalties_scaled(self):
        """Regularizer gradients added during the backward carry the loss scale, as the loss
        gradient does (Keras scales the loss with its penalties in it)."""
        scale = getattr(self.optimizer, "penalty_scale", None)
        return regularizers.loss_scaling(scale()) if scale is not None else contextlib.nullcontext()

    def _loss_input(self, y_pred):
        """The predictions the loss reads. Under loss scaling a 16-bit prediction is widened first,
        as Keras's loss casts y_pred to float32: the loss gradient is then float32 and rounds to
        16 bits once, after the scale (a tiny mean-reduced gradient, 1e-6 over a big mask, would
        be an fp16 subnormal or zero if it were rounded before being scaled)."""
        if y_pred is None or getattr(self.optimizer, "scale_gradient", None) is None or \
                not precision.is_half(y_pred.dtype):
            return y_pred
        return cast.cast(y_pred, np.float32)

    def _idle_step(self):
        """A rank with no part of a short last batch still joins the gradient reduction."""
        self.optimizer._apply(self.trainable_weights, self._replicas.gradients(self))
        return 0.0

    # -- test and predict ----------------------------------------------------------------
    def _test_step(self, xb, yb, wb=None):
        """Loss (a 0-d backend array) of one batch with ``training=False``; the metrics updated."""
        value, y_pred, values = self._test_core(xb, yb, wb)
        self._record(yb, y_pred, values, wb)
        return value

    def _test_core(self, xb, yb, wb=None):
        """The test step without the metrics: ``(loss, y_pred, values)``."""
        y_pred = self.forward(xb, training=False)
        values = None
        if self._many_outputs:
            value, _, values = self._outputs.compute(yb, y_pred, wb, False)
        elif self._fused():
            value, _, y_pred = self.compiled_loss.device_compute_from_logits(yb, self.logits, wb)
        else:
            value = self.compiled_loss.device_value(yb, y_pred, wb)
        return add_penalties(value, self.losses), y_pred, values   # Keras's evaluate adds the penalties too

    def _predict_step(self, xb):
        """The model's output for one batch with ``training=False`` (an array, a list for several)."""
        return self.forward(xb, training=False)
