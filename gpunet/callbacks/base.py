"""The callback contract, the list that dispatches hooks, History, and the monitored-quantity
logic shared by EarlyStopping, ReduceLROnPlateau and ModelCheckpoint."""
import warnings

import numpy as np

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


_BATCH_END = {"train": ("on_train_batch_end", "on_batch_end"), "test": ("on_test_batch_end",),
              "predict": ("on_predict_batch_end",)}


def reads_batch_logs(callback, kind):
    """Whether ``callback`` wants the running logs after each ``kind`` ("train", "test") batch.

    Reading them makes the host wait for the device, so the training loop reads them per batch
    only when some callback wants them: one that sets ``reads_batch_logs`` (an attribute or
    property, as ModelCheckpoint does), else one whose batch-end hook is not Callback's no-op
    (TerminateOnNaN, a LambdaCallback given such a hook, a user's override).
    """
    if isinstance(callback, CallbackList):
        return any(reads_batch_logs(c, kind) for c in callback.callbacks)
    declared = getattr(callback, "reads_batch_logs", None)
    if isinstance(declared, bool):
        return declared
    for hook in _BATCH_END[kind]:
        if hook in vars(callback) or getattr(type(callback), hook) is not getattr(Callback, hook):
            return True
    return False
