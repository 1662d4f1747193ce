"""Training callbacks with Keras 3's names, arguments and behaviour.

The training loop drives them through a ``CallbackList``::

    callbacks = CallbackList(user_callbacks, add_history=True)   # History always attached
    callbacks.set_model(model); callbacks.on_train_begin()
    for epoch ...: on_epoch_begin(epoch); per batch on_train_batch_begin/end(batch, logs);
                   on_epoch_end(epoch, logs)      # then stop if model.stop_training
    callbacks.on_train_end(); return callbacks.history

Epochs and batches are numbered from 0 in the hooks (Keras's convention); messages and
checkpoint names count epochs from 1. Epoch logs hold ``loss``, the metrics, ``val_*`` and
``learning_rate``.
"""
import csv
import inspect
import math
import os
import warnings

import numpy as np

__all__ = [
    "Callback", "CallbackList", "History", "EarlyStopping", "ReduceLROnPlateau",
    "LearningRateScheduler", "CSVLogger", "TerminateOnNaN", "LambdaCallback", "ModelCheckpoint",
]

_HOOKS = (
    "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
    "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
    "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
    "on_predict_batch_begin", "on_predict_batch_end",
)


class Callback:
    """Base class: every hook does nothing. ``self.model`` is set by ``set_model`` before training.

    Hooks: ``on_train_begin/end(logs)``, ``on_epoch_begin/end(epoch, logs)``,
    ``on_train_batch_begin/end(batch, logs)`` (which call ``on_batch_begin/end``, as in Keras),
    ``on_test_begin/end(logs)``, ``on_test_batch_begin/end``, ``on_predict_begin/end(logs)``,
    ``on_predict_batch_begin/end``.
    """

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = dict(params)

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass
    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)


class CallbackList(Callback):
    """Several callbacks called as one, in order. ``add_history=True`` appends a ``History``
    unless one is given; it is ``self.history`` either way (None without one)."""

    def __init__(self, callbacks=None, add_history=False, model=None, **params):
        super().__init__()
        self.callbacks = list(callbacks or [])
        for item in self.callbacks:
            if not isinstance(item, Callback):
                raise TypeError(f"callbacks must be Callback objects; received {item!r}.")
        self.history = next((c for c in self.callbacks if isinstance(c, History)), None)
        if add_history and self.history is None:
            self.history = History()
            self.callbacks.append(self.history)
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def append(self, callback):
        self.callbacks.append(callback)

    def set_model(self, model):
        super().set_model(model)
        for callback in self.callbacks:
            callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for callback in self.callbacks:
            callback.set_params(params)


def _dispatch(hook):
    # One logs dict goes to every callback in turn, so that what one adds (ReduceLROnPlateau's
    # learning_rate) reaches the next (History, CSVLogger), as in Keras.
    if "epoch" in hook or "batch" in hook:
        def call_all(self, index, logs=None):
            logs = {} if logs is None else logs
            for callback in self.callbacks:
                getattr(callback, hook)(index, logs)
    else:
        def call_all(self, logs=None):
            logs = {} if logs is None else logs
            for callback in self.callbacks:
                getattr(callback, hook)(logs)
    call_all.__name__ = hook
    return call_all


for _hook in _HOOKS:
    setattr(CallbackList, _hook, _dispatch(_hook))


class History(Callback):
    """Records epoch logs: ``history`` maps each log key to its per-epoch list; ``epoch`` lists
    the epochs seen. ``fit`` attaches one always, returns it and sets ``model.history`` to it."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(_plain(value))
        if self.model is not None:
            self.model.history = self


def _plain(value):
    """A Python float for a 0-d number (NumPy or CuPy scalar), anything else unchanged."""
    if isinstance(value, (bool, str)) or np.ndim(value) != 0:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


_HIGHER_IS_BETTER = ("acc", "auc", "precision", "recall", "f1", "fbeta", "r2", "iou")


class MonitorCallback(Callback):
    """Shared by callbacks that watch one log value: direction, best value, improvement test.

    ``mode="auto"`` reads the direction from the name, as Keras does: names with ``acc``
    (``accuracy``, ``val_acc``) and other higher-is-better scores are maximised, losses and
    errors minimised. A monitor missing from the logs is warned about once.
    """

    def __init__(self, monitor="val_loss", mode="auto", min_delta=0.0, baseline=None):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{type(self).__name__}: mode must be 'auto', 'min' or 'max'; "
                             f"received {mode!r}.")
        self.monitor, self.mode, self.baseline = monitor, mode, baseline
        self.min_delta = abs(min_delta)
        self.higher_is_better = mode == "max" or (mode == "auto" and self._name_says_higher(monitor))
        self.best = None
        self._warned_missing = False

    @staticmethod
    def _name_says_higher(monitor):
        name = monitor.removeprefix("val_").lower()
        return any(word in name for word in _HIGHER_IS_BETTER)

    def _is_improvement(self, value, reference):
        """True when ``value`` beats ``reference`` (None: nothing yet) by more than ``min_delta``."""
        if reference is None:
            return True
        if self.higher_is_better:
            return value - self.min_delta > reference
        return value + self.min_delta < reference

    def _monitor_value(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None:
            if not self._warned_missing:
                warnings.warn(f"{type(self).__name__} is conditioned on '{self.monitor}', which is not "
                              f"in the logs. Available: {', '.join(logs or {}) or 'none'}.", stacklevel=3)
                self._warned_missing = True
            return None
        return _plain(value)


class EarlyStopping(MonitorCallback):
    """Stop training when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Sets ``model.stop_training``. ``baseline``: training also stops unless the value beats it.
    ``restore_best_weights``: at the end of training the weights of the best epoch are put back
    (``model.get_weights()`` / ``set_weights()``). Epochs before ``start_from_epoch`` are ignored.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta, baseline)
        self.patience, self.verbose = patience, verbose
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.best = None   # the first monitored value is the first best, whatever it is
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        current = self._monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # The count restarts only once the value also beats the baseline.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the optimizer's learning rate by ``factor`` after ``patience`` epochs without
    an improvement of more than ``min_delta``, never below ``min_lr``; then wait ``cooldown``
    epochs before counting again. Sets ``model.optimizer.learning_rate``."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta)
        if not 0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1); received factor={factor!r}.")
        self.factor, self.patience, self.verbose = factor, patience, verbose
        self.cooldown, self.min_lr = cooldown, min_lr
        self.on_train_begin()

    def on_train_begin(self, logs=None):
        self.best = -math.inf if self.higher_is_better else math.inf
        self.wait = self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = self._monitor_value(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                self._reduce(epoch)

    def _reduce(self, epoch):
        old_lr = float(self.model.optimizer.learning_rate)
        if old_lr > np.float32(self.min_lr):   # float32, as Keras compares, so min_lr is reachable
            new_lr = max(old_lr * self.factor, self.min_lr)
            self.model.optimizer.learning_rate = new_lr
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
            self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """At each epoch's start, set the learning rate to ``schedule(epoch, lr)`` (or ``schedule(epoch)``)."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler needs a callable schedule(epoch, lr); "
                            f"received {schedule!r}.")
        self.schedule, self.verbose = schedule, verbose
        try:   # asked once, so that a TypeError raised inside the schedule is not mistaken for this
            inspect.signature(schedule).bind(0, 0.0)
            self._takes_lr = True
        except TypeError:
            self._takes_lr = False
        except ValueError:   # no signature to read (some builtins): Keras's two-argument form
            self._takes_lr = True

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.model.optimizer.learning_rate)
        new_lr = self.schedule(epoch, lr) if self._takes_lr else self.schedule(epoch)
        if isinstance(new_lr, bool) or np.ndim(new_lr) != 0:
            raise ValueError(f"LearningRateScheduler: the schedule must return a float; received {new_lr!r}.")
        self.model.optimizer.learning_rate = float(new_lr)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(new_lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class CSVLogger(Callback):
    """Write one row per epoch to ``filename``: ``epoch`` then the log keys, sorted.

    ``append=True`` continues an existing file (its header is not repeated).
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.separator, self.append = os.fspath(filename), separator, append
        self._file = self._writer = self.keys = None

    def on_train_begin(self, logs=None):
        self._write_header = not (self.append and os.path.exists(self.filename)
                                  and os.path.getsize(self.filename) > 0)
        self._close()
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer, self.keys = None, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._writer is None:
            self.keys = sorted(logs)
            self._writer = csv.writer(self._file, delimiter=self.separator, lineterminator="\n")
            if self._write_header:
                self._writer.writerow(["epoch", *self.keys])
        self._writer.writerow([epoch, *(self._cell(logs.get(key, "NA")) for key in self.keys)])
        self._file.flush()

    @staticmethod
    def _cell(value):
        if isinstance(value, str) or np.ndim(value) == 0:
            return _plain(value)
        return f"[{', '.join(map(str, np.ravel(value)))}]"

    def on_train_end(self, logs=None):
        self._close()

    def _close(self):
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._writer = None


class TerminateOnNaN(Callback):
    """Stop training (``model.stop_training = True``) when a batch's loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Any hook name is accepted as a keyword (``on_train_begin``, ``on_train_batch_end``, ...).
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **more_hooks):
        super().__init__()
        hooks = {"on_epoch_begin": on_epoch_begin, "on_epoch_end": on_epoch_end,
                 "on_train_begin": on_train_begin, "on_train_end": on_train_end,
                 "on_train_batch_begin": on_train_batch_begin, "on_train_batch_end": on_train_batch_end}
        unknown = sorted(set(more_hooks) - set(_HOOKS) - {"on_batch_begin", "on_batch_end"})
        if unknown:
            raise TypeError(f"LambdaCallback got unknown hook(s) {', '.join(unknown)}; "
                            f"known hooks: {', '.join(_HOOKS)}.")
        hooks.update(more_hooks)
        for hook, function in hooks.items():
            if function is not None:
                setattr(self, hook, function)


class ModelCheckpoint(MonitorCallback):
    """Save the model (``model.save(path)``) or its weights (``model.save_weights(path)``).

    ``filepath`` may hold ``str.format`` fields filled from the epoch (counted from 1) and the
    logs, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.weights.h5"``. ``save_best_only`` saves
    only when ``monitor`` improves. ``save_freq``: ``"epoch"``, or every that many batches
    (``{batch}`` then counts batches of the epoch from 1).
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, 0.0, initial_value_threshold)
        self.filepath, self.verbose = os.fspath(filepath), verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        valid_freq = save_freq == "epoch" or (isinstance(save_freq, int) and save_freq > 0)
        if not valid_freq or isinstance(save_freq, bool):
            raise ValueError(f"ModelCheckpoint: save_freq must be 'epoch' or a positive int; "
                             f"received {save_freq!r}.")
        # A whole model is written as HDF5 (Keras's legacy .h5 format); a .keras name would promise
        # Keras's zip format, which gpunet does not write.
        suffixes = (".weights.h5", ".h5") if save_weights_only else (".h5",)
        if not self.filepath.endswith(suffixes):
            raise ValueError(f"ModelCheckpoint: with save_weights_only={save_weights_only} the filepath "
                             f"must end in {' or '.join(suffixes)}; received filepath={self.filepath!r}.")
        self.save_freq = save_freq
        self.best = initial_value_threshold
        self._current_epoch, self._batches_since_save = 0, 0

    def on_train_begin(self, logs=None):
        self._batches_since_save = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._current_epoch, batch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    def format_path(self, epoch, batch, logs):
        """``filepath`` filled in for ``epoch`` (0-based, written from 1), ``batch`` and ``logs``."""
        fields = {**logs, "epoch": epoch + 1}
        if batch is not None:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as missing:
            raise KeyError(f"ModelCheckpoint cannot fill {missing} in filepath {self.filepath!r}; "
                           f"available: {', '.join(fields)}.") from None

    def _save(self, epoch, batch, logs):
        path = self.format_path(epoch, batch, logs)
        if self.save_best_only and not self._improved(epoch, logs):
            return
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)

    def _improved(self, epoch, logs):
        current = self._monitor_value(logs)
        if current is None:
            return True   # as Keras: without the monitored value, save rather than lose the model
        if not self._is_improvement(current, self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best}")
            return False
        self.best = current
        return True
