"""compile(jit_compile=True) beyond fit's single-input step: evaluate's and predict's steps, models
with several inputs or outputs (functional and subclassed), captured and replayed on cudasim and
equal to the eager run bit for bit.

36 rows in batches of 8: four of 8 and a short one of 4. Each batch size warms up eagerly once,
is captured at its next batch and replayed from then on.
"""
import numpy as np
import pytest

import gpunet as gn
from gpunet import backend, ops, optimizers

L = gn.layers
GRAPH = ("(graph)", "cuda_graph")


def _data(samples=36, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((samples, 6)).astype(np.float32), rng.standard_normal((samples, 4)).astype(np.float32),
            rng.integers(0, 3, samples))


def _one_output(jit):
    gn.utils.set_random_seed(0)
    model = gn.Sequential([L.Input((6,)), L.Dense(8), L.BatchNormalization(), L.Activation("relu"), L.Dropout(0.3, seed=3),
                           L.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=jit)
    return model


def _launches(prof, kind):
    """Launches of each step of ``kind`` (a replayed step: the graph, one host call, plus its eager part)."""
    return [s.launches for s in prof.steps if s.kind == kind]


def test_evaluate_and_predict_replay_equal_eager():
    x, _, y = _data()
    results = {}
    with backend.use("cudasim"):
        for jit in (False, True):
            model = _one_output(jit)
            model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
            with gn.profiler.profile() as prof:
                scores = [model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True) for _ in range(2)]
                outputs = [model.predict(x, batch_size=8, verbose=0) for _ in range(2)]
            results[jit] = scores, outputs, prof
    (eager_scores, eager_out, eager_prof), (jit_scores, jit_out, prof) = results[False], results[True]
    assert jit_scores == eager_scores and eager_scores[0] == eager_scores[1]
    for a, b in zip(eager_out, jit_out):
        np.testing.assert_array_equal(a, b)
    # per call: batches 0-3 of 8 and 4 (of 4). The first evaluate / predict warms size 8 up at
    # batch 0, captures it at 1, replays 1-3 and warms 4 up; the second replays 0-3 and captures 4.
    assert prof.kernels[GRAPH].launches == 2 * (3 + 5)
    test, predict = _launches(prof, "test"), _launches(prof, "predict")
    replayed = [test[k] for k in (1, 2, 3, 5, 6, 7, 8, 9)]
    print(f"test step launches: eager {_launches(eager_prof, 'test')[2]}, replayed {replayed}; "
          f"predict step: eager {_launches(eager_prof, 'predict')[2]}, replayed {predict[1]}")
    assert replayed == [2] * 8, "the graph and the accuracy update"
    assert [predict[k] for k in (1, 2, 3, 5, 6, 7, 8, 9)] == [1] * 8, "the graph alone"
    assert _launches(eager_prof, "test")[2] > 4 and _launches(eager_prof, "predict")[2] > 3


def _two_in_two_out(jit):
    gn.utils.set_random_seed(0)
    a, b = L.Input((6,), name="a"), L.Input((4,), name="b")
    h = L.Dense(8, activation="relu")(L.Concatenate()([L.Dense(8)(a), b]))
    cls, reg = L.Dense(3, activation="softmax", name="cls")(h), L.Dense(2, name="reg")(h)
    model = gn.Model([a, b], [cls, reg])
    model.compile(optimizer=optimizers.Adam(0.01), loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["accuracy"]}, jit_compile=jit)
    return model


def test_several_inputs_and_outputs_replay_equal_eager():
    """fit (with validation) and predict of a two-input, two-output functional model."""
    x, z, y = _data(24)
    targets = [y, np.stack([x[:, 0], z[:, 1]], axis=1)]
    runs = {}
    with backend.use("cudasim"):
        for jit in (False, True):
            model = _two_in_two_out(jit)
            with gn.profiler.profile() as prof:
                history = model.fit([x, z], targets, batch_size=8, epochs=1, verbose=0, shuffle=False,
                                    validation_data=([x[:16], z[:16]], [t[:16] for t in targets]))
                out = model.predict([x, z], batch_size=8, verbose=0)
            runs[jit] = history.history, out, model.get_weights(), prof
    (eager_logs, eager_out, eager_weights, _), (jit_logs, jit_out, jit_weights, prof) = runs[False], runs[True]
    assert jit_logs == eager_logs and set(jit_logs) >= {"cls_loss", "reg_loss", "cls_accuracy", "val_reg_loss"}
    for a, b in zip(eager_weights + eager_out, jit_weights + jit_out):
        np.testing.assert_array_equal(a, b)
    # train: 3 steps of 8, the first a warm-up; validation: 2 steps, 1 replay; predict: 2 replays.
    assert prof.kernels[GRAPH].launches == 2 + 1 + 2
    assert _launches(prof, "train")[2] == 2, "the graph + the accuracy update"


class TwoInTwoOut(gn.Model):
    """A subclassed model with two inputs and two outputs (a dict)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.left, self.right = L.Dense(8, activation="relu"), L.Dense(8, activation="relu")
        self.cls, self.reg = L.Dense(3, activation="softmax"), L.Dense(1)

    def call(self, inputs):
        x, z = inputs
        h = ops.concatenate([self.left(x), self.right(z)], axis=-1)
        return {"cls": self.cls(h), "reg": self.reg(h)}


def test_subclassed_model_with_two_inputs_and_outputs_replays():
    x, z, y = _data(24)
    targets = {"cls": y, "reg": (x[:, :1] - z[:, 1:2]).astype(np.float32)}
    runs = {}
    with backend.use("cudasim"):
        for jit in (False, True):
            gn.utils.set_random_seed(0)
            model = TwoInTwoOut()
            model.compile(optimizer=optimizers.RMSprop(0.01), loss={"cls": "sparse_categorical_crossentropy",
                                                                     "reg": "mse"},
                          metrics={"cls": ["accuracy"]}, jit_compile=jit)
            with gn.profiler.profile() as prof:
                history = model.fit([x, z], targets, batch_size=8, epochs=2, verbose=0, shuffle=False)
                out = model.predict([x, z], batch_size=8, verbose=0)
            runs[jit] = history.history, model.get_weights() + [out["cls"], out["reg"]], prof
    assert runs[True][0] == runs[False][0] and "cls_accuracy" in runs[True][0]
    for a, b in zip(runs[False][1], runs[True][1]):
        np.testing.assert_array_equal(a, b)
    assert runs[True][2].kernels[GRAPH].launches == 5 + 2   # train: 6 steps of 8, predict: 3


def test_numpy_backend_evaluates_and_predicts_eagerly():
    x, _, y = _data()
    with backend.use("numpy"), gn.profiler.profile() as prof:
        model = _one_output(True)
        loss, _ = model.evaluate(x, y, batch_size=8, verbose=0)
        out = model.predict(x, batch_size=8, verbose=0)
    assert np.isfinite(loss) and out.shape == (36, 3) and GRAPH not in prof.kernels


def test_weighted_total_kernel_equals_numpy():
    """The several-output total (weights 1, 0.5, 0.3 in order, float32) on cudasim, bit for bit."""
    from gpunet.primitives import weighted_loss
    values = [np.float32(v) for v in (1.2345678, 0.3333333, 7.654321)]
    expected = weighted_loss.weighted_total([np.asarray(v) for v in values], [1.0, 0.5, 0.3])
    assert expected == np.float32(np.float32(1.2345678) + np.float32(0.5) * np.float32(0.3333333)) + \
        np.float32(0.3) * np.float32(7.654321)
    with backend.use("cudasim"):
        be = backend.current()
        got = weighted_loss.weighted_total([be.asarray(np.asarray(v)) for v in values], [1.0, 0.5, 0.3])
        assert got.dtype == np.float32 and got.shape == ()
        assert np.asarray(be.to_numpy(got)).tobytes() == np.asarray(expected).tobytes()


def test_regularizers_sample_weights_clipping_and_constraints_are_captured():
    """The penalties are added on the device in one launch (loss.cu's sum_scalars through an address
    table) and the activity penalty's gradient copies dy (a memcpy node): fit with regularizers,
    sample weights (the weighted loss reads int32 labels as they are: no host conversion frozen
    into the graph), a clipnorm and a kernel constraint replays, equal to eager."""
    x, _, y = _data(24)
    weights = np.random.default_rng(3).random(24).astype(np.float32)
    runs = {}
    with backend.use("cudasim"):
        for jit in (False, True):
            gn.utils.set_random_seed(0)
            model = gn.Sequential([L.Input((6,)), L.Dense(8, activation="relu", kernel_regularizer="l2",
                                                          activity_regularizer=gn.regularizers.L1(0.01),
                                                          kernel_constraint="max_norm"),
                                   L.Dense(3, activation="softmax", bias_regularizer="l1")])
            model.compile(optimizer=optimizers.Adam(0.01, clipnorm=0.5), loss="sparse_categorical_crossentropy",
                          jit_compile=jit)
            with gn.profiler.profile() as prof:
                history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False, sample_weight=weights,
                                    validation_data=(x[:16], y[:16]))
            runs[jit] = history.history, model.get_weights(), prof
    assert runs[True][0] == runs[False][0]
    for a, b in zip(runs[False][1], runs[True][1]):
        np.testing.assert_array_equal(a, b)
    assert runs[True][2].kernels[GRAPH].launches == 2 + 1   # train: 3 steps of 8; validation: 2 of 8


def test_cudasim_capture_records_copies_and_refuses_host_writes():
    """A copy inside a capture is a memcpy node (CuPy's would be captured on a GPU): the replay copies
    what the source then holds. An assignment or fill is host code a replay would not redo: refused."""
    from gpunet.backend import hooks
    with backend.use("cudasim") as be:
        source = be.asarray(np.arange(4, dtype=np.float32))
        with be.capture() as graph:
            copied = source.copy()
            for write in (lambda: copied.__setitem__(0, 5.0), lambda: copied.fill(1.0)):
                with pytest.raises(hooks.CaptureError, match="while a graph is captured"):
                    write()
        source.view(np.ndarray)[...] = [7, 8, 9, 10]
        graph.replay()
        np.testing.assert_array_equal(be.to_numpy(copied), [7, 8, 9, 10])
