"""The training loop: one-batch methods, fit / evaluate / predict, validation, callbacks, progress,
reproducibility, the fused softmax cross-entropy, and every bad input's error."""
import io
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits

import gpunet as gn
from gpunet import layers

from checks import assert_close


def classifier(features=4, classes=3, hidden=8):
    model = gn.Sequential([layers.Input((features,)), layers.Dense(hidden, activation="tanh"),
                           layers.Dense(classes), layers.Softmax()])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def blobs(n=60, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.standard_normal((n, features)).astype(np.float32) + y[:, None].astype(np.float32)
    return x, y


def digits(n=None):
    data = load_digits()
    x, y = (data.data / 16.0).astype(np.float32), data.target
    return (x[:n], y[:n]) if n else (x, y)


# -- one batch --------------------------------------------------------------------------------
def test_train_on_batch_returns_the_loss_before_the_update():
    model, (x, y) = classifier(), blobs(16)
    before = model.test_on_batch(x, y)
    got = model.train_on_batch(x, y)
    assert isinstance(got, list) and len(got) == 2
    assert got[0] == pytest.approx(before[0], rel=1e-6)
    assert model.test_on_batch(x, y)[0] < before[0]


def test_train_on_batch_without_metrics_returns_a_float():
    model = gn.Sequential([layers.Input((4,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, _ = blobs(8)
    value = model.train_on_batch(x, np.ones((8, 1), np.float32))
    assert isinstance(value, float) and value > 0


def test_predict_equals_forward_and_evaluate_equals_the_loss_by_hand():
    model, (x, y) = classifier(), blobs(10)
    probs = model.predict(x, batch_size=3, verbose=0)
    assert probs.shape == (10, 3) and isinstance(probs, np.ndarray)
    assert_close(probs, np.asarray(model.forward(x)), rtol=1e-6, atol=1e-7, what="predict vs forward")
    assert_close(model.predict_on_batch(x), probs, rtol=1e-6, atol=1e-7)
    loss, accuracy = model.evaluate(x, y, batch_size=3, verbose=0)   # batches of 3, 3, 3, 1
    assert loss == pytest.approx(np.mean(-np.log(probs[np.arange(10), y])), rel=1e-5)
    assert accuracy == pytest.approx(np.mean(probs.argmax(axis=1) == y))
    logs = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "accuracy"} and logs["loss"] == pytest.approx(loss, rel=1e-5)


def test_fused_softmax_cross_entropy_is_finite_for_logits_of_1e4():
    model = gn.Sequential([layers.Input((2,)), layers.Dense(3, use_bias=False), layers.Softmax()])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.set_weights([np.array([[1e4, -1e4, 0.0], [0.0, 0.0, 0.0]], np.float32)])
    x, y = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32), np.array([1, 0])
    # True cross-entropies 2e4 and 0: a softmax-then-log would clip or give inf.
    assert model.train_on_batch(x, y) == pytest.approx(1e4, rel=1e-4)
    assert np.isfinite(model.get_weights()[0]).all()
    assert np.isfinite(model.test_on_batch(x, y))


def test_fused_and_unfused_training_agree_on_ordinary_logits():
    x, y = blobs(12)
    results = []
    for fused in (True, False):
        gn.utils.set_random_seed(3)
        head = [layers.Softmax()] if fused else [PlainSoftmax()]
        model = gn.Sequential([layers.Input((4,)), layers.Dense(3), *head])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        assert model.fusable_softmax is fused
        results.append((model.train_on_batch(x, y), model.get_weights()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        assert_close(a, b, rtol=1e-4, atol=1e-6)


class PlainSoftmax(layers.Layer):
    """A softmax that does not offer fusion: the loop must take its output and backward."""

    def forward(self, x, training=False):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        self.y = e / e.sum(axis=-1, keepdims=True)
        return self.y

    def backward(self, dy):
        return self.y * (dy - np.sum(dy * self.y, axis=-1, keepdims=True))


# -- fit --------------------------------------------------------------------------------------
def test_fit_returns_history_with_keys_per_epoch():
    model, (x, y) = classifier(), blobs(40)
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    assert history is model.history and history.epoch == [0, 1, 2]
    assert set(history.history) == {"loss", "accuracy", "learning_rate"}
    assert all(len(v) == 3 for v in history.history.values())
    assert history.history["learning_rate"] == pytest.approx([0.001] * 3)
    again = model.fit(x, y, epochs=4, initial_epoch=2, verbose=0, validation_data=(x[:5], y[:5]))
    assert again.epoch == [2, 3] and len(again.history["val_loss"]) == 2
    assert set(again.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}


def test_validation_split_takes_the_last_samples_before_shuffling():
    model, (x, y) = classifier(), blobs(50)
    steps = []
    record = gn.callbacks.LambdaCallback(on_batch_end=lambda batch, logs: steps.append(batch))
    history = model.fit(x, y, batch_size=10, epochs=1, validation_split=0.2, callbacks=[record], verbose=0)
    assert steps == [0, 1, 2, 3]                     # 40 training samples in batches of 10
    loss, accuracy = model.evaluate(x[40:], y[40:], verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(loss, rel=1e-6)
    assert history.history["val_accuracy"][0] == pytest.approx(accuracy)


def test_validation_data_is_evaluated_each_epoch():
    model, (x, y) = classifier(), blobs(30)
    xv, yv = blobs(9, seed=1)
    history = model.fit(x, y, epochs=2, validation_data=(xv, yv), verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(model.evaluate(xv, yv, verbose=0)[0], rel=1e-6)


def test_loss_goes_down_on_real_data():
    x, y = digits()
    model = gn.Sequential([layers.Input((64,)), layers.Dense(32, activation="relu"), layers.Dropout(0.1),
                           layers.Dense(10, activation="softmax")])
    model.compile(optimizer=gn.optimizers.Adam(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x[:600], y[:600], batch_size=32, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.2 * losses[0] and losses[4] < losses[0]
    assert model.evaluate(x[600:], y[600:], verbose=0)[1] > 0.85   # about 0.9 measured


def _seeded_run():
    gn.utils.set_random_seed(42)
    gn.layers.clear_session()
    x, y = digits(200)
    model = gn.Sequential([layers.Input((64,)), layers.Dense(16), layers.BatchNormalization(),
                           layers.ReLU(), layers.Dropout(0.3), layers.Dense(10), layers.Softmax()])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, verbose=0)
    return model.get_weights(), history.history


def test_two_seeded_runs_are_bit_identical():
    (weights_a, history_a), (weights_b, history_b) = _seeded_run(), _seeded_run()
    assert history_a == history_b
    assert all(np.array_equal(a, b) for a, b in zip(weights_a, weights_b))


def test_shuffle_draws_from_the_gpunet_generator():
    x, y = digits(64)

    def first_weights(seed, shuffle):
        gn.utils.set_random_seed(0)
        model = gn.Sequential([layers.Input((64,)), layers.Dense(10, activation="softmax")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        gn.utils.set_random_seed(seed)
        model.fit(x, y, batch_size=8, epochs=1, shuffle=shuffle, verbose=0)
        return model.get_weights()[0]

    assert np.array_equal(first_weights(1, False), first_weights(2, False))
    assert not np.array_equal(first_weights(1, True), first_weights(2, True))


def test_two_input_model_trains():
    left, right = gn.Input((3,)), gn.Input((2,))
    out = layers.Dense(1)(layers.Concatenate()([layers.Dense(4, activation="tanh")(left), right]))
    model = gn.Model([left, right], out)
    model.compile(optimizer=gn.optimizers.Adam(learning_rate=0.05), loss="mse")
    rng = np.random.default_rng(0)
    xl, xr = rng.standard_normal((64, 3)).astype(np.float32), rng.standard_normal((64, 2)).astype(np.float32)
    y = (xl.sum(axis=1, keepdims=True) - xr[:, :1]).astype(np.float32)
    history = model.fit([xl, xr], y, batch_size=16, epochs=20, verbose=0)
    assert history.history["loss"][-1] < 0.05 * history.history["loss"][0]
    assert model.predict([xl, xr], verbose=0).shape == (64, 1)


# -- callbacks ----------------------------------------------------------------------------------
class Recorder(gn.callbacks.Callback):
    def __init__(self, stop_at=None):
        super().__init__()
        self.calls, self.stop_at = [], stop_at

    def __getattribute__(self, name):
        if name.startswith("on_") and name not in ("on_batch_begin", "on_batch_end"):
            object.__getattribute__(self, "calls").append(name)
        return object.__getattribute__(self, name)

    def on_epoch_end(self, epoch, logs=None):
        self.last_logs = dict(logs)
        if epoch == self.stop_at:
            self.model.stop_training = True


def test_callback_hooks_come_in_keras_order():
    model, (x, y) = classifier(), blobs(20)
    recorder = Recorder()
    model.fit(x, y, batch_size=10, epochs=1, validation_split=0.5, callbacks=[recorder], verbose=0)
    assert recorder.calls == ["on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_train_batch_end",
                              "on_test_begin", "on_test_batch_begin", "on_test_batch_end", "on_test_end",
                              "on_epoch_end", "on_train_end"]
    assert list(recorder.last_logs) == ["loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
    assert recorder.model is model


def test_stop_training_ends_fit_after_the_epoch():
    model, (x, y) = classifier(), blobs(20)
    history = model.fit(x, y, epochs=10, callbacks=[Recorder(stop_at=1)], verbose=0)
    assert history.epoch == [0, 1]


def test_early_stopping_restores_best_weights():
    model, (x, y) = classifier(), blobs(40)
    stop = gn.callbacks.EarlyStopping(monitor="loss", patience=0, restore_best_weights=True)
    history = model.fit(x, y, epochs=3, callbacks=[stop], verbose=0)
    assert len(history.epoch) == 3          # loss keeps falling: no early stop
    assert model.evaluate(x, y, verbose=0)[0] <= history.history["loss"][0]


# -- progress ---------------------------------------------------------------------------------
@pytest.mark.parametrize("verbose, lines", [(0, 0), (2, 3), (1, 3), ("auto", 3)])
def test_progress_prints_one_line_per_epoch_off_a_terminal(capsys, verbose, lines):
    model, (x, y) = classifier(), blobs(20)
    model.fit(x, y, batch_size=10, epochs=3, verbose=verbose)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == lines
    for epoch, line in enumerate(out, 1):
        assert line.startswith(f"Epoch {epoch}/3 - 2 steps - ") and "loss: " in line and "accuracy: " in line


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_draws_a_tqdm_bar_on_a_terminal(monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    model, (x, y) = classifier(), blobs(20)
    model.fit(x, y, batch_size=10, epochs=2, verbose=1, validation_split=0.5)
    text = terminal.getvalue()
    assert "\rEpoch 1/2:" in text and "0/1 [" in text and "step/s" in text   # the bar, drawn in place
    lines = [l.split("\r")[-1] for l in text.split("\n")]   # what stays on screen: one line per epoch
    assert [l[:18] for l in lines if l] == ["Epoch 1/2 - 1 step", "Epoch 2/2 - 1 step"]
    assert all("val_accuracy: " in l for l in lines if l)


def test_evaluate_and_predict_progress(capsys):
    model, (x, y) = classifier(), blobs(20)
    model.evaluate(x, y, batch_size=8, verbose=2)
    model.predict(x, batch_size=8, verbose=2)
    assert model.predict(x, verbose=0) is not None
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("evaluate - 3 steps - ") and "loss: " in out[0]
    assert out[1].startswith("predict - 3 steps - ") and len(out) == 2


# -- bad input ----------------------------------------------------------------------------------
def _bad_fit(kind):
    model, (x, y) = classifier(), blobs(12)
    if kind == "lengths":
        return model.fit, (x, y[:10]), {}, r"x has 12 samples but y has 10"
    if kind == "nan":
        x[3, 2] = np.nan
        return model.fit, (x, y), {}, r"x contains nan at index \(3, 2\)"
    if kind == "inf":
        x[5, 0] = -np.inf
        return model.evaluate, (x, y), {}, r"x contains -inf at index \(5, 0\)"
    if kind == "shape":
        return (model.fit, (x[:, :3], y), {},
                r"Model 'sequential' expects input shape \(None, 4\); received shape \(12, 3\)")
    if kind == "targets":
        return model.fit, (x, np.eye(3)[y]), {}, r"fit: y.*shape"
    if kind == "split":
        return (model.fit, (x, y), {"validation_split": 1.5},
                r"validation_split must be a fraction in \[0, 1\); received 1.5")
    if kind == "split_empty":
        return model.fit, (x, y), {"validation_split": 0.01}, r"leaves 12 for training and 0 for validation"
    if kind == "validation_data":
        return model.fit, (x, y), {"validation_data": x}, r"validation_data must be a tuple \(x_val, y_val\)"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["lengths", "nan", "inf", "shape", "targets", "split", "split_empty",
                                  "validation_data"])
def test_bad_data_is_refused_with_a_clear_error(kind):
    method, args, kwargs, message = _bad_fit(kind)
    with pytest.raises(ValueError, match=message):
        method(*args, verbose=0, **kwargs)


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, "32"])
@pytest.mark.parametrize("method", ["fit", "evaluate", "predict"])
def test_bad_batch_size(method, batch_size):
    model, (x, y) = classifier(), blobs(12)
    args = (x,) if method == "predict" else (x, y)
    with pytest.raises(ValueError, match=rf"batch_size must be a positive integer; received {batch_size!r}"):
        getattr(model, method)(*args, batch_size=batch_size, verbose=0)


def test_fit_and_evaluate_before_compile_are_refused():
    model = gn.Sequential([layers.Input((4,)), layers.Dense(2)], name="net")
    x, y = blobs(6)
    for method in ("fit", "evaluate", "train_on_batch"):
        with pytest.raises(RuntimeError, match=rf"Model 'net' must be compiled before {method}\(\)"):
            getattr(model, method)(x, y)
    assert model.predict(x, verbose=0).shape == (6, 2)     # predict needs no compile
    model.compile(optimizer="sgd")
    with pytest.raises(RuntimeError, match="compiled without a loss"):
        model.fit(x, y, verbose=0)


@pytest.mark.parametrize("settings, message", [
    ({"optimizer": "adamw2", "loss": "mse"}, "Unknown optimizer 'adamw2'"),
    ({"loss": "mean_squared_errror"}, "Unknown loss 'mean_squared_errror'"),
    ({"loss": "mse", "metrics": ["acuracy"]}, "Unknown metric 'acuracy'"),
])
def test_unknown_names_in_compile_surface(settings, message):
    with pytest.raises(ValueError, match=message):
        classifier().compile(**settings)


def test_bad_verbose_is_refused():
    model, (x, y) = classifier(), blobs(6)
    with pytest.raises(ValueError, match="verbose must be 0, 1, 2 or 'auto'; received 3"):
        model.fit(x, y, verbose=3)


def test_fit_on_a_two_output_model_with_one_target_array_is_refused_clearly():
    # (two-output training itself: tests/test_multi_output.py)
    inp = gn.Input((3,))
    model = gn.Model(inp, [layers.Dense(2)(inp), layers.Dense(1)(inp)], name="two")
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"fit: the model has 2 outputs \['dense', 'dense_1'\]; y must be a list"):
        model.fit(np.ones((4, 3)), np.ones((4, 1)), verbose=0)
