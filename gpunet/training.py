"""The training loop: compile, fit, evaluate, predict and their one-batch forms (mixed into Model).

NumPy arrays come in, go to the active backend one batch at a time, and come back as NumPy;
the loop never asks which backend runs. ``fit`` uses ``training=True`` (dropout, batch
statistics), ``evaluate`` and ``predict`` ``training=False``.
"""
import math

import numpy as np

from . import backend, callbacks as callbacks_module, data, distribute, losses, multi_output, \
    metrics as metrics_module, optimizers, utils
from .progress import Progress


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; received {batch_size!r}.")
    return int(batch_size)


def _check_finite(array, what):
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise ValueError(f"{what} contains {array[index]} at index {index}; expected finite numbers only.")


class Trainer:
    """compile / fit / evaluate / predict for a Model (which supplies forward, backward, weights)."""

    def _init_training(self):
        self.optimizer = self.loss = self.compiled_loss = self._outputs = None
        self.compiled_metrics = []
        self.compiled = False
        self.stop_training = False
        self.history = None
        # Data parallel: the distribution the model was made under, and the ranks' view of this fit.
        self._made_under, self._replicas = distribute.distribution(), distribute.local_replicas()
        self._grad_ready = None   # called as each layer's backward returns (gradient buckets)

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None):
        """Choose the optimizer, loss and metrics (names or objects) for fit / evaluate.

        A model with several outputs takes one loss for all or a list / dict of them, loss_weights
        as a list / dict, and metrics per output (a list of lists or a dict): see gpunet.multi_output.
        """
        self.optimizer = optimizers.get(optimizer)
        self.loss = loss
        self._outputs = None
        if getattr(self, "_many_outputs", False):
            names = [t.layer.name for t in self.outputs]
            self._outputs = multi_output.CompiledOutputs(names, loss, loss_weights, metrics)
            self.compiled_loss = None
            self.compiled_metrics = self._outputs.all_metrics
            self.compiled = True
            return
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise TypeError(f"metrics must be a list such as ['accuracy']; received {metrics!r}.")
        if loss_weights is not None and multi_output.per_output(loss_weights, ["output"], "compile: loss_weights",
                                                                single_ok=True) != [1.0]:
            raise ValueError(f"compile: loss_weights {loss_weights!r} on a single-output model: gpunet weighs "
                             f"losses of several outputs only; scale the loss (or the learning rate) instead.")
        self.compiled_loss = losses.get(loss) if loss is not None else None
        self.compiled_metrics = [metrics_module.get(m, loss=self.compiled_loss) for m in metrics or []]
        self.compiled = True

    @property
    def metrics_names(self):
        return ["loss", *[m.name for m in self.compiled_metrics]]

    def _require_compiled(self, where):
        if not self.compiled:
            raise RuntimeError(f"Model '{self.name}' must be compiled before {where}(): "
                               f"call model.compile(optimizer=..., loss=...) first.")
        if self.compiled_loss is None and getattr(self, "_outputs", None) is None:
            raise RuntimeError(f"Model '{self.name}' was compiled without a loss; "
                               f"pass loss=... to compile() before {where}().")

    # -- data --------------------------------------------------------------------------
    def _prepare_x(self, x, where):
        """x as a list of NumPy arrays, one per model input, checked against the model's Inputs."""
        if x is None:
            raise ValueError(f"{where}: x is required.")
        xs = [np.asarray(a) for a in x] if isinstance(x, (list, tuple)) and self._many_inputs \
            else [np.asarray(x)]
        for k, a in enumerate(xs):
            if a.ndim == 0 or len(a) == 0:
                raise ValueError(f"{where}: x needs a batch axis with at least one sample; received shape {a.shape}.")
            _check_finite(a, f"{where}: x" if len(xs) == 1 else f"{where}: x[{k}]")
            if len(a) != len(xs[0]):
                raise ValueError(f"{where}: every input needs the same number of samples; "
                                 f"received {[len(b) for b in xs]}.")
        if not self.built:
            self.ensure_built((None, *xs[0].shape[1:]))
        self._check_inputs(xs)
        return xs

    def _prepare(self, x, y, where):
        xs = self._prepare_x(x, where)
        if self._many_outputs:
            return xs, self._outputs.targets(y, len(xs[0]), self.output_shape, where)
        if y is None:
            raise ValueError(f"{where}: y (the targets) is required.")
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != len(xs[0]):
            raise ValueError(f"{where}: x has {len(xs[0])} samples but y has "
                             f"{len(y) if y.ndim else 'none (a scalar)'}; they must match.")
        self.compiled_loss.check_targets(y, self.output_shape, where=f"{where}: y")
        return xs, y

    def _to_backend(self, xs, index=slice(None)):
        device = backend.current()
        arrays = [device.asarray(a[index], dtype=t.layer.dtype) for a, t in zip(xs, self.inputs)]
        return arrays if self._many_inputs else arrays[0]

    def _targets_to_backend(self, y, index=slice(None)):
        if isinstance(y, list):   # several outputs
            return [None if t is None else self._targets_to_backend(t, index) for t in y]
        dtype = y.dtype if y.dtype.kind in "iu" else self.inputs[0].layer.dtype
        return backend.current().asarray(y[index], dtype=dtype)

    # -- one batch ---------------------------------------------------------------------
    def _fused(self):
        return bool(getattr(self.compiled_loss, "fuses_softmax", False)) and self.fusable_softmax

    def _train_step(self, xb, yb, wb=None):
        """Forward, loss, backward, update; returns the loss before the update. wb: row weights or None."""
        if self._many_outputs:
            return self._train_step_outputs(xb, yb, wb)
        y_pred = self.forward(xb, training=True)
        if self._fused():
            value, dlogits, y_pred = self.compiled_loss.compute_from_logits(yb, self.logits, wb)
            self._train_backward(dlogits, from_logits=True)
        else:
            value, dy = self.compiled_loss.compute(yb, y_pred, wb)
            self._train_backward(dy, from_logits=False)
        self.optimizer.apply(self.trainable_weights, self._replicas.gradients(self))
        for metric in self.compiled_metrics:
            metric.update_state(yb, y_pred)
        return float(value)

    def _idle_step(self):
        """A rank with no part of a short last batch still joins the gradient reduction."""
        self.optimizer.apply(self.trainable_weights, self._replicas.gradients(self))
        return 0.0

    def _test_step(self, xb, yb, wb=None):
        if self._many_outputs:
            total, _ = self._outputs.losses_and_gradients(yb, self.forward(xb, training=False), wb, False)
            return float(total)
        y_pred = self.forward(xb, training=False)
        if self._fused():
            value, _, y_pred = self.compiled_loss.compute_from_logits(yb, self.logits, wb)
        else:
            value = self.compiled_loss(yb, y_pred, wb)
        for metric in self.compiled_metrics:
            metric.update_state(yb, y_pred)
        return float(value)

    def _train_step_outputs(self, xb, ys, ws):
        total, dys = self._outputs.losses_and_gradients(ys, self.forward(xb, training=True), ws, True)
        self._backward(dys, from_logits=False, input_gradients=False)
        self.optimizer.apply(self.trainable_weights, self._replicas.gradients(self))
        return float(total)

    def _logs(self, loss):
        logs = {"loss": float(loss)}
        logs.update({m.name: float(m.result()) for m in self.compiled_metrics})
        return logs

    def _results(self, logs, return_dict):
        if return_dict:
            return logs
        values = [logs[name] for name in self.metrics_names]
        return values if len(values) > 1 else values[0]

    def _reset_metrics(self):
        for metric in self.compiled_metrics:
            metric.reset_state()

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One update on one batch; returns the loss computed before the update
        (``[loss, *metrics]`` when metrics are compiled, or a dict with ``return_dict``)."""
        self._require_compiled("train_on_batch")
        xs, y = self._prepare(x, y, "train_on_batch")
        w = self._array_weights(y, sample_weight, class_weight, "train_on_batch")
        if not getattr(self._replicas, "synchronized", False):   # checked and broadcast once
            self._replicas = distribute.replicas(self)
        index = self._replicas.shard(slice(0, len(xs[0])))   # data parallel: x, y are the global batch
        self._reset_metrics()
        count = len(xs[0][index])
        wb = self._weights_to_backend(data.take(w, index))
        value = self._train_step(self._to_backend(xs, index), self._targets_to_backend(y, index), wb) \
            if count else self._idle_step()
        return self._results(self._replicas.reduce_logs(self._logs(value), count), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss (and metrics) of one batch with ``training=False``; no update."""
        self._require_compiled("test_on_batch")
        xs, y = self._prepare(x, y, "test_on_batch")
        w = self._array_weights(y, sample_weight, None, "test_on_batch")
        self._reset_metrics()
        wb = self._weights_to_backend(w)
        return self._results(self._logs(self._test_step(self._to_backend(xs), self._targets_to_backend(y), wb)),
                             return_dict)

    def predict_on_batch(self, x):
        """The model's output for ``x`` in one forward pass, as NumPy."""
        xs = self._prepare_x(x, "predict_on_batch")
        return self._to_numpy(self.forward(self._to_backend(xs), training=False))

    def _to_numpy(self, out):
        device = backend.current()
        if isinstance(out, list):
            return [np.asarray(device.to_numpy(o)) for o in out]
        return np.asarray(device.to_numpy(out))

    # -- where batches come from (gpunet.data: arrays, PyDataset, generators) -----------------
    def _row_shape(self, count):
        """Shape of the per-row losses (and so of sample weights) of ``count`` samples (a list of
        them for several outputs)."""
        if self._many_outputs:
            return [(count, *shape[1:-1]) for shape in self.output_shape]
        return (count, *self.output_shape[1:-1])

    def _checked_weights(self, sample_weight, count, where):
        if self._many_outputs:
            return self._outputs.sample_weights(sample_weight, self._row_shape(count), where)
        return data.check_sample_weight(sample_weight, self._row_shape(count), f"{where}: sample_weight")

    def _weights_to_backend(self, w):
        if w is None:
            return None
        if isinstance(w, list):
            return [self._weights_to_backend(a) for a in w]
        return backend.current().asarray(w, dtype=self.inputs[0].layer.dtype)

    def _array_weights(self, y, sample_weight, class_weight, where):
        """Whole-array sample weights (from sample_weight or class_weight), checked; or None."""
        if sample_weight is not None and class_weight is not None:
            raise ValueError(f"{where}: pass sample_weight or class_weight, not both.")
        if class_weight is not None:
            if self._many_outputs:
                raise ValueError(f"{where}: class_weight is supported for models with one output only (as in "
                                 f"Keras); pass per-output sample_weight instead.")
            sample_weight = data.class_weight_to_sample_weight(y, class_weight, where, len(self.output_shape))
        if sample_weight is None:
            return None
        count = len(next(t for t in y if t is not None)) if isinstance(y, list) else len(y)
        return self._checked_weights(sample_weight, count, where)

    def _iterator(self, x, y, sample_weight, batch_size, shuffle, steps, where, class_weight=None,
                  targets=True, steps_name="steps_per_epoch"):
        """An EpochIterator of host batches ``(x, y, sample_weight)`` for arrays or a dataset."""
        if not data.is_array_data(x):
            data.reject_extra_arrays(x, y, sample_weight, where)
            return data.EpochIterator(data.get_adapter(x, where), steps, where, steps_name, class_weight)
        if targets:
            xs, y = self._prepare(x, y, where)
            w = self._array_weights(y, sample_weight, class_weight, where)
        else:
            xs, w = self._prepare_x(x, where), None
        return data.EpochIterator(data.ArrayAdapter(xs, y, w, batch_size, shuffle), steps, where, steps_name)

    def _device_batch(self, batch, batches, step, targets=True):
        """``(x, y, sample_weight, count)`` on the backend from a host batch of the EpochIterator
        ``batches``; batches not from arrays (checked whole beforehand) are checked here, their
        errors naming the batch, and get the iterator's class_weight."""
        xs, y, w = batch
        if not getattr(batch, "checked", False):
            xs, y, w = self._check_batch(xs, y, w, batches, f"{batches.where}: batch {step}", targets)
        yb = None if y is None else self._targets_to_backend(y)
        return self._to_backend(xs), yb, self._weights_to_backend(w), len(xs[0])

    def _check_batch(self, xs, y, w, batches, here, targets):
        try:
            if targets:
                if y is None:
                    raise ValueError("it has no targets: fit and evaluate need batches (x, y) or "
                                     "(x, y, sample_weight); received x alone.")
                xs, y = self._prepare(xs, y, here)
                if batches.class_weight is not None:
                    w = self._array_weights(y, w, batches.class_weight, here)
            else:
                xs = self._prepare_x(xs, here)
            if w is not None:
                w = self._checked_weights(w, len(xs[0]), here)
        except ValueError as error:   # every message names the batch (the model's own checks do not)
            if str(error).startswith(here):
                raise
            raise ValueError(f"{here}: {error}") from None
        return xs, y, w

    def _validation(self, xs, y, w, split, validation_data, where="fit"):
        """((train xs, y, w), validation) where validation is None, arrays (xs, y, w) from
        validation_split, or validation_data itself (a tuple of arrays, a dataset or a generator)."""
        if validation_data is not None:
            if data.is_array_data(validation_data) and (not isinstance(validation_data, (list, tuple))
                                                        or len(validation_data) not in (2, 3)):
                what = f"a {type(validation_data).__name__}" + (
                    f" of length {len(validation_data)}" if hasattr(validation_data, "__len__") else "")
                raise ValueError(f"validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                                 f"sample_weight_val), a PyDataset or a generator; received {what}.")
            return (xs, y, w), validation_data
        if not isinstance(split, (int, float, np.floating)) or not 0.0 <= split < 1.0:
            raise ValueError(f"validation_split must be a fraction in [0, 1); received {split!r}.")
        if split == 0:
            return (xs, y, w), None
        if xs is None:
            raise ValueError(f"{where}: validation_split needs arrays; with a PyDataset or a generator "
                             f"pass validation_data instead.")
        count = len(xs[0])
        cut = int(math.ceil(count * (1.0 - split)))
        if cut in (0, count):
            raise ValueError(f"validation_split={split} of {count} samples leaves "
                             f"{cut} for training and {count - cut} for validation; both need at least one.")
        part = data.take
        head, tail = slice(cut), slice(cut, None)
        return ([a[head] for a in xs], part(y, head), part(w, head)), \
            ([a[tail] for a in xs], part(y, tail), part(w, tail))

    def _fit_data(self, x, y, sample_weight, class_weight, batch_size, shuffle, steps_per_epoch,
                  validation_split, validation_data, validation_steps, validation_batch_size):
        """(training EpochIterator, validation EpochIterator or None) for fit."""
        if data.is_array_data(x):
            xs, y = self._prepare(x, y, "fit")
            w = self._array_weights(y, sample_weight, class_weight, "fit")
            (xs, y, w), validation = self._validation(xs, y, w, validation_split, validation_data)
            train = data.EpochIterator(data.ArrayAdapter(xs, y, w, batch_size, shuffle), steps_per_epoch, "fit")
        else:
            data.reject_extra_arrays(x, y, sample_weight, "fit")
            _, validation = self._validation(None, None, None, validation_split, validation_data)
            train = data.EpochIterator(data.get_adapter(x, "fit"), steps_per_epoch, "fit", class_weight=class_weight)
        if validation is None:
            return train, None
        where = "fit: validation_data"
        if isinstance(validation, tuple) and len(validation) == 3 and isinstance(validation[0], list) \
                and validation_data is None:   # from validation_split: already checked
            adapter = data.ArrayAdapter(*validation, validation_batch_size, False)
            return train, data.EpochIterator(adapter, validation_steps, where, "validation_steps")
        if data.is_array_data(validation):
            vx, vy, vw = data.unpack(validation, where)
            return train, self._iterator(vx, vy, vw, validation_batch_size, False, validation_steps, where,
                                         steps_name="validation_steps")
        return train, self._iterator(validation, None, None, validation_batch_size, False, validation_steps,
                                     where, steps_name="validation_steps")

    # -- fit / evaluate / predict ----------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None, sample_weight=None,
            initial_epoch=0, steps_per_epoch=None, validation_steps=None, validation_batch_size=None,
            validation_freq=1):
        """Train for ``epochs`` passes; returns a History (``.history``: per-epoch lists of 'loss',
        each metric, 'val_loss', 'val_<metric>' with validation, 'learning_rate').

        x: array ``(samples, *input_shape)`` (a list of arrays for several inputs) with y targets,
        or a ``gn.utils.PyDataset`` / generator yielding ``(x, y)`` or ``(x, y, sample_weight)``
        batches (then y and sample_weight stay None). sample_weight: ``(samples,)``, or per
        output row (per pixel) ``(samples, *output_shape[1:-1])``; class_weight: ``{class: weight}``.
        validation_split takes the last fraction of the samples, before shuffling (as Keras);
        validation_data: ``(x_val, y_val[, sample_weight_val])``, a PyDataset or a generator.
        steps_per_epoch / validation_steps: batches per epoch / per validation (Keras 3's rules).
        validation_freq: validate every that many epochs (an int), or after the epochs listed.
        """
        self._require_compiled("fit")
        batch_size = _check_batch_size(32 if batch_size is None else batch_size)
        for what, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{what} must be a non-negative integer; received {value!r}.")
        validation_batch_size = _check_batch_size(validation_batch_size or batch_size)
        train, validation = self._fit_data(x, y, sample_weight, class_weight, batch_size, shuffle, steps_per_epoch,
                                           validation_split, validation_data, validation_steps,
                                           validation_batch_size)
        self._replicas = data.replicas_for_fit(self, train, batch_size)
        callback_list = callbacks_module.CallbackList(self._replicas.local_callbacks(callbacks), add_history=True,
                                                      model=self, epochs=epochs, steps=train.num_batches,
                                                      verbose=verbose)
        progress = Progress(verbose if self._replicas.is_chief else 0)
        self.stop_training, logs = False, {}
        callback_list.on_train_begin(logs={})
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch, logs={})
            progress.start(train.num_batches, f"Epoch {epoch + 1}/{epochs}")
            logs = self._fit_epoch(train, callback_list, progress)
            if validation is not None and data.should_validate(epoch, validation_freq):
                val_logs = self._evaluate_batches(validation, callback_list, Progress(0))
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            logs["learning_rate"] = float(self.optimizer.current_learning_rate())
            progress.finish(logs)
            callback_list.on_epoch_end(epoch, logs=logs)
            if self.stop_training:
                break
        callback_list.on_train_end(logs=logs)
        self.history = callback_list.history
        return callback_list.history

    def _fit_epoch(self, train, callback_list, progress):
        self._reset_metrics()
        total, seen, logs = 0.0, 0, {}
        for step, batch in train.epoch():
            callback_list.on_train_batch_begin(step, logs={})
            if batch is None:   # data parallel: this rank has no part of this step's batch
                value, count = self._idle_step(), 0
            else:
                xb, yb, wb, count = self._device_batch(batch, train, step)
                if not getattr(batch, "checked", False):
                    self._replicas.start_batch(count)   # (an array batch's shard told the ranks)
                value = self._train_step(xb, yb, wb)
            total, seen = total + value * count, seen + count
            # running means, weighted by batch size as Keras does (and over the ranks)
            logs = self._replicas.reduce_logs(self._logs(total / max(seen, 1)), seen)
            callback_list.on_train_batch_end(step, logs=dict(logs))
            progress.update(logs)
            if self.stop_training:
                break
        return logs

    def _evaluate_batches(self, batches, callback_list, progress):
        self._reset_metrics()
        callback_list.on_test_begin(logs={})
        progress.start(batches.num_batches, "evaluate")
        total, seen, logs = 0.0, 0, {}
        for step, batch in batches.epoch():
            callback_list.on_test_batch_begin(step, logs={})
            xb, yb, wb, count = self._device_batch(batch, batches, step)
            value = self._test_step(xb, yb, wb)
            total, seen = total + value * count, seen + count
            logs = self._logs(total / seen)
            callback_list.on_test_batch_end(step, logs=dict(logs))
            progress.update(logs)
        progress.finish(logs)
        callback_list.on_test_end(logs=dict(logs))
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss and metrics with ``training=False``: the loss alone, ``[loss, *metrics]`` when metrics
        are compiled, or a dict with ``return_dict=True``. x, y, sample_weight as in ``fit``;
        ``steps``: batches to evaluate (all by default; needed for an endless generator)."""
        self._require_compiled("evaluate")
        batch_size = _check_batch_size(32 if batch_size is None else batch_size)
        batches = self._iterator(x, y, sample_weight, batch_size, False, steps, "evaluate", steps_name="steps")
        callback_list = callbacks_module.CallbackList(callbacks, model=self)
        logs = self._evaluate_batches(batches, callback_list, Progress(verbose))
        return self._results(logs, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs for ``x`` with ``training=False``, as a NumPy array ``(samples, *output_shape)``
        (a list of arrays for several outputs). x: arrays, a PyDataset or a generator (their
        batches' y, if any, are ignored); ``steps``: batches to predict (all by default)."""
        batch_size = _check_batch_size(32 if batch_size is None else batch_size)
        batches = self._iterator(x, None, None, batch_size, False, steps, "predict", targets=False,
                                 steps_name="steps")
        callback_list = callbacks_module.CallbackList(callbacks, model=self)
        progress = Progress(verbose)
        callback_list.on_predict_begin(logs={})
        progress.start(batches.num_batches, "predict")
        chunks = []
        for step, batch in batches.epoch():
            callback_list.on_predict_batch_begin(step, logs={})
            xb, _, _, _ = self._device_batch(batch, batches, step, targets=False)
            chunks.append(self._to_numpy(self.forward(xb, training=False)))
            callback_list.on_predict_batch_end(step, logs={})
            progress.update({})
        progress.finish({})
        callback_list.on_predict_end(logs={})
        if not chunks:
            raise ValueError("predict: the data gave no batches.")
        if self._many_outputs:
            return [np.concatenate(parts) for parts in zip(*chunks)]
        return np.concatenate(chunks)
