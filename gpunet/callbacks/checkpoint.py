"""ModelCheckpoint: save the model (or its weights) every epoch or when the monitor improves."""
import os

from .base import MonitorCallback


class ModelCheckpoint(MonitorCallback):
    """Save the model (``model.save(path)``) or its weights (``model.save_weights(path)``).

    ``filepath`` may hold ``str.format`` fields filled from the epoch (counted from 1) and the
    logs, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.weights.h5"``. ``save_best_only`` saves
    only when ``monitor`` improves. ``save_freq``: ``"epoch"``, or every that many batches
    (``{batch}`` then counts batches of the epoch from 1).
    """

    chief_only = True   # under data parallel only rank 0 writes the file

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, 0.0, initial_value_threshold)
        self.filepath, self.verbose = os.fspath(filepath), verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        valid_freq = save_freq == "epoch" or (isinstance(save_freq, int) and save_freq > 0)
        if not valid_freq or isinstance(save_freq, bool):
            raise ValueError(f"ModelCheckpoint: save_freq must be 'epoch' or a positive int; "
                             f"received {save_freq!r}.")
        # A whole model: Keras 3's zip for .keras, the legacy full-model HDF5 for .h5.
        suffixes = (".weights.h5", ".h5") if save_weights_only else (".keras", ".h5")
        if not self.filepath.endswith(suffixes):
            raise ValueError(f"ModelCheckpoint: with save_weights_only={save_weights_only} the filepath "
                             f"must end in {' or '.join(suffixes)}; received filepath={self.filepath!r}.")
        self.save_freq = save_freq
        self.best = initial_value_threshold
        self._current_epoch, self._batches_since_save = 0, 0

    @property
    def reads_batch_logs(self):
        """Per-batch logs are read (a device sync) only when saving every ``save_freq`` batches."""
        return self.save_freq != "epoch"

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
