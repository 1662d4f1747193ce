"""fit / evaluate / predict fed by arrays, a gn.utils.PyDataset (in the loop, threads, processes)
and generators: the same numbers as arrays, Keras 3's steps rules, validation options, and the
errors for data that cannot work."""
import threading
import time

import numpy as np
import pytest

import gpunet as gn
from gpunet import layers

from checks import assert_close


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 4)).astype(np.float32) + y[:, None]
    return x, y


def _model():
    gn.utils.set_random_seed(7)
    model = gn.Sequential([layers.Input((4,)), layers.Dense(8, activation="tanh"), layers.Dense(3),
                           layers.Softmax()])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class Batches(gn.utils.PyDataset):
    def __init__(self, x, y, batch_size, sample_weight=None, jitter=0.0, fail_at=None, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size, self.sample_weight = x, y, batch_size, sample_weight
        self.jitter, self.fail_at, self.epochs_ended = jitter, fail_at, 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        if index == self.fail_at:
            raise KeyError(f"no file for batch {index}")
        if self.jitter:   # later batches finish first: delivery must still be in order
            time.sleep(self.jitter * ((len(self) - index) % 3))
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        if self.sample_weight is not None:
            return self.x[part], self.y[part], self.sample_weight[part]
        return self.x[part], self.y[part]

    def on_epoch_end(self):
        self.epochs_ended += 1


@pytest.mark.parametrize("settings", [{}, {"workers": 3, "jitter": 0.002},
                                      {"workers": 2, "use_multiprocessing": True}],
                         ids=["in-loop", "threads", "processes"])
def test_a_py_dataset_trains_as_the_same_arrays_do(settings):
    x, y = _data()
    expected = _model().fit(x, y, batch_size=5, epochs=2, shuffle=False, verbose=0).history
    dataset = Batches(x, y, 5, **settings)
    got = _model().fit(dataset, epochs=2, verbose=0).history
    for key in ("loss", "accuracy"):
        assert_close(got[key], expected[key], rtol=1e-6, atol=1e-7, what=key)
    assert dataset.epochs_ended == 2


def test_predict_and_evaluate_take_a_py_dataset_and_a_generator():
    x, y = _data()
    model = _model()
    expected = model.predict(x, batch_size=5, verbose=0)
    assert_close(model.predict(Batches(x, y, 5, workers=2), verbose=0), expected, rtol=1e-6, atol=1e-7)
    generator = (x[i:i + 5] for i in range(0, 24, 5))          # x alone
    assert_close(model.predict(generator, verbose=0), expected, rtol=1e-6, atol=1e-7)
    loss = model.evaluate(x, y, batch_size=5, verbose=0)
    assert_close(model.evaluate(Batches(x, y, 5), verbose=0), loss, rtol=1e-6)
    endless = ((x[:5], y[:5]) for _ in iter(int, 1))
    assert model.evaluate(endless, steps=2, verbose=0)[0] == pytest.approx(model.evaluate(x[:5], y[:5], verbose=0)[0])


def test_a_worker_error_names_the_batch_and_stops_the_workers():
    x, y = _data()
    before = threading.active_count()
    for settings in ({"workers": 3}, {"workers": 2, "use_multiprocessing": True}, {}):
        with pytest.raises(RuntimeError, match=r"Batches.__getitem__\(2\) raised KeyError: 'no file for batch 2' "
                                               r"\(batch 2"):
            _model().fit(Batches(x, y, 5, fail_at=2, **settings), epochs=1, verbose=0)
    time.sleep(0.05)
    assert threading.active_count() <= before


def test_generators_with_steps_per_epoch_and_their_errors():
    x, y = _data()

    def forever():
        while True:
            for i in range(0, 24, 8):
                yield x[i:i + 8], y[i:i + 8]
    history = _model().fit(forever(), steps_per_epoch=3, epochs=2, verbose=0).history
    expected = _model().fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    assert_close(history["loss"], expected["loss"], rtol=1e-6)
    finite = ((x[i:i + 8], y[i:i + 8]) for i in range(0, 24, 8))
    with pytest.raises(ValueError, match=r"fit: the generator ran out of data after 0 batch\(es\) in pass 2.*"
                                         r"pass steps_per_epoch"):
        _model().fit(finite, epochs=2, verbose=0)
    short = ((x[i:i + 8], y[i:i + 8]) for i in range(0, 24, 8))
    with pytest.raises(ValueError, match=r"ran out of data after 3 batch\(es\) in pass 1, which needs "
                                         r"steps_per_epoch=4"):
        _model().fit(short, steps_per_epoch=4, epochs=1, verbose=0)


def test_steps_per_epoch_on_arrays_continues_across_epochs_as_keras():
    x, y = _data()
    model = _model()
    seen = []
    record = gn.callbacks.LambdaCallback(on_train_batch_end=lambda step, logs: seen.append(step))
    # 3 batches a pass: epoch 2 gets the last one and stops there; epoch 3 starts a new pass.
    with pytest.warns(UserWarning, match=r"fit: the data ran out after 1 of steps_per_epoch=2 batches in this "
                                         r"epoch: a pass has 3 batches"):
        model.fit(x, y, batch_size=8, steps_per_epoch=2, epochs=3, shuffle=False, callbacks=[record], verbose=0)
    assert seen == [0, 1, 0, 0, 1]
    seen.clear()
    model.fit(x, y, batch_size=6, steps_per_epoch=2, epochs=2, callbacks=[record], verbose=0)
    assert seen == [0, 1, 0, 1]


def test_bad_batches_are_refused_with_their_index():
    x, y = _data()
    with pytest.raises(ValueError, match=r"fit: batch 0 of the generator: a batch must be x, \(x,\), \(x, y\) "
                                         r"or \(x, y, sample_weight\); received a tuple of 4 items"):
        _model().fit(iter([(x, y, y, y)]), verbose=0)
    with pytest.raises(ValueError, match=r"fit: batch 1.*expects input shape \(None, 4\); received shape \(8, 5\)"):
        _model().fit(iter([(x[:8], y[:8]), (np.ones((8, 5), np.float32), y[:8])]), verbose=0)
    with pytest.raises(ValueError, match=r"fit: batch 0: it has no targets"):
        _model().fit(iter([x[:8]]), verbose=0)
    with pytest.raises(ValueError, match=r"fit: y must be None when x is a Batches"):
        _model().fit(Batches(x, y, 8), y, verbose=0)
    with pytest.raises(ValueError, match=r"fit: validation_split needs arrays"):
        _model().fit(Batches(x, y, 8), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match=r"validation_freq must be a positive int"):
        _model().fit(x, y, validation_data=(x, y), validation_freq=0, verbose=0)


def test_validation_data_as_a_dataset_with_freq_steps_and_batch_size():
    x, y = _data()
    model = _model()
    history = model.fit(x, y, batch_size=8, epochs=4, validation_data=Batches(x, y, 6), validation_freq=2,
                        verbose=0).history
    assert len(history["loss"]) == 4 and len(history["val_loss"]) == 2
    assert history["val_loss"][-1] == pytest.approx(model.evaluate(x, y, verbose=0)[0], rel=1e-5)
    counted = []
    counter = gn.callbacks.LambdaCallback(on_test_batch_end=lambda step, logs: counted.append(step))
    model.fit(x, y, batch_size=8, epochs=1, validation_data=(x, y), validation_batch_size=10, callbacks=[counter],
              verbose=0)
    assert counted == [0, 1, 2]
    counted.clear()
    model.fit(x, y, batch_size=8, epochs=1, validation_data=Batches(x, y, 4), validation_steps=2,
              callbacks=[counter], verbose=0)
    assert counted == [0, 1]
    history = model.fit(x, y, epochs=3, validation_data=(x, y), validation_freq=[1, 3], verbose=0).history
    assert len(history["val_loss"]) == 2


def test_per_batch_sample_weights_and_class_weight_from_a_dataset():
    x, y = _data()
    w = np.linspace(0.1, 2.0, 24).astype(np.float32)
    arrays = _model().fit(x, y, batch_size=6, sample_weight=w, shuffle=False, epochs=1, verbose=0).history
    dataset = _model().fit(Batches(x, y, 6, sample_weight=w), epochs=1, verbose=0).history
    assert_close(dataset["loss"], arrays["loss"], rtol=1e-6)
    weights = {0: 0.5, 1: 2.0}
    arrays = _model().fit(x, y, batch_size=6, class_weight=weights, shuffle=False, verbose=0).history
    dataset = _model().fit(Batches(x, y, 6), class_weight=weights, verbose=0).history
    assert_close(dataset["loss"], arrays["loss"], rtol=1e-6)
