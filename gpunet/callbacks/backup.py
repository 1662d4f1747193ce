"""BackupAndRestore: Keras 3's fault-tolerance callback, resuming a run exactly where its last
backup left it.

Every ``save_freq`` ("epoch", or every that many batches) it writes ``backup_dir/latest.weights.h5``
(the weights and the optimizer's state) and ``backup_dir/training_metadata.json`` (Keras's
``{"epoch", "batch"}``, plus gpunet's random generator states). When ``fit`` starts with a backup
in ``backup_dir`` it loads it and training continues from there; a normal end of training deletes
the backup (``delete_checkpoint=True``). Beyond Keras, which replays an interrupted epoch from its
first batch, a mid-epoch backup resumes at the next batch with the epoch's shuffle order and
every random state as they were, so the resumed run ends with the weights of a run that never
stopped, bit for bit.
"""
import copy
import json
import os
import shutil

from .. import utils
from .base import Callback


class BackupAndRestore(Callback):
    """``BackupAndRestore(backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True)``.

    ``double_checkpoint=True`` keeps the previous backup as ``*.bkp`` and falls back on it when
    the latest one cannot be read (a crash during the write).
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("BackupAndRestore: empty backup_dir argument passed.")
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise ValueError(f"BackupAndRestore: invalid value for argument save_freq; received save_freq="
                             f"{save_freq!r}. Expected either 'epoch' or a positive integer.")
        self.backup_dir, self.save_freq = os.fspath(backup_dir), save_freq
        self.double_checkpoint, self.delete_checkpoint = bool(double_checkpoint), bool(delete_checkpoint)
        self._weights_path = os.path.join(self.backup_dir, "latest.weights.h5")
        self._metadata_path = os.path.join(self.backup_dir, "training_metadata.json")
        self._current_epoch, self._batches_done, self._since_save = 0, 0, 0
        self._epoch_rng, self._resumed_batches = None, 0

    # -- restoring ---------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        if not getattr(self.model, "built", False):
            raise ValueError(f"To use the BackupAndRestore callback, the model must be built before fit(); "
                             f"model '{self.model.name}' is not. Give it a gn.Input or call model.build(...).")
        try:
            self._load()
        except (OSError, ValueError):
            if not (self.double_checkpoint and os.path.exists(self._weights_path + ".bkp")):
                raise
            for path in (self._weights_path, self._metadata_path):
                if os.path.exists(path + ".bkp"):
                    shutil.copyfile(path + ".bkp", path)
            self._load()

    def _load(self):
        if os.path.exists(self._weights_path):
            self.model.load_weights(self._weights_path)
        if not os.path.exists(self._metadata_path):
            return
        with open(self._metadata_path) as f:
            metadata = json.load(f)
        self.model._initial_epoch = self._current_epoch = int(metadata["epoch"])
        extra = metadata.get("gpunet") or {}
        for path, layer in _random_layers(self.model):
            if path in extra.get("layer_random_state", {}):
                layer.set_random_state(extra["layer_random_state"][path])
        if extra.get("batches_done"):   # mid-epoch: replay the epoch's shuffle, then continue
            utils.set_rng_state(extra["epoch_rng_state"])
            self.model._resume_batches = (int(extra["batches_done"]), extra["rng_state"])
            self._resumed_batches = int(extra["batches_done"])   # fit numbers the rest of the epoch from 0
        elif extra.get("rng_state") is not None:
            utils.set_rng_state(extra["rng_state"])

    # -- saving ------------------------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch, self._batches_done = epoch, 0
        self._epoch_offset, self._resumed_batches = self._resumed_batches, 0
        self._epoch_rng = copy.deepcopy(utils.get_rng_state())   # before fit draws the epoch's order

    def on_train_batch_end(self, batch, logs=None):
        self._batches_done = self._epoch_offset + batch + 1
        if self.save_freq == "epoch":
            return
        self._since_save += 1
        if self._since_save >= self.save_freq:
            self._since_save = 0
            self._save(self._current_epoch, self._batches_done - 1, self._batches_done)

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        if self.save_freq == "epoch":
            self._save(epoch + 1, 0, 0)

    def _save(self, epoch, batch, batches_done):
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint:
            for path in (self._weights_path, self._metadata_path):
                if os.path.exists(path):
                    shutil.copyfile(path, path + ".bkp")
        self.model.save_weights(self._weights_path, overwrite=True)
        extra = {"rng_state": utils.get_rng_state(), "batches_done": batches_done,
                 "epoch_rng_state": self._epoch_rng,
                 "layer_random_state": {path: layer.random_state() for path, layer in _random_layers(self.model)}}
        temp = self._metadata_path + ".tmp"
        with open(temp, "w") as f:
            json.dump({"epoch": epoch, "batch": batch, "gpunet": extra}, f)
        os.replace(temp, self._metadata_path)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.exists(self.backup_dir):
            shutil.rmtree(self.backup_dir)


def _random_layers(model):
    from ..saving.model_file import _random_layers as walk
    return walk(model)
