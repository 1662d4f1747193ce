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
from .backup import BackupAndRestore
from .base import Callback, CallbackList, History, MonitorCallback
from .checkpoint import ModelCheckpoint
from .hooks import CSVLogger, LambdaCallback, LearningRateScheduler, TerminateOnNaN
from .plateau import EarlyStopping, ReduceLROnPlateau

__all__ = [
    "Callback", "CallbackList", "History", "EarlyStopping", "ReduceLROnPlateau",
    "LearningRateScheduler", "CSVLogger", "TerminateOnNaN", "LambdaCallback", "ModelCheckpoint",
    "BackupAndRestore",
    "MonitorCallback",   # the monitor / mode / min_delta logic, for callbacks of your own
]
