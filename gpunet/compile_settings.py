"""Model.compile: Keras 3's arguments and their order, and which metrics get sample weights.

    model.compile(optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                  weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                  jit_compile="auto", auto_scale_loss=True)

``metrics`` are updated without weights, ``weighted_metrics`` with the batch's sample weights
(sample_weight, or class_weight turned into them), as Keras 3 does; the log names follow Keras 3
(gpunet.multi_output.log_names). Mixed into Model through the Trainer.
"""
import warnings

import numpy as np

from . import losses, metrics as metrics_module, multi_output, optimizers
from .autodiff import subclassed

__all__ = ["CompileMixin"]


def _check_compile_order(loss_weights, metrics):
    """Keras 3 puts loss_weights before metrics: metric names given where loss_weights go (gpunet's
    old positional ``compile(optimizer, loss, ["accuracy"])``) are refused, not taken as weights."""
    entries = list(loss_weights.values()) if isinstance(loss_weights, dict) else \
        list(loss_weights) if isinstance(loss_weights, (list, tuple)) else [loss_weights]
    numbers = all(isinstance(w, (int, float, np.integer, np.floating)) and not isinstance(w, bool)
                  for w in entries if w is not None)
    if not numbers:
        hint = "" if metrics is None else f" (metrics={metrics!r} was given as well)"
        raise TypeError(f"compile: loss_weights must be numbers (one per output, a list or a dict); received "
                        f"{loss_weights!r}, which looks like metrics{hint}. Keras 3's order is compile(optimizer, "
                        f"loss, loss_weights, metrics, ...): pass metrics by keyword, e.g. "
                        f"compile(optimizer, loss, metrics={loss_weights!r}).")



class CompileMixin:
    """compile and what the step asks of it (metric names, metric updates)."""

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        """Choose the optimizer, loss and metrics (names or objects) for fit / evaluate; Keras 3's
        arguments, in Keras 3's order (loss_weights before metrics: pass metrics by keyword).

        metrics are computed without weights; weighted_metrics with sample_weight / class_weight
        (as Keras 3: a name in both lists logs the weighted one as "weighted_<name>"). A model with
        several outputs takes one loss for all or a list / dict of them, loss_weights as a list /
        dict, and (weighted) metrics per output (a list of lists or a dict): see gpunet.multi_output.

        run_eagerly: honoured (gpunet runs each step eagerly unless jit_compile=True; True turns
        jit_compile off, as Keras does). jit_compile: True captures fit's training step as a CUDA
        graph on the kernel backends and replays it per batch (gpunet.jit); "auto" (Keras's
        default) and False train eagerly. steps_per_execution: 1 only (a clear error otherwise:
        gpunet runs one batch per step, and a step never waits for the device, so grouping gains
        nothing). auto_scale_loss: honoured (under a "mixed_float16" policy the optimizer is wrapped
        in a LossScaleOptimizer unless it is False).
        """
        _check_compile_order(loss_weights, metrics)
        self._set_execution(run_eagerly, steps_per_execution, jit_compile)
        self.optimizer = self._loss_scaled(optimizers.get(optimizer), auto_scale_loss)
        self.loss = loss
        self._outputs = None
        self.compiled = True
        if subclassed.outputs_unknown(self):   # a subclassed model learns its outputs when it is built
            self._deferred_compile = (loss, loss_weights, metrics, weighted_metrics)
            self.compiled_loss, self.compiled_metrics = None, []
            self._weighted_flags = self._metric_names = None
            return
        self._compile_losses(loss, loss_weights, metrics, weighted_metrics)

    def _compile_losses(self, loss, loss_weights, metrics, weighted_metrics=None):
        """compile's loss side: one loss and its (weighted) metrics, or per output (gpunet.multi_output)."""
        if getattr(self, "_many_outputs", False):
            self._outputs = multi_output.CompiledOutputs(self._output_names(), loss, loss_weights, metrics,
                                                         weighted_metrics, named_by_loss=subclassed.named_by_loss(self))
            self.compiled_loss = None
            self.compiled_metrics, self._weighted_flags, self._metric_names = self._outputs.all_metrics, None, None
            return
        for what, value in (("metrics", metrics), ("weighted_metrics", weighted_metrics)):
            if value is not None and not isinstance(value, (list, tuple)):
                raise TypeError(f"compile: {what} must be a list such as ['accuracy']; received {value!r}.")
        if loss_weights is not None and multi_output.per_output(loss_weights, ["output"], "compile: loss_weights",
                                                                single_ok=True) != [1.0]:
            raise ValueError(f"compile: loss_weights {loss_weights!r} on a single-output model: gpunet weighs "
                             f"losses of several outputs only; scale the loss (or the learning rate) instead.")
        self.compiled_loss = losses.get(loss) if loss is not None else None
        plain = [metrics_module.get(m, loss=self.compiled_loss) for m in metrics or []]
        weighted = [metrics_module.get(m, loss=self.compiled_loss) for m in weighted_metrics or []]
        self.compiled_metrics = plain + weighted
        self._weighted_flags = [False] * len(plain) + [True] * len(weighted)
        self._metric_names = multi_output.log_names([m.name for m in plain], [m.name for m in weighted])

    def _set_execution(self, run_eagerly, steps_per_execution, jit_compile):
        if jit_compile not in (True, False, "auto"):
            raise ValueError(f"compile: jit_compile must be True, False or 'auto'; received {jit_compile!r}.")
        if run_eagerly not in (True, False):
            raise ValueError(f"compile: run_eagerly must be True or False; received {run_eagerly!r}.")
        if isinstance(steps_per_execution, bool) or steps_per_execution != 1:
            raise ValueError(f"compile: steps_per_execution={steps_per_execution!r} is not supported by gpunet; "
                             f"it runs one batch per step (a step never waits for the device, so grouping steps "
                             f"gains nothing). Leave it at 1.")
        if jit_compile is True and run_eagerly:
            warnings.warn("compile: if run_eagerly is True, jit_compile cannot also be True; disabling jit_compile "
                          "(as Keras does).", stacklevel=3)
        self.run_eagerly, self.steps_per_execution = bool(run_eagerly), 1
        # "auto": eager, so that fit steps as written (see gpunet.jit)
        self.jit_compile = jit_compile is True and not run_eagerly
        self._captured_steps = {}   # kind -> gpunet.jit's captured step

    def _loss_scaled(self, optimizer, auto_scale_loss=True):
        """Keras's compile under mixed_float16: the optimizer wrapped in a LossScaleOptimizer (unless
        it is one, or auto_scale_loss is False), the model's policy deciding (the global policy
        when the model was made)."""
        scaler = getattr(optimizers, "LossScaleOptimizer", None)
        if scaler is None or not auto_scale_loss or self.dtype_policy.name != "mixed_float16" or \
                isinstance(optimizer, scaler):
            return optimizer
        return scaler(optimizer)

    @property
    def metrics_names(self):
        names = getattr(self, "_metric_names", None)
        return ["loss", *(names if names is not None else [m.name for m in self.compiled_metrics])]

    def _update_metrics(self, y_true, y_pred, sample_weight):
        """The single-output step's metrics: the weighted ones get the batch's weights (if any)."""
        flags = getattr(self, "_weighted_flags", None) or [False] * len(self.compiled_metrics)
        for metric, weighted in zip(self.compiled_metrics, flags):
            if weighted and sample_weight is not None:
                metric.update_state(y_true, y_pred, sample_weight=sample_weight)
            else:
                metric.update_state(y_true, y_pred)
