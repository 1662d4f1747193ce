"""BackupAndRestore: Keras 3's arguments and files; a run that crashes and is started again with
the same callback ends with the weights of a run that never stopped, bit for bit, whether the
backup was taken at an epoch's end or in the middle of one."""
import json
import os

import numpy as np
import pytest

import gpunet as gn
from gpunet.callbacks import BackupAndRestore
from gpunet.layers import Dense

from test_resume import EPOCHS, FIT, Crash, build, crash_at, training_data, uninterrupted


def _crash_then_resume(tmp_path, optimizer, save_freq, crash_epoch, crash_batch, dropout_seed=None):
    backup = str(tmp_path / "backup")
    gn.utils.set_random_seed(5)
    gn.layers.clear_session()
    model = build(optimizer, dropout_seed=dropout_seed)
    with pytest.raises(Crash):
        model.fit(*training_data(), epochs=EPOCHS, callbacks=[BackupAndRestore(backup, save_freq=save_freq),
                                                               crash_at(crash_epoch, crash_batch)], **FIT)
    assert sorted(os.listdir(backup)) == ["latest.weights.h5", "training_metadata.json"]
    with open(os.path.join(backup, "training_metadata.json")) as f:
        metadata = json.load(f)

    gn.utils.set_random_seed(999)   # a new process: another seed, other names
    gn.layers.clear_session()
    Dense(7)
    resumed = build(optimizer, dropout_seed=dropout_seed)
    history = resumed.fit(*training_data(), epochs=EPOCHS, callbacks=[BackupAndRestore(backup, save_freq=save_freq)],
                          **FIT)
    assert not os.path.exists(backup)   # deleted at the end of a finished run (delete_checkpoint=True)
    return resumed, history, metadata


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop_centered"])
def test_resume_from_an_epoch_backup_is_bit_identical(tmp_path, optimizer):
    expected_weights, expected_history = uninterrupted(optimizer)
    resumed, history, metadata = _crash_then_resume(tmp_path, optimizer, "epoch", 2, 1)
    assert (metadata["epoch"], metadata["batch"]) == (2, 0)   # Keras's metadata: the next epoch
    for k, (got, want) in enumerate(zip(resumed.get_weights(), expected_weights)):
        np.testing.assert_array_equal(got, want, err_msg=f"weight {k}")
    assert history.epoch == [2, 3] and history.history["loss"] == expected_history["loss"][2:]


def test_resume_from_a_mid_epoch_backup_is_bit_identical(tmp_path):
    expected_weights, _ = uninterrupted("adam", dropout_seed=77)
    # 32 training rows in batches of 8: 4 batches an epoch; a backup every 3 batches (after batches
    # 3, 6, 9 of the run): the last before the crash in epoch 2's batch 2 is after epoch 2's batch 0.
    resumed, _, metadata = _crash_then_resume(tmp_path, "adam", 3, 2, 2, dropout_seed=77)
    assert (metadata["epoch"], metadata["batch"], metadata["gpunet"]["batches_done"]) == (2, 0, 1)
    for k, (got, want) in enumerate(zip(resumed.get_weights(), expected_weights)):
        np.testing.assert_array_equal(got, want, err_msg=f"weight {k}")


def test_finished_run_without_backup_trains_from_the_start(tmp_path):
    gn.utils.set_random_seed(5)
    model = build("adam")
    history = model.fit(*training_data(), epochs=2, callbacks=[BackupAndRestore(str(tmp_path / "b"),
                                                                                delete_checkpoint=False)], **FIT)
    assert history.epoch == [0, 1]
    with open(tmp_path / "b" / "training_metadata.json") as f:
        assert json.load(f)["epoch"] == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"backup_dir": ""}, "empty backup_dir"), ({"backup_dir": "b", "save_freq": "batch"}, "invalid value for argument save_freq"),
    ({"backup_dir": "b", "save_freq": 0}, "invalid value for argument save_freq")])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BackupAndRestore(**kwargs)
