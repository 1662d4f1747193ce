"""Checkpoints, and resuming from them: a run stopped after epoch k and resumed with load_model +
fit(initial_epoch=k) ends with bit-identical weights to a run that was never stopped."""
import os

import numpy as np
import pytest

import gpunet as gn
from gpunet import saving
from gpunet.callbacks import LambdaCallback, ModelCheckpoint
from gpunet.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten

EPOCHS = 4


OPTIMIZERS = {
    "adam": lambda: gn.optimizers.Adam(0.01),
    "sgd_nesterov": lambda: gn.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "rmsprop_centered": lambda: gn.optimizers.RMSprop(0.005, momentum=0.5, centered=True),
    "adamw_schedule": lambda: gn.optimizers.AdamW(gn.optimizers.ExponentialDecay(0.01, 3, 0.7), amsgrad=True),
}


def training_data():
    rng = np.random.default_rng(11)
    return rng.standard_normal((40, 6, 6, 2)).astype("float32"), rng.integers(0, 3, 40)


def build(optimizer, dropout=True, dropout_seed=None):
    """Conv, batch norm (moving statistics), dropout (draws from gpunet's generator, or counts
    its calls from ``dropout_seed``), dense."""
    layers = [gn.Input((6, 6, 2)), Conv2D(4, 3, activation="relu"), BatchNormalization()]
    layers += [Dropout(0.3, seed=dropout_seed)] if dropout else []
    model = gn.Sequential(layers + [Flatten(), Dense(3)])
    model.compile(optimizer=OPTIMIZERS[optimizer](), loss=gn.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


FIT = dict(batch_size=8, validation_split=0.2, verbose=0)


class Crash(Exception):
    pass


def crash_at(epoch, batch):
    """A callback that dies in the middle of an epoch, after that epoch's first updates."""
    state = {"epoch": -1}

    def on_batch_end(b, logs):
        if state["epoch"] == epoch and b == batch:
            raise Crash(f"simulated crash in epoch {epoch}, batch {batch}")
    return LambdaCallback(on_epoch_begin=lambda e, logs: state.update(epoch=e), on_train_batch_end=on_batch_end)


def uninterrupted(optimizer, shuffle=True, dropout=True, dropout_seed=None):
    gn.utils.set_random_seed(5)
    gn.layers.clear_session()
    model = build(optimizer, dropout, dropout_seed)
    history = model.fit(*training_data(), epochs=EPOCHS, shuffle=shuffle, **FIT)
    return model.get_weights(), history.history


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_resume_from_full_model_checkpoint_is_bit_identical(tmp_path, optimizer):
    expected_weights, expected_history = uninterrupted(optimizer)

    gn.utils.set_random_seed(5)
    gn.layers.clear_session()
    model = build(optimizer)
    checkpoint = ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}.h5"), save_best_only=False)
    with pytest.raises(Crash):
        model.fit(*training_data(), epochs=EPOCHS, callbacks=[checkpoint, crash_at(2, 1)], **FIT)
    assert sorted(os.listdir(tmp_path)) == ["ckpt-01.h5", "ckpt-02.h5"]

    gn.utils.set_random_seed(999)   # a new process: other seed, other names
    gn.layers.clear_session()
    Dense(7)
    resumed = saving.load_model(str(tmp_path / "ckpt-02.h5"))
    history = resumed.fit(*training_data(), epochs=EPOCHS, initial_epoch=2, **FIT)

    for k, (got, want) in enumerate(zip(resumed.get_weights(), expected_weights)):
        np.testing.assert_array_equal(got, want, err_msg=f"weight {k} after resuming")
    for key, values in history.history.items():
        assert values == expected_history[key][2:], key


def test_resume_with_a_seeded_dropout_is_bit_identical(tmp_path):
    """Dropout(seed=s) uses seed s + k on its k-th training call: the file keeps k."""
    expected_weights, _ = uninterrupted("adam", dropout_seed=77)

    gn.utils.set_random_seed(5)
    gn.layers.clear_session()
    model = build("adam", dropout_seed=77)
    model.fit(*training_data(), epochs=2, **FIT)
    model.save(str(tmp_path / "after-2.h5"))

    gn.utils.set_random_seed(999)
    resumed = saving.load_model(str(tmp_path / "after-2.h5"))
    dropout = next(layer for layer in resumed.layers if isinstance(layer, Dropout))
    assert dropout.seed == 77 and dropout.random_state() == {"calls": 2 * 4}   # 32 training rows, batch 8
    resumed.fit(*training_data(), epochs=EPOCHS, initial_epoch=2, **FIT)
    for k, (got, want) in enumerate(zip(resumed.get_weights(), expected_weights)):
        np.testing.assert_array_equal(got, want, err_msg=f"weight {k} after resuming")


def test_resume_from_weights_only_checkpoint_without_shuffling(tmp_path):
    """A .weights.h5 checkpoint holds the optimizer state (Keras's optimizer/vars) but not the
    generator: with shuffle=False and no dropout, loading it into a compiled model resumes exactly."""
    expected_weights, _ = uninterrupted("adam", shuffle=False, dropout=False)

    gn.utils.set_random_seed(5)
    gn.layers.clear_session()
    model = build("adam", dropout=False)
    checkpoint = ModelCheckpoint(str(tmp_path / "w-{epoch}.weights.h5"), save_weights_only=True)
    model.fit(*training_data(), epochs=3, shuffle=False, callbacks=[checkpoint], **FIT)

    gn.utils.set_random_seed(123)
    fresh = build("adam", dropout=False)
    saving.load_weights(fresh, str(tmp_path / "w-3.weights.h5"))
    assert fresh.optimizer.iterations == 3 * 4
    fresh.fit(*training_data(), epochs=EPOCHS, initial_epoch=3, shuffle=False, **FIT)
    for got, want in zip(fresh.get_weights(), expected_weights):
        np.testing.assert_array_equal(got, want)


def test_checkpoint_filepath_template_with_metrics(tmp_path):
    gn.utils.set_random_seed(5)
    model = build("adam")
    template = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.3f}.weights.h5")
    history = model.fit(*training_data(), epochs=3, callbacks=[ModelCheckpoint(template, save_weights_only=True)],
                        **FIT).history
    expected = [f"ckpt-{e + 1:02d}-{history['val_loss'][e]:.3f}.weights.h5" for e in range(3)]
    assert sorted(os.listdir(tmp_path)) == sorted(expected)
    final = build("adam")
    saving.load_weights(final, str(tmp_path / expected[-1]))
    for got, want in zip(final.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("monitor, mode, pick", [("val_loss", "min", np.argmin), ("loss", "max", np.argmax),
                                                 ("val_accuracy", "auto", np.argmax)])
def test_save_best_only_keeps_the_best_epoch(tmp_path, monitor, mode, pick):
    gn.utils.set_random_seed(5)
    model = build("adam")
    snapshots = []
    keep = LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(model.get_weights()))
    best = ModelCheckpoint(str(tmp_path / "best.h5"), monitor=monitor, mode=mode, save_best_only=True)
    history = model.fit(*training_data(), epochs=EPOCHS, callbacks=[best, keep], **FIT).history
    best_epoch = int(pick(history[monitor]))   # the first of equal values, as "improves" means strictly
    loaded = saving.load_model(str(tmp_path / "best.h5"))
    assert loaded.optimizer is not None        # save_weights_only=False: a whole, compiled model
    for got, want in zip(loaded.get_weights(), snapshots[best_epoch]):
        np.testing.assert_array_equal(got, want)
