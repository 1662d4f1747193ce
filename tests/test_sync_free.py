"""Training, test and predict steps never wait for the device (issue 12, item 1).

Proved two ways on the kernel backends: under strict-sync mode (``backend.strict_sync()``: on
cudasim a device-to-host read inside a step raises; on cuda the step runs under
``cupyx.allow_synchronize(False)``), and by the profiler's count of syncs per step.
"""
import numpy as np
import pytest

import gpunet as gn
from gpunet import backend
from gpunet.backend import cupy_device
from gpunet.callbacks.base import reads_batch_logs

BACKENDS = ["cudasim", pytest.param("cuda", marks=pytest.mark.cuda)]


def _use(name):
    if name == "cuda" and not cupy_device.usable():
        pytest.skip(f"the cuda half needs a GPU: {cupy_device.why_unusable()}")
    if name == "cuda" and not hasattr(__import__("cupyx"), "allow_synchronize"):
        pytest.skip("this CuPy has no cupyx.allow_synchronize, which the cuda half runs under")
    return backend.use(name)


def _cnn(loss, metrics, classes=3):
    model = gn.Sequential([
        gn.layers.Input((6, 6, 2)),
        gn.layers.Conv2D(3, 3, padding="same", activation="relu"),
        gn.layers.BatchNormalization(),
        gn.layers.MaxPooling2D(),
        gn.layers.Flatten(),
        gn.layers.Dropout(0.2),
        gn.layers.Dense(classes),
        gn.layers.Softmax(),
    ])
    model.compile("adam", loss, metrics=metrics)
    return model


def _data(rng, count=20, classes=3):
    return rng.standard_normal((count, 6, 6, 2)).astype(np.float32), rng.integers(0, classes, count)


@pytest.mark.parametrize("name", BACKENDS)
def test_fit_evaluate_predict_run_under_strict_sync(name, rng):
    x, y = _data(rng)
    with _use(name):
        model = _cnn("sparse_categorical_crossentropy", ["accuracy"])
        with backend.strict_sync():
            history = model.fit(x, y, batch_size=6, epochs=2, verbose=0, validation_data=(x[:8], y[:8]))
            loss, accuracy = model.evaluate(x, y, batch_size=8, verbose=0)
            predictions = model.predict(x, batch_size=8, verbose=0)
        # The logs read after the steps are the real values: evaluate again without strict mode.
        assert np.allclose([loss, accuracy], model.evaluate(x, y, batch_size=8, verbose=0), rtol=1e-6)
    assert len(history.history["loss"]) == 2 and np.all(np.isfinite(history.history["val_loss"]))
    assert predictions.shape == (20, 3) and np.allclose(predictions.sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("name", BACKENDS)
def test_regression_losses_and_metrics_under_strict_sync(name, rng):
    x = rng.standard_normal((12, 6, 6, 2)).astype(np.float32)
    y = rng.random((12, 1)).astype(np.float32)
    with _use(name):
        model = gn.Sequential([gn.layers.Input((6, 6, 2)), gn.layers.Flatten(), gn.layers.Dense(1),
                               gn.layers.Activation("sigmoid")])
        model.compile("sgd", "binary_crossentropy", metrics=["mae", "mse", "binary_accuracy"])
        with backend.strict_sync():
            model.fit(x, y, batch_size=4, epochs=1, verbose=0)
            logs = model.evaluate(x, y, batch_size=5, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "mae", "mse", "binary_accuracy"} and all(np.isfinite(list(logs.values())))


def test_strict_mode_raises_on_reads_inside_a_step_only():
    with backend.use("cudasim"):
        device = backend.current()
        value = device.asarray(np.array([2.5], np.float32)).reshape(())
        with backend.strict_sync():
            with backend.step("train"):
                for read in (lambda: float(value), lambda: int(value), lambda: bool(value),
                             lambda: value.item(), lambda: device.to_numpy(value), lambda: device.synchronize()):
                    with pytest.raises(backend.SyncError, match=r"inside a train step"):
                        read()
            assert float(value) == 2.5            # between steps a read is allowed
        with backend.step("train"):
            assert float(value) == 2.5            # and without strict mode


def test_a_read_in_the_step_is_caught(rng):
    """A metric that reads its batch total on the host (as the loop did before) fails strict mode."""
    class HostReadingAccuracy(gn.metrics.SparseCategoricalAccuracy):
        def update_state(self, y_true, y_pred):
            total, count = self._batch(self._targets(y_true, y_pred), y_pred)
            self.total = self.total + float(total)
            self.count += count

    x, y = _data(rng, count=8)
    with backend.use("cudasim"):
        model = _cnn("sparse_categorical_crossentropy", [HostReadingAccuracy()])
        with backend.strict_sync(), pytest.raises(backend.SyncError, match=r"float\(\) of a cudasim device array"):
            model.fit(x, y, batch_size=4, epochs=1, verbose=0)


def test_profiler_counts_no_sync_per_step_and_the_reads_after(rng):
    x, y = _data(rng)
    with backend.use("cudasim"):
        model = _cnn("sparse_categorical_crossentropy", ["accuracy"])
        with gn.profiler.profile() as prof:
            model.fit(x, y, batch_size=10, epochs=1, verbose=0)
        assert prof.syncs_per_step == 0 and prof.per_step("d2h_bytes") == 0
        assert len(prof.steps) == 2 and prof.launches_per_step >= 15
        # Both batches went up (x float32 + int32 labels), the first before the first step; and
        # Adam's one launch for all 6 weights reads a table of their addresses (parameter,
        # gradient, 2 slots: 6 x 4 uint64) and one of sizes (6 int32), uploaded asynchronously
        # with the first step, the address table again in a step whose gradients moved; and
        # Adam's device step state (7 float64) and its settings (9 float64), once.
        data, addresses, sizes, step_state = 20 * (6 * 6 * 2 * 4 + 4), 6 * 4 * 8, 6 * 4, (7 + 9) * 8
        assert data + addresses + sizes + step_state <= prof.h2d_bytes <= data + 2 * addresses + sizes + step_state
        # The epoch's logs: the loss and the accuracy, each read once after the steps.
        assert prof.syncs == 2 and prof.d2h_bytes == 2 * 2 * 8
        table = prof.summary()
    assert "conv2d_forward" in table and "| train | 2 |" in table and "wall" in table


def test_batch_logs_are_read_only_for_callbacks_that_read_them(rng, tmp_path):
    x, y = _data(rng)
    seen = []
    reading = gn.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(logs["loss"]))
    with backend.use("cudasim"):
        model = _cnn("sparse_categorical_crossentropy", [])
        for callbacks, syncs in (([gn.callbacks.EarlyStopping(monitor="loss")], 1), ([reading], 2)):
            with gn.profiler.profile() as prof:
                model.fit(x, y, batch_size=10, epochs=1, verbose=0, callbacks=callbacks)
            # Never inside a step; between steps once per batch for the callback that reads batch
            # logs, else once, at the end of the epoch.
            assert prof.syncs_per_step == 0 and prof.syncs == syncs
    assert len(seen) == 2 and all(np.isfinite(seen))
    checkpoint = lambda freq: gn.callbacks.ModelCheckpoint(str(tmp_path / "m.weights.h5"), save_freq=freq,
                                                           save_weights_only=True)
    assert [reads_batch_logs(c, "train") for c in (checkpoint("epoch"), checkpoint(2), reading,
                                                   gn.callbacks.TerminateOnNaN(), gn.callbacks.CSVLogger(
                                                       str(tmp_path / "log.csv")))] == [False, True, True, True, False]


def test_upload_async_orders_the_copy_by_its_event():
    """cudasim's copy stream runs a copy only when the compute stream waits for its event: an
    array read before ``wait_events`` still holds the NaN fill of an unwritten array."""
    with backend.use("cudasim"):
        device = backend.current()
        host = np.arange(6, dtype=np.float64).reshape(2, 3)
        array, event = device.upload_async(host, np.float32)
        assert array.dtype == np.float32 and np.isnan(array.view(np.ndarray)).all() and not event.done
        host[:] = -1                            # the staging copy was taken at upload time
        device.wait_events([event])
        assert event.done and np.array_equal(array.view(np.ndarray), np.arange(6).reshape(2, 3))
