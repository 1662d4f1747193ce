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
import itertools
import math

import numpy as np

from . import backend, callbacks as callbacks_module, distribute, losses, metrics as metrics_module, optimizers, utils
from .callbacks.base import reads_batch_logs
from .device_sums import DeviceSum
from .layers.weight_rules import add_penalties, apply_model_constraints
from .progress import Progress

_PREDICT_DEVICE_BYTES = 64 * 2 ** 20   # predict's outputs wait on the device up to this, then one read


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; received {batch_size!r}.")
    return int(batch_size)


def _check_finite(array, what):
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise ValueError(f"{what} contains {array[index]} at index {index}; expected finite numbers only.")


class _Feed:
    """Batches on the device in order: taking batch i queues batch i+1's upload (pinned memory,
    copy stream, ``backend.upload_async``), so the copy runs while batch i computes. ``batches``
    may be any iterable (index arrays, or host batches with an ``upload`` that takes them); it is
    read one item ahead, never whole."""

    def __init__(self, upload, batches, ahead=True):
        self.upload, self.ahead, self.source = upload, ahead, iter(batches)
        self.pending = self._read_next() if ahead else None

    def _read_next(self):
        item = next(self.source, _END)
        return None if item is _END else (item, self.upload(item))

    def __iter__(self):
        """Each batch's item; call ``take()`` once per item for its arrays. Without ``ahead`` each
        batch is uploaded when taken (its index may depend on the step, as a rank's shard does)."""
        while True:
            if not self.ahead:
                item = next(self.source, _END)
                self.pending = None if item is _END else (item, None)
            if self.pending is None:
                return
            yield self.pending[0]

    def take(self):
        """The arrays of the current batch, ready for the compute stream (it waits; the host does not)."""
        item, uploaded = self.pending
        arrays, events = uploaded if uploaded is not None else self.upload(item)
        self.pending = self._read_next() if self.ahead else None
        backend.current().wait_events(events)
        return arrays


_END = object()


def _narrow_labels(y):
    """Integer targets as int32 when they fit (the kernels' label type: no conversion in the step)."""
    if y is None or y.dtype.kind not in "iu" or y.dtype == np.int32 or y.size == 0:
        return y
    return y.astype(np.int32) if -2 ** 31 <= y.min() and y.max() < 2 ** 31 else y


def _batches(count, batch_size, order=None):
    """Index per batch: slices in order, or chunks of a permutation."""
    for start in range(0, count, batch_size):
        yield slice(start, start + batch_size) if order is None else order[start:start + batch_size]


class Trainer:
    """compile / fit / evaluate / predict for a Model (which supplies forward, backward, weights)."""

    def _init_training(self):
        self.optimizer = self.loss = self.compiled_loss = None
        self.compiled_metrics = []
        self.compiled = False
        self.stop_training = False
        self.history = None
        # Data parallel: the distribution the model was made under, and the ranks' view of this fit.
        self._made_under, self._replicas = distribute.distribution(), distribute.local_replicas()
        self._grad_ready = None   # called as each layer's backward returns (gradient buckets)

    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Choose the optimizer, loss and metrics (names or objects) for fit / evaluate."""
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise TypeError(f"metrics must be a list such as ['accuracy']; received {metrics!r}.")
        self.optimizer = optimizers.get(optimizer)
        self.loss = loss
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
        if self.compiled_loss is None:
            raise RuntimeError(f"Model '{self.name}' was compiled without a loss; "
                               f"pass loss=... to compile() before {where}().")
        if self._many_outputs:
            raise NotImplementedError(f"Model '{self.name}' has {len(self.outputs)} outputs; "
                                      f"{where}() supports single-output models only.")

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
        if y is None:
            raise ValueError(f"{where}: y (the targets) is required.")
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != len(xs[0]):
            raise ValueError(f"{where}: x has {len(xs[0])} samples but y has "
                             f"{len(y) if y.ndim else 'none (a scalar)'}; they must match.")
        self.compiled_loss.check_targets(y, self.output_shape, where=f"{where}: y")
        return xs, y

    def _upload(self, xs, y, index):
        """``((xb, yb, count), events)`` for one batch, queued with ``upload_async`` (yb None without y)."""
        device = backend.current()
        uploads = [device.upload_async(a[index], t.layer.dtype) for a, t in zip(xs, self.inputs)]
        if y is not None:
            uploads.append(device.upload_async(y[index], y.dtype if y.dtype.kind in "iu" else self.inputs[0].layer.dtype))
        arrays = [a for a, _ in uploads]
        xb = arrays[:len(xs)] if self._many_inputs else arrays[0]
        count = len(arrays[0])
        return (xb, arrays[len(xs)] if y is not None else None, count), [e for _, e in uploads]

    def _to_backend(self, xs, index=slice(None)):
        device = backend.current()
        arrays = [device.asarray(a[index], dtype=t.layer.dtype) for a, t in zip(xs, self.inputs)]
        return arrays if self._many_inputs else arrays[0]

    def _targets_to_backend(self, y, index=slice(None)):
        dtype = y.dtype if y.dtype.kind in "iu" else self.inputs[0].layer.dtype
        return backend.current().asarray(y[index], dtype=dtype)

    # -- one batch ---------------------------------------------------------------------
    def _fused(self):
        return bool(getattr(self.compiled_loss, "fuses_softmax", False)) and self.fusable_softmax

    def _train_step(self, xb, yb):
        """Forward, loss, backward, update; returns the loss before the update (a 0-d backend array)."""
        y_pred = self.forward(xb, training=True)
        if self._fused():
            value, dlogits, y_pred = self.compiled_loss.device_compute_from_logits(yb, self.logits)
            self._train_backward(dlogits, from_logits=True)
        else:
            value, dy = self.compiled_loss.device_compute(yb, y_pred)
            self._train_backward(dy, from_logits=False)
        value = add_penalties(value, self.losses)   # regularization penalties, as Keras adds them (on the device)
        self.optimizer.apply(self.trainable_weights, self._replicas.gradients(self))
        apply_model_constraints(self)   # kernel_constraint / bias_constraint after each step, as Keras
        for metric in self.compiled_metrics:
            metric.update_state(yb, y_pred)
        return value

    def _idle_step(self):
        """A rank with no part of a short last batch still joins the gradient reduction."""
        self.optimizer.apply(self.trainable_weights, self._replicas.gradients(self))
        return 0.0

    def _test_step(self, xb, yb):
        """The loss of one batch with ``training=False`` (a 0-d backend array); metrics updated."""
        y_pred = self.forward(xb, training=False)
        if self._fused():
            value, _, y_pred = self.compiled_loss.device_compute_from_logits(yb, self.logits)
        else:
            value = self.compiled_loss.device_value(yb, y_pred)
        value = add_penalties(value, self.losses)   # Keras's evaluate adds them too
        for metric in self.compiled_metrics:
            metric.update_state(yb, y_pred)
        return value

    def _logs(self, loss):
        """Logs for a loss (a float, a 0-d backend array or a DeviceSum mean) and the metrics: reads the device."""
        logs = {"loss": float(loss() if callable(loss) else loss)}
        logs.update({m.name: float(m.result()) for m in self.compiled_metrics})
        return logs

    def _run_steps(self, kind, step, xs, y, batches, callback_list, progress):
        """``step(xb, yb)`` over ``batches`` (index per batch): the running logs, read only when needed.

        In one process the logs are read when a callback or the progress bar asks; with several
        (gn.distribute) every rank averages them at every step, a collective that must run at the
        same steps everywhere, and each rank uploads its part of a batch when the step starts.
        """
        replicas = self._replicas if kind == "train" else distribute.local_replicas()
        total, seen = DeviceSum(), 0
        wants_logs = replicas.size > 1 or reads_batch_logs(callback_list, kind)
        begin, end = getattr(callback_list, f"on_{kind}_batch_begin"), getattr(callback_list, f"on_{kind}_batch_end")
        # running means, weighted by batch size as Keras does (and over the ranks)
        mean = lambda: replicas.reduce_logs(self._logs(lambda: total.value() / max(seen, 1)), seen)
        y = _narrow_labels(y)
        feed = _Feed(lambda index: self._upload(xs, y, replicas.shard(index)), batches, ahead=replicas.size == 1)
        for index_in_epoch, _ in enumerate(feed):
            begin(index_in_epoch, logs={})
            with backend.step(kind):
                xb, yb, count = feed.take()
                value = step(xb, yb) if count else self._idle_step()
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
        values = [logs[name] for name in self.metrics_names]
        return values if len(values) > 1 else values[0]

    def _reset_metrics(self):
        for metric in self.compiled_metrics:
            metric.reset_state()

    def train_on_batch(self, x, y, return_dict=False):
        """One update on one batch; returns the loss computed before the update
        (``[loss, *metrics]`` when metrics are compiled, or a dict with ``return_dict``)."""
        self._require_compiled("train_on_batch")
        xs, y = self._prepare(x, y, "train_on_batch")
        if not getattr(self._replicas, "synchronized", False):   # checked and broadcast once
            self._replicas = distribute.replicas(self)
        index = self._replicas.shard(slice(0, len(y)))   # data parallel: x, y are the global batch
        self._reset_metrics()
        count = len(y[index])
        with backend.step("train"):
            value = self._train_step(self._to_backend(xs, index), self._targets_to_backend(y, index)) \
                if count else self._idle_step()
        # an explicit read, after the step
        return self._results(self._replicas.reduce_logs(self._logs(value), count), return_dict)

    def test_on_batch(self, x, y, return_dict=False):
        """Loss (and metrics) of one batch with ``training=False``; no update."""
        self._require_compiled("test_on_batch")
        xs, y = self._prepare(x, y, "test_on_batch")
        self._reset_metrics()
        with backend.step("test"):
            value = self._test_step(self._to_backend(xs), self._targets_to_backend(y))
        return self._results(self._logs(value), return_dict)

    def predict_on_batch(self, x):
        """The model's output for ``x`` in one forward pass, as NumPy."""
        xs = self._prepare_x(x, "predict_on_batch")
        return self._to_numpy(self.forward(self._to_backend(xs), training=False))

    def _to_numpy(self, out):
        device = backend.current()
        if isinstance(out, list):
            return [np.asarray(device.to_numpy(o)) for o in out]
        return np.asarray(device.to_numpy(out))

    # -- whole arrays --------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0):
        """Train for ``epochs`` passes over ``(x, y)``; returns a History (``.history``: per-epoch lists
        of 'loss', each metric, 'val_loss', 'val_<metric>' with validation, 'learning_rate').

        x: array ``(samples, *input_shape)`` (a list of arrays for several inputs); y: targets.
        validation_split takes the last fraction of the samples, before shuffling (as Keras).
        """
        self._require_compiled("fit")
        batch_size = _check_batch_size(32 if batch_size is None else batch_size)
        for what, value in (("epochs", epochs), ("initial_epoch", initial_epoch)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{what} must be a non-negative integer; received {value!r}.")
        xs, y = self._prepare(x, y, "fit")
        (xs, y), validation = self._validation(xs, y, validation_split, validation_data)
        steps = math.ceil(len(y) / batch_size)
        self._replicas = distribute.replicas(self, len(y), batch_size)
        callback_list = callbacks_module.CallbackList(self._replicas.local_callbacks(callbacks), add_history=True,
                                                      model=self, epochs=epochs, steps=steps, verbose=verbose)
        progress = Progress(verbose if self._replicas.is_chief else 0)
        self.stop_training, logs = False, {}
        callback_list.on_train_begin(logs={})
        # A callback may move the start (BackupAndRestore restoring a backup), as in Keras.
        initial_epoch, self._initial_epoch = getattr(self, "_initial_epoch", None) or initial_epoch, None
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch, logs={})
            progress.start(steps, f"Epoch {epoch + 1}/{epochs}")
            logs = self._fit_epoch(xs, y, batch_size, shuffle, callback_list, progress)
            if validation is not None:
                val_logs = self._evaluate_arrays(*validation, batch_size, callback_list, Progress(0))
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            logs["learning_rate"] = float(self.optimizer.current_learning_rate())
            progress.finish(logs)
            callback_list.on_epoch_end(epoch, logs=logs)
            if self.stop_training:
                break
        callback_list.on_train_end(logs=logs)
        self.history = callback_list.history
        return callback_list.history

    def _fit_epoch(self, xs, y, batch_size, shuffle, callback_list, progress):
        order = utils.rng().permutation(len(y)) if shuffle else None
        self._reset_metrics()
        batches = _batches(len(y), batch_size, order)
        skip, self._resume_batches = getattr(self, "_resume_batches", None) or (0, None), None
        if skip[0]:   # a mid-epoch backup: this epoch's order is drawn; continue after its done batches
            utils.set_rng_state(skip[1])
            batches = itertools.islice(batches, skip[0], None)
        return self._run_steps("train", self._train_step, xs, y, batches, callback_list, progress)

    def _validation(self, xs, y, split, data):
        """((train xs, train y), (val xs, val y) or None) from validation_data or validation_split."""
        if data is not None:
            if not isinstance(data, (list, tuple)) or len(data) != 2:
                what = f"a {type(data).__name__}" + (f" of length {len(data)}" if hasattr(data, "__len__") else "")
                raise ValueError(f"validation_data must be a tuple (x_val, y_val); received {what}.")
            return (xs, y), self._prepare(data[0], data[1], "fit: validation_data")
        if not isinstance(split, (int, float, np.floating)) or not 0.0 <= split < 1.0:
            raise ValueError(f"validation_split must be a fraction in [0, 1); received {split!r}.")
        if split == 0:
            return (xs, y), None
        cut = int(math.ceil(len(y) * (1.0 - split)))
        if cut in (0, len(y)):
            raise ValueError(f"validation_split={split} of {len(y)} samples leaves "
                             f"{cut} for training and {len(y) - cut} for validation; both need at least one.")
        return ([a[:cut] for a in xs], y[:cut]), ([a[cut:] for a in xs], y[cut:])

    def _evaluate_arrays(self, xs, y, batch_size, callback_list, progress):
        self._reset_metrics()
        callback_list.on_test_begin(logs={})
        progress.start(math.ceil(len(y) / batch_size), "evaluate")
        logs = self._run_steps("test", self._test_step, xs, y, _batches(len(y), batch_size), callback_list, progress)
        progress.finish(logs)
        callback_list.on_test_end(logs=dict(logs))
        return logs

    def evaluate(self, x=None, y=None, batch_size=32, verbose="auto", return_dict=False, callbacks=None):
        """Loss and metrics over ``(x, y)`` with ``training=False``: the loss alone, ``[loss, *metrics]``
        when metrics are compiled, or a dict with ``return_dict=True``."""
        self._require_compiled("evaluate")
        batch_size = _check_batch_size(32 if batch_size is None else batch_size)
        xs, y = self._prepare(x, y, "evaluate")
        callback_list = callbacks_module.CallbackList(callbacks, model=self)
        logs = self._evaluate_arrays(xs, y, batch_size, callback_list, Progress(verbose))
        return self._results(logs, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", callbacks=None):
        """Outputs for ``x`` with ``training=False``, as a NumPy array ``(samples, *output_shape)``
        (a list of arrays for several outputs)."""
        batch_size = _check_batch_size(32 if batch_size is None else batch_size)
        xs = self._prepare_x(x, "predict")
        callback_list = callbacks_module.CallbackList(callbacks, model=self)
        progress = Progress(verbose)
        callback_list.on_predict_begin(logs={})
        progress.start(math.ceil(len(xs[0]) / batch_size), "predict")
        chunks, waiting, waiting_bytes = [], [], 0
        feed = _Feed(lambda index: self._upload(xs, None, index), _batches(len(xs[0]), batch_size))
        for step, _ in enumerate(feed):
            callback_list.on_predict_batch_begin(step, logs={})
            with backend.step("predict"):
                out = self.forward(feed.take()[0], training=False)
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
        if self._many_outputs:
            return [np.concatenate(parts) for parts in zip(*chunks)]
        return np.concatenate(chunks)

    def _read_outputs(self, outputs):
        """Predicted batches (backend arrays, or lists of them) as one NumPy array (or list) per output."""
        xp = backend.current().xp
        if self._many_outputs:
            return [self._to_numpy(xp.concatenate(parts)) for parts in zip(*outputs)]
        return self._to_numpy(xp.concatenate(outputs))
