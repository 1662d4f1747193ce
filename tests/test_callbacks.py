"""Callbacks driven by a minimal fit loop over a fake model that records what is done to it."""
import math
import warnings

import numpy as np
import pytest

from gpunet import callbacks as cb
from gpunet import optimizers


class FakeModel:
    """What callbacks touch on a model: weights, optimizer, stop_training, save calls."""

    def __init__(self, learning_rate=0.1):
        self.weights = [np.array([0.0])]
        self.optimizer = optimizers.SGD(learning_rate)
        self.stop_training = False
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w, copy=True) for w in weights]

    def save_weights(self, path):
        self.saved.append(("weights", path))

    def save(self, path):
        self.saved.append(("model", path))


def fit(callbacks, epoch_logs, model=None, batches=2, batch_loss=None):
    """Drive the hooks in the training loop's order. After epoch e the weights are [e + 1].

    ``batch_loss(epoch, batch)`` gives each batch's running loss (default 1.0).
    """
    model = model or FakeModel()
    hooks = cb.CallbackList(callbacks, add_history=True, model=model)
    hooks.on_train_begin()
    for epoch, logs in enumerate(epoch_logs):
        hooks.on_epoch_begin(epoch)
        for batch in range(batches):
            hooks.on_train_batch_begin(batch)
            model.weights = [np.array([epoch + (batch + 1) / batches])]
            hooks.on_train_batch_end(batch, {"loss": batch_loss(epoch, batch) if batch_loss else 1.0})
        hooks.on_epoch_end(epoch, {**logs, "learning_rate": model.optimizer.learning_rate})
        if model.stop_training:
            break
    hooks.on_train_end()
    return model, hooks.history


def val_losses(*values):
    return [{"loss": 1.0, "val_loss": v} for v in values]


# -- History and CallbackList --------------------------------------------------------------
def test_history_records_every_epoch():
    model, history = fit([], [{"loss": np.float32(0.5), "val_loss": 0.75}, {"loss": 0.25, "val_loss": 0.5}])
    assert history.epoch == [0, 1]
    assert history.history == {"loss": [0.5, 0.25], "val_loss": [0.75, 0.5], "learning_rate": [0.1, 0.1]}
    assert type(history.history["loss"][0]) is float
    assert model.history is history


def test_callback_list_keeps_a_given_history_and_rejects_non_callbacks():
    mine = cb.History()
    assert cb.CallbackList([mine], add_history=True).callbacks == [mine]
    with pytest.raises(TypeError, match="callbacks must be Callback objects; received 'x'"):
        cb.CallbackList(["x"])


def test_hooks_run_in_order_and_legacy_batch_hooks_still_fire():
    calls = []

    class Recorder(cb.Callback):
        def on_batch_end(self, batch, logs=None):
            calls.append(("batch_end", batch))

    lam = cb.LambdaCallback(on_train_begin=lambda logs: calls.append("begin"),
                            on_epoch_end=lambda epoch, logs: calls.append(("epoch_end", epoch)),
                            on_train_end=lambda logs: calls.append("end"))
    fit([lam, Recorder()], [{}], batches=2)
    assert calls == ["begin", ("batch_end", 0), ("batch_end", 1), ("epoch_end", 0), "end"]


def test_lambda_callback_rejects_unknown_hooks():
    with pytest.raises(TypeError, match="unknown hook\\(s\\) on_epoch_finish"):
        cb.LambdaCallback(on_epoch_finish=print)


# -- EarlyStopping ------------------------------------------------------------------------------
def test_early_stopping_stops_after_patience_and_restores_best_weights():
    stop = cb.EarlyStopping(patience=2, restore_best_weights=True)
    model, history = fit([stop], val_losses(1.0, 0.8, 0.9, 0.85, 0.7, 0.6))
    assert history.epoch == [0, 1, 2, 3] and stop.stopped_epoch == 3
    assert stop.best == 0.8 and stop.best_epoch == 1
    assert model.weights[0][0] == 2.0, "weights from the end of epoch 1 (the best)"


def test_early_stopping_without_restore_keeps_last_weights():
    model, history = fit([cb.EarlyStopping(patience=0)], val_losses(1.0, 1.1, 0.5))
    assert history.epoch == [0, 1] and model.weights[0][0] == 2.0


def test_early_stopping_min_delta_counts_small_gains_as_none():
    _, history = fit([cb.EarlyStopping(min_delta=0.1, patience=1)], val_losses(1.0, 0.95, 0.5))
    assert history.epoch == [0, 1]


@pytest.mark.parametrize("monitor", ["val_accuracy", "acc", "val_acc"])
def test_early_stopping_auto_mode_maximises_accuracy(monitor):
    logs = [{monitor: v} for v in (0.5, 0.6, 0.55, 0.58, 0.9)]
    stop = cb.EarlyStopping(monitor=monitor, patience=1)
    _, history = fit([stop], logs)
    assert history.epoch == [0, 1, 2] and stop.best == 0.6


def test_early_stopping_baseline_must_be_beaten_to_reset_patience():
    values = val_losses(0.9, 0.8, 0.85, 0.7)
    assert fit([cb.EarlyStopping(patience=2, baseline=0.5)], values)[1].epoch == [0, 1, 2]
    assert fit([cb.EarlyStopping(patience=2)], values)[1].epoch == [0, 1, 2, 3]


def test_early_stopping_ignores_epochs_before_start_from_epoch():
    _, history = fit([cb.EarlyStopping(patience=0, start_from_epoch=2)], val_losses(1.0, 2.0, 3.0, 4.0, 5.0))
    assert history.epoch == [0, 1, 2, 3]


def test_missing_monitor_warns_once_with_the_available_keys():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, history = fit([cb.EarlyStopping(monitor="val_loss")], [{"loss": 1.0}] * 3)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert "'val_loss'" in messages[0] and "Available: loss, learning_rate" in messages[0]
    assert history.epoch == [0, 1, 2]


def test_early_stopping_is_reusable_across_fits():
    stop = cb.EarlyStopping(patience=0)
    fit([stop], val_losses(0.1, 0.2))
    _, history = fit([stop], val_losses(5.0, 4.0, 3.0))
    assert history.epoch == [0, 1, 2]


# -- ReduceLROnPlateau -------------------------------------------------------------------------
def test_reduce_lr_on_plateau_after_patience():
    model, history = fit([cb.ReduceLROnPlateau(factor=0.5, patience=2)], val_losses(*[1.0] * 6))
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025])
    assert model.optimizer.learning_rate == pytest.approx(0.05 * 0.5)


def test_reduce_lr_on_plateau_respects_min_lr_and_cooldown():
    model, _ = fit([cb.ReduceLROnPlateau(factor=0.1, patience=1, min_lr=0.05)], val_losses(*[1.0] * 5))
    assert model.optimizer.learning_rate == pytest.approx(0.05)
    _, history = fit([cb.ReduceLROnPlateau(factor=0.1, patience=1, cooldown=2)], val_losses(*[1.0] * 6))
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_reduce_lr_on_plateau_improvement_resets_and_accuracy_is_maximised():
    logs = [{"val_accuracy": v} for v in (0.5, 0.4, 0.6, 0.6, 0.6)]
    _, history = fit([cb.ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=2)], logs)
    assert history.history["learning_rate"] == pytest.approx([0.1] * 5)
    model, _ = fit([cb.ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=2)], logs + logs[-1:])
    assert model.optimizer.learning_rate == pytest.approx(0.05)


def test_reduce_lr_on_plateau_replaces_a_schedule():
    model = FakeModel()
    model.optimizer = optimizers.Adam(optimizers.ExponentialDecay(0.01, 1000, 0.5))
    fit([cb.ReduceLROnPlateau(factor=0.5, patience=1)], val_losses(1.0, 1.0), model=model)
    assert model.optimizer.get_config()["learning_rate"] == pytest.approx(0.005)


def test_reduce_lr_on_plateau_rejects_factor_of_one():
    with pytest.raises(ValueError, match="factor must be in \\(0, 1\\); received factor=1.0"):
        cb.ReduceLROnPlateau(factor=1.0)


# -- LearningRateScheduler ----------------------------------------------------------------------
def test_learning_rate_scheduler_two_and_one_argument_schedules():
    halve_after_first = cb.LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr * 0.5)
    model, history = fit([halve_after_first], [{}] * 3)
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])
    model, _ = fit([cb.LearningRateScheduler(lambda epoch: 1.0 / (epoch + 1))], [{}] * 4)
    assert model.optimizer.learning_rate == pytest.approx(0.25)


def test_learning_rate_scheduler_rejects_a_non_number():
    with pytest.raises(ValueError, match="must return a float; received \\[0.1\\]"):
        fit([cb.LearningRateScheduler(lambda epoch, lr: [0.1])], [{}])


# -- CSVLogger ---------------------------------------------------------------------------------
def test_csv_logger_writes_sorted_columns(tmp_path):
    path = tmp_path / "log.csv"
    logs = [{"loss": 0.5, "val_loss": 0.75, "accuracy": np.float32(0.25)}, {"loss": 0.25, "accuracy": 0.5}]
    fit([cb.CSVLogger(path)], logs)
    assert path.read_text() == ("epoch,accuracy,learning_rate,loss,val_loss\n"
                                "0,0.25,0.1,0.5,0.75\n"
                                "1,0.5,0.1,0.25,NA\n")


def test_csv_logger_separator_and_append(tmp_path):
    path = tmp_path / "log.csv"
    fit([cb.CSVLogger(path, separator=";")], [{"loss": 1.5}])
    fit([cb.CSVLogger(path, separator=";", append=True)], [{"loss": 0.5}])
    assert path.read_text() == "epoch;learning_rate;loss\n0;0.1;1.5\n0;0.1;0.5\n"
    fit([cb.CSVLogger(path)], [{"loss": 2.5}])
    assert path.read_text() == "epoch,learning_rate,loss\n0,0.1,2.5\n"


# -- TerminateOnNaN ----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_terminate_on_nan(bad, capsys):
    loss = lambda epoch, batch: bad if (epoch, batch) == (1, 0) else 1.0
    model, history = fit([cb.TerminateOnNaN()], [{}] * 4, batch_loss=loss)
    assert model.stop_training and history.epoch == [0, 1]
    assert "Batch 0: Invalid loss, terminating training" in capsys.readouterr().out


def test_terminate_on_nan_leaves_finite_losses_alone():
    model, history = fit([cb.TerminateOnNaN()], [{}] * 3)
    assert not model.stop_training and history.epoch == [0, 1, 2]


# -- ModelCheckpoint ---------------------------------------------------------------------------
def test_model_checkpoint_template_formatting(tmp_path):
    template = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.3f}.weights.h5")
    model, _ = fit([cb.ModelCheckpoint(template, save_weights_only=True)], val_losses(0.5, 0.6))
    assert model.saved == [("weights", str(tmp_path / "ckpt-01-0.500.weights.h5")),
                           ("weights", str(tmp_path / "ckpt-02-0.600.weights.h5"))]


def test_model_checkpoint_save_best_only(tmp_path):
    path = str(tmp_path / "best.h5")
    model, _ = fit([cb.ModelCheckpoint(path, save_best_only=True)], val_losses(0.5, 0.6, 0.4, 0.45))
    assert model.saved == [("model", path), ("model", path)]
    template = str(tmp_path / "acc-{epoch}.h5")
    logs = [{"val_accuracy": v} for v in (0.5, 0.4, 0.7, 0.7)]
    model, _ = fit([cb.ModelCheckpoint(template, monitor="val_accuracy", save_best_only=True)], logs)
    assert [p for _, p in model.saved] == [str(tmp_path / "acc-1.h5"), str(tmp_path / "acc-3.h5")]


def test_model_checkpoint_every_n_batches(tmp_path):
    template = str(tmp_path / "e{epoch}-b{batch}.weights.h5")
    model, _ = fit([cb.ModelCheckpoint(template, save_weights_only=True, save_freq=2)], [{}, {}], batches=3)
    names = [p.rsplit("/", 1)[-1] for _, p in model.saved]
    assert names == ["e1-b2.weights.h5", "e2-b1.weights.h5", "e2-b3.weights.h5"]


def test_model_checkpoint_creates_the_directory(tmp_path):
    path = tmp_path / "deep" / "er" / "m.weights.h5"
    fit([cb.ModelCheckpoint(path, save_weights_only=True)], [{}])
    assert (tmp_path / "deep" / "er").is_dir()


def test_model_checkpoint_missing_template_key(tmp_path):
    check = cb.ModelCheckpoint(str(tmp_path / "{val_acc:.2f}.h5"))
    with pytest.raises(KeyError, match="cannot fill 'val_acc'.*available: loss, val_loss, learning_rate"):
        fit([check], val_losses(0.5))


@pytest.mark.parametrize("kwargs, message", [
    ({"filepath": "m.keras", "save_weights_only": True}, "must end in .weights.h5 or .h5"),
    ({"filepath": "m.txt"}, "must end in .keras or .h5"),
    ({"filepath": "m.h5", "save_freq": "batch"}, "save_freq must be 'epoch' or a positive int"),
    ({"filepath": "m.h5", "mode": "best"}, "mode must be 'auto', 'min' or 'max'")])
def test_model_checkpoint_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        cb.ModelCheckpoint(**kwargs)
