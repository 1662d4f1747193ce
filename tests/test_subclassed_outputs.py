"""class M(gn.Model) whose call() returns a list, tuple or dict of tensors: fit with losses, loss
weights and metrics per output, evaluate, predict in call()'s structure, save and load weights; log
names as Keras 3.15 gives them (checked with KERAS_BACKEND=jax: a list or tuple logs '<loss>_loss'
and bare metric names, a repeated metric 'mae_1'; a dict '<key>_loss' and '<key>_<metric>')."""
import numpy as np
import pytest

import gpunet as gn
from checks import assert_close
from gpunet import layers


class TwoHeads(gn.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.body = layers.Dense(8, activation="relu")
        self.seg = layers.Dense(2)
        self.cls = layers.Dense(1)

    def call(self, inputs):
        h = self.body(inputs)
        return [self.seg(h), self.cls(h)]


class NamedHeads(TwoHeads):
    def call(self, inputs):
        h = self.body(inputs)
        return {"seg": self.seg(h), "cls": self.cls(h)}


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, (x[:, :2] * 0.5).astype(np.float32), x[:, 2:] ** 2


def test_list_outputs_fit_evaluate_predict_with_keras_log_names():
    x, y1, y2 = _data()
    model = TwoHeads()
    model.compile(gn.optimizers.Adam(0.02), loss=["mse", "mae"], loss_weights=[1.0, 0.5], metrics=[["mae"], ["mse"]])
    history = model.fit(x, [y1, y2], epochs=6, batch_size=8, verbose=0)
    assert set(history.history) - {"learning_rate"} == {"loss", "mse_loss", "mae_loss", "mae", "mse"}
    assert history.history["loss"][-1] < 0.7 * history.history["loss"][0]
    logs = model.evaluate(x, (y1, y2), verbose=0, return_dict=True)     # a tuple of targets as a list
    assert logs["loss"] == pytest.approx(logs["mse_loss"] + 0.5 * logs["mae_loss"], rel=1e-5)
    seg, cls = model.predict(x, verbose=0)
    assert seg.shape == (32, 2) and cls.shape == (32, 1)
    assert logs["mae"] == pytest.approx(float(np.mean(np.abs(seg - y1))), rel=1e-4)
    assert logs["mse"] == pytest.approx(float(np.mean((cls - y2) ** 2)), rel=1e-4)


def test_dict_outputs_fit_predict_and_weights_round_trip(tmp_path):
    x, y1, y2 = _data(seed=1)
    model = NamedHeads()
    model.compile("adam", loss={"seg": "mse", "cls": "mae"}, loss_weights={"cls": 0.5}, metrics={"seg": ["mae"]})
    history = model.fit(x, {"seg": y1, "cls": y2}, epochs=2, batch_size=16, verbose=0)
    assert set(history.history) - {"learning_rate"} == {"loss", "seg_loss", "cls_loss", "seg_mae"}
    predicted = model.predict(x, verbose=0)
    assert sorted(predicted) == ["cls", "seg"] and predicted["seg"].shape == (32, 2)
    assert sorted(model.predict_on_batch(x[:4])) == ["cls", "seg"]
    model.save_weights(tmp_path / "heads.weights.h5")
    other = NamedHeads()
    other.predict(x[:1], verbose=0)     # built by its first data, as in Keras
    other.load_weights(tmp_path / "heads.weights.h5")
    again = other.predict(x, verbose=0)
    for key in predicted:
        np.testing.assert_array_equal(again[key], predicted[key])


def test_compile_after_the_model_is_built_and_bad_loss_lists():
    x, y1, y2 = _data(seed=2)
    model = TwoHeads()
    model(x[:2])                        # built first: compile knows the outputs at once
    with pytest.raises(ValueError, match=r"compile: loss: the model has 2 outputs .*received a list of 3"):
        model.compile("sgd", loss=["mse", "mse", "mse"])
    model.compile("sgd", loss="mse")    # one loss for every output
    before = model.evaluate(x, [y1, y2], verbose=0, return_dict=True)
    assert set(before) == {"loss", "mse_loss", "mse_loss_1"}    # Keras would log both under one key
    assert before["loss"] == pytest.approx(before["mse_loss"] + before["mse_loss_1"], rel=1e-5)


def test_list_outputs_train_alike_on_kernels(kernel_backend):
    x, y1, y2 = _data(n=8, seed=3)

    def losses(name):
        with gn.backend.use(name):
            gn.utils.set_random_seed(7)
            model = TwoHeads()
            model.compile("sgd", loss=["mse", "mae"], loss_weights=[1.0, 0.5])
            history = model.fit(x, [y1, y2], epochs=2, batch_size=8, shuffle=False, verbose=0)
            return [history.history[k] for k in ("loss", "mse_loss", "mae_loss")]
    assert_close(np.array(losses(kernel_backend)), np.array(losses("numpy")), rtol=1e-4, atol=1e-5)


def test_dict_outputs_called_directly_and_in_a_gradient_tape():
    x, y1, _ = _data(n=4, seed=4)
    model = NamedHeads()
    eager = model(x)
    assert sorted(eager) == ["cls", "seg"] and eager["seg"].shape == (4, 2)
    with gn.GradientTape() as tape:
        out = model(gn.ops.convert_to_tensor(x), training=True)
        loss = gn.ops.mean(gn.ops.square(out["seg"] - y1))
    grads = tape.gradient(loss, model.trainable_weights)
    moved = [g is not None and bool(np.any(np.asarray(g))) for g in grads]
    assert moved == [True, True, True, True, False, False]   # body and seg learn; cls has no part in the loss


class TupleHeads(TwoHeads):
    def call(self, inputs):
        h = self.body(inputs)
        return self.seg(h), self.cls(h)


def test_tuple_outputs_repeated_metrics_and_loss_objects_named_as_keras():
    x, y1, y2 = _data(n=8, seed=5)
    model = TupleHeads()
    model.compile("sgd", loss=["mse", "mae"], metrics=[["mae"], ["mae"]])
    history = model.fit(x, (y1, y2), epochs=1, verbose=0)
    assert set(history.history) - {"learning_rate"} == {"loss", "mse_loss", "mae_loss", "mae", "mae_1"}
    assert isinstance(model.predict(x, verbose=0), tuple) and isinstance(model(x), tuple)
    model = TupleHeads()
    model.compile("sgd", loss=[gn.losses.MeanSquaredError(), gn.losses.MeanAbsoluteError()])
    logs = model.evaluate(x, [y1, y2], verbose=0, return_dict=True)
    assert set(logs) == {"loss", "mean_squared_error_loss", "mean_absolute_error_loss"}
