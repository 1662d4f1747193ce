"""The training loop: compile, fit, evaluate, predict and their one-batch forms (mixed into Model).

NumPy arrays come in, go to the active backend one batch at a time, and come back as NumPy;
the loop never asks which backend runs. ``fit`` uses ``training=True`` (dropout, batch
statistics), ``evaluate`` and ``predict`` ``training=False``.

Nothing inside a step reads the device: the loss and the metrics' batch totals stay backend
arrays (``DeviceSum``), and the logs are read only when something needs them - the progress
bar's refresh, a callback that reads batch logs (``callbacks.reads_batch_logs``), the end of
an epoch. Each step runs inside ``backend.step(kind)``, the mark strict-sync mode and the
profiler count by.
"""

import numpy as np

from . import backend, callbacks as callbacks_module, distribute
from .autodiff import subclassed
from .callbacks.base import reads_batch_logs
from .compile_settings import CompileMixin
from .custom_steps import CustomSteps, read_logs
from .data import replicas_for_fit, should_validate, take
from .data.trainer_data import DataMixin, uploaded
from .device_sums import DeviceSum
from .progress import Progress
from .training_steps import Steps

_PREDICT_DEVICE_BYTES = 64 * 2 ** 20   # predict's outputs wait on the device up to this, then one read


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; received {batch_size!r}.")
    return int(batch_size)


def _check_finite(array, what):
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise ValueError(f"{what} contains {array[index]} at index {index}; expected finite numbers only.")


class Trainer(DataMixin, CompileMixin, CustomSteps, Steps):
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

    def _require_compiled(self, where):
        if not self.compiled:
            raise RuntimeError(f"Model '{self.name}' must be compiled before {where}(): "
                               f"call model.compile(optimizer=..., loss=...) first.")
        pending = getattr(self, "_deferred_compile", None)   # a subclassed model not built yet
        custom = self._overrides("train_step", "test_step", "compute_loss")   # it may need no compiled loss
        if self.compiled_loss is None and getattr(self, "_outputs", None) is None and \
                (pending is None or pending[0] is None) and not custom:
            raise RuntimeError(f"Model '{self.name}' was compiled without a loss; "
                               f"pass loss=... to compile() before {where}().")

    # -- data --------------------------------------------------------------------------
    def _prepare_x(self, x, where):
        """x as a list of NumPy arrays, one per model input, checked against the model's Inputs."""
        if x is None:
            raise ValueError(f"{where}: x is required.")
        subclassed.note_inputs(self, x)
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
            self.ensure_built([(None, *a.shape[1:]) for a in xs] if self._many_inputs else (None, *xs[0].shape[1:]))
        self._check_inputs(xs)
        return xs

    def _prepare(self, x, y, where):
        xs = self._prepare_x(x, where)
        if self._many_outputs:
            return xs, self._outputs.targets(y, len(xs[0]), self.output_shape, where)
        if y is None:
            if self._overrides("train_step", "test_step", "compute_loss"):   # its step decides (an autoencoder)
                return xs, None
            raise ValueError(f"{where}: y (the targets) is required.")
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != len(xs[0]):
            raise ValueError(f"{where}: x has {len(xs[0])} samples but y has "
                             f"{len(y) if y.ndim else 'none (a scalar)'}; they must match.")
        if self.compiled_loss is not None:
            self.compiled_loss.check_targets(y, self.output_shape, where=f"{where}: y")
        return xs, y

    def _to_backend(self, xs, index=slice(None)):
        device = backend.current()
        arrays = [device.asarray(a[index], dtype=t.layer.dtype) for a, t in zip(xs, self.inputs)]
        return arrays if self._many_inputs else arrays[0]

    def _targets_to_backend(self, y, index=slice(None)):
        if y is None:   # a custom step without targets
            return None
        if isinstance(y, list):   # several outputs
            return [None if t is None else self._targets_to_backend(t, index) for t in y]
        dtype = y.dtype if y.dtype.kind in "iu" else self.inputs[0].layer.dtype
        return backend.current().asarray(y[index], dtype=dtype)

    def _logs(self, loss):
        """Logs for a loss (a float, a 0-d backend array or a DeviceSum mean) and the metrics: reads the device."""
        logs = {"loss": float(loss() if callable(loss) else loss)}
        logs.update({name: float(m.result()) for name, m in zip(self.metrics_names[1:], self.compiled_metrics)})
        return logs

    def _run_steps(self, kind, step, batches, callback_list, progress):
        """``step(xb, yb, wb)`` over the EpochIterator ``batches``: the running logs, read only when needed.

        In one process the logs are read when a callback or the progress bar asks, and each batch
        is uploaded while the one before computes; with several (gn.distribute) every rank
        averages the logs at every step, a collective that must run at the same steps everywhere.
        """
        replicas = self._replicas if kind == "train" else distribute.local_replicas()
        total, seen = DeviceSum(), 0
        wants_logs = replicas.size > 1 or reads_batch_logs(callback_list, kind)
        begin, end = getattr(callback_list, f"on_{kind}_batch_begin"), getattr(callback_list, f"on_{kind}_batch_end")
        # running means, weighted by batch size as Keras does (and over the ranks); a custom
        # train_step / test_step returns its own logs instead (gpunet.custom_steps)
        custom = []
        mean = lambda: read_logs(custom[-1]) if custom else \
            replicas.reduce_logs(self._logs(lambda: total.value() / max(seen, 1)), seen)
        upload = lambda batch, index: self._upload_batch(batch, batches, index)
        for index_in_epoch, arrays in uploaded(upload, batches, ahead=replicas.size == 1):
            begin(index_in_epoch, logs={})
            with backend.step(kind):
                if arrays is None:   # data parallel: no part of this step's batch here
                    value, count = self._idle_step(), 0
                else:
                    xb, yb, wb, count = arrays
                    if kind == "train" and not getattr(batches.adapter, "shard", None):
                        replicas.start_batch(count)   # (an array batch's shard told the ranks)
                    value = step(xb, yb, wb)
            if isinstance(value, dict):
                custom[:] = [value]
            else:
                total.add(value, count)
            seen += count
            logs = mean() if wants_logs else None
            end(index_in_epoch, logs=dict(logs) if logs is not None else {})
            progress.update(logs if logs is not None else mean)
            if kind == "train" and self.stop_training:
                break
        return mean() if seen or replicas.size > 1 else {}

    def _results(self, logs, return_dict):
        if return_dict:
            return logs
        names = self.metrics_names if all(n in logs for n in self.metrics_names) else list(logs)
        values = [logs[name] for name in names]
        return values if len(values) > 1 else values[0]

    def _reset_metrics(self):
        """The compiled metrics, and Keras's ``model.metrics`` (trackers a custom step updates)."""
        for metric in {id(m): m for m in [*self.compiled_metrics, *self.metrics]}.values():
            metric.reset_state()

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One update on one batch; returns the loss computed before the update
        (``[loss, *metrics]`` when metrics are compiled, or a dict with ``return_dict``)."""
        self._require_compiled("train_on_batch")
        xs, y = self._prepare(x, y, "train_on_batch")
        w = self._array_weights(y, sample_weight, class_weight, "train_on_batch")
        if self._steps_on_tape("train"):
            return self._on_batch_by_tape("train", xs, y, w, return_dict)
        if not getattr(self._replicas, "synchronized", False):   # checked and broadcast once
            self._replicas = distribute.replicas(self)
        index = self._replicas.shard(slice(0, len(xs[0])))   # data parallel: x, y are the global batch
        self._reset_metrics()
        count = len(xs[0][index])
        wb = self._weights_to_backend(take(w, index))
        with backend.step("train"):
            value = self._train_step(self._to_backend(xs, index), self._targets_to_backend(y, index), wb) \
                if count else self._idle_step()
        # an explicit read, after the step
        return self._results(self._replicas.reduce_logs(self._logs(value), count), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss (and metrics) of one batch with ``training=False``; no update."""
        self._require_compiled("test_on_batch")
        xs, y = self._prepare(x, y, "test_on_batch")
        w = self._array_weights(y, sample_weight, None, "test_on_batch")
        if self._steps_on_tape("test"):
            return self._on_batch_by_tape("test", xs, y, w, return_dict)
        self._reset_metrics()
        with backend.step("test"):
            value = self._test_step(self._to_backend(xs), self._targets_to_backend(y), self._weights_to_backend(w))
        return self._results(self._logs(value), return_dict)

    def _on_batch_by_tape(self, kind, xs, y, w, return_dict):
        self._reset_metrics()
        with backend.step(kind):
            logs = self._tape_step(kind)(self._to_backend(xs), self._targets_to_backend(y), self._weights_to_backend(w))
        return self._results(read_logs(logs), return_dict)

    def predict_on_batch(self, x):
        """The model's output for ``x`` in one forward pass, as NumPy."""
        xs = self._prepare_x(x, "predict_on_batch")
        return subclassed.structured(self, self._to_numpy(self._predict_batch(self._to_backend(xs))))

    def _to_numpy(self, out):
        device = backend.current()
        if isinstance(out, list):
            return [np.asarray(device.to_numpy(o)) for o in out]
        return np.asarray(device.to_numpy(out))

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
        self._replicas = replicas_for_fit(self, train, batch_size)
        callback_list = callbacks_module.CallbackList(self._replicas.local_callbacks(callbacks), add_history=True,
                                                      model=self, epochs=epochs, steps=train.num_batches,
                                                      verbose=verbose)
        progress = Progress(verbose if self._replicas.is_chief else 0)
        self.stop_training, logs = False, {}
        callback_list.on_train_begin(logs={})
        # A callback may move the start (BackupAndRestore restoring a backup), as in Keras.
        initial_epoch, self._initial_epoch = getattr(self, "_initial_epoch", None) or initial_epoch, None
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch, logs={})
            progress.start(train.num_batches, f"Epoch {epoch + 1}/{epochs}")
            logs = self._fit_epoch(train, callback_list, progress)
            if validation is not None and should_validate(epoch, validation_freq):
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
        skip, self._resume_batches = getattr(self, "_resume_batches", None) or (0, None), None
        if skip[0]:   # a mid-epoch backup: this epoch's order is drawn, then its done batches skipped
            train.resume = skip
        return self._run_steps("train", self._fit_step(), train, callback_list, progress)

    def _fit_step(self):
        """fit's step: the eager one, or with jit_compile=True the graph-replaying one (gpunet.jit);
        a model that customises its step runs it on the tape (gpunet.custom_steps), eagerly."""
        if self._steps_on_tape("train"):
            return self._tape_step("train")
        return self._jit_step("train", self._train_step)

    def _jit_step(self, kind, eager):
        """The step of ``kind`` ("train", "test", "predict"): ``eager``, or with jit_compile=True
        the graph-replaying one (gpunet.jit), made once per compile."""
        if not getattr(self, "jit_compile", False):
            return eager
        steps = self.__dict__.setdefault("_captured_steps", {})
        if kind not in steps:
            from .jit import captured_step
            steps[kind] = captured_step(self, kind)
        return steps[kind]

    def _evaluate_batches(self, batches, callback_list, progress):
        self._reset_metrics()
        callback_list.on_test_begin(logs={})
        progress.start(batches.num_batches, "evaluate")
        step = self._tape_step("test") if self._steps_on_tape("test") else self._jit_step("test", self._test_step)
        logs = self._run_steps("test", step, batches, callback_list, progress)
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
        (a list of arrays for several outputs). x: arrays, a PyDataset, a generator or a Dataset
        (their batches' y, if any, are ignored); ``steps``: batches to predict (all by default)."""
        batch_size = _check_batch_size(32 if batch_size is None else batch_size)
        batches = self._iterator(x, None, None, batch_size, False, steps, "predict", targets=False,
                                 steps_name="steps")
        callback_list = callbacks_module.CallbackList(callbacks, model=self)
        progress = Progress(verbose)
        callback_list.on_predict_begin(logs={})
        progress.start(batches.num_batches, "predict")
        chunks, waiting, waiting_bytes = [], [], 0
        predict_step = self._predict_batch if self._steps_on_tape("predict") else \
            self._jit_step("predict", self._predict_step)
        upload = lambda batch, index: self._upload_batch(batch, batches, index, targets=False)
        for step, arrays in uploaded(upload, batches):
            callback_list.on_predict_batch_begin(step, logs={})
            with backend.step("predict"):
                out = predict_step(arrays[0])
            waiting.append(out)   # read between steps, many batches at once (reads wait for the device)
            waiting_bytes += sum(o.nbytes for o in out) if isinstance(out, list) else out.nbytes
            if waiting_bytes > _PREDICT_DEVICE_BYTES:
                chunks.append(self._read_outputs(waiting))
                waiting, waiting_bytes = [], 0
            callback_list.on_predict_batch_end(step, logs={})
            progress.update({})
        if waiting:
            chunks.append(self._read_outputs(waiting))
        progress.finish({})
        callback_list.on_predict_end(logs={})
        if not chunks:
            raise ValueError("predict: the data gave no batches.")
        if self._many_outputs:
            return subclassed.structured(self, [np.concatenate(parts) for parts in zip(*chunks)])
        return np.concatenate(chunks)

    def _read_outputs(self, outputs):
        """Predicted batches (backend arrays, or lists of them) as one NumPy array (or list) per output."""
        xp = backend.current().xp
        if self._many_outputs:
            return [self._to_numpy(xp.concatenate(parts)) for parts in zip(*outputs)]
        return self._to_numpy(xp.concatenate(outputs))
