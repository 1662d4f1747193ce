"""Callbacks that act in single hooks: set the learning rate, log to CSV, stop on NaN, run the user's functions."""
import csv
import inspect
import math
import os

import numpy as np

from .base import _HOOKS, Callback, _plain


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

    chief_only = True   # under data parallel only rank 0 writes the file

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
