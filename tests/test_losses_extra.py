"""The Keras 3 losses beyond the cross-entropies, and label smoothing: values and gradients equal
to Keras's (tests/keras_fixtures/losses.npz, from make_loss_fixtures.py with Keras 3.15), the
NumPy gradients equal to float64 central differences, and every kernel (loss_terms.cu,
loss_rows.cu, loss_overlap.cu) equal to the NumPy reference on cudasim."""
import json
import os

import numpy as np
import pytest

import gpunet as gn
from checks import assert_close, compare_with_numpy, numeric_gradients
from gpunet.primitives import loss_overlap, loss_rows, loss_terms

FIXTURE = os.path.join(os.path.dirname(__file__), "keras_fixtures", "losses.npz")
with np.load(FIXTURE) as _data:
    KERAS = {key: _data[key] for key in _data.files}
CASES = json.loads(str(KERAS["cases"]))
IDS = [f"{i}-{name}" for i, (name, _, _) in enumerate(CASES)]
FINISH = "sum_partials_finish"


@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_value_and_gradient_match_keras(index):
    name, kwargs, _ = CASES[index]
    loss = getattr(gn.losses, name)(**kwargs)
    y, p = KERAS[f"{index}_y"], KERAS[f"{index}_p"]
    value, grad = loss.compute(y, p)
    assert value == pytest.approx(float(KERAS[f"{index}_value"]), rel=2e-5, abs=1e-6)
    assert_close(np.asarray(grad), KERAS[f"{index}_grad"], rtol=2e-4, atol=2e-6, what=f"{name} gradient")
    assert gn.losses.get({"class_name": name, "config": loss.get_config()}).get_config() == loss.get_config()


@pytest.mark.reference
@pytest.mark.parametrize("index", range(len(CASES)), ids=IDS)
def test_numpy_gradient_matches_central_differences(index):
    name, kwargs, _ = CASES[index]
    loss = getattr(gn.losses, name)(**kwargs)
    y = KERAS[f"{index}_y"].astype(np.float64)
    p = KERAS[f"{index}_p"].astype(np.float64)
    _, analytic = loss.compute(y, p)
    numeric, = numeric_gradients(lambda q: loss.compute(y, q)[0], [p.copy()], np.float64(1.0), eps=1e-6)
    assert_close(analytic, numeric, rtol=1e-4, atol=1e-7, what=f"{name} gradient")


@pytest.mark.parametrize("name, expected", [
    ("huber", "Huber"), ("log_cosh", "LogCosh"), ("logcosh", "LogCosh"), ("kld", "KLDivergence"),
    ("msle", "MeanSquaredLogarithmicError"), ("mape", "MeanAbsolutePercentageError"), ("dice", "Dice"),
    ("binary_focal_crossentropy", "BinaryFocalCrossentropy"), ("categorical_hinge", "CategoricalHinge"),
    ("CosineSimilarity", "CosineSimilarity")])
def test_losses_by_keras_name(name, expected):
    assert type(gn.losses.get(name)).__name__ == expected


def test_keras_defaults_and_names():
    assert gn.losses.Huber().name == "huber_loss" and gn.losses.Huber().delta == 1.0
    focal = gn.losses.BinaryFocalCrossentropy()
    assert (focal.alpha, focal.gamma, focal.apply_class_balancing, focal.from_logits) == (0.25, 2.0, False, False)
    assert gn.losses.Tversky().get_config() == {"name": "tversky", "reduction": "sum_over_batch_size",
                                                "axis": None, "alpha": 0.5, "beta": 0.5}
    keras_config = {"name": "categorical_crossentropy", "reduction": "sum_over_batch_size", "from_logits": False,
                    "label_smoothing": 0.1, "axis": -1}
    assert gn.losses.CategoricalCrossentropy.from_config(keras_config).label_smoothing == 0.1


@pytest.mark.parametrize("make, message", [
    (lambda: gn.losses.CategoricalCrossentropy(label_smoothing=1.5), r"label_smoothing must be in \[0, 1\]"),
    (lambda: gn.losses.Dice(axis=(1, 2)), r"Dice supports axis=None .* received axis=\(1, 2\)"),
    (lambda: gn.losses.CategoricalFocalCrossentropy(axis=1), r"axis=-1 .* received axis=1")])
def test_bad_settings_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_model_trains_with_dice_and_focal_loss():
    x = np.random.default_rng(0).standard_normal((16, 6, 6, 1)).astype("float32")
    y = (x > 0.3).astype("float32")
    for loss in (gn.losses.Dice(), gn.losses.BinaryFocalCrossentropy(from_logits=True)):
        activation = "sigmoid" if isinstance(loss, gn.losses.Dice) else None
        model = gn.Sequential([gn.Input((6, 6, 1)), gn.layers.Conv2D(4, 3, padding="same", activation="relu"),
                               gn.layers.Conv2D(1, 1, activation=activation)])
        model.compile(optimizer=gn.optimizers.Adam(0.02), loss=loss)
        history = model.fit(x, y, epochs=8, batch_size=8, verbose=0).history["loss"]
        assert history[-1] < 0.8 * history[0], (loss.name, history)


# -- kernels on cudasim against the numpy reference ----------------------------------------------
def _pair(kind, rng, shape):
    if kind in ("poisson",):
        return rng.integers(0, 4, shape).astype("float32"), rng.uniform(0.1, 3, shape).astype("float32")
    if kind in ("kl_divergence", "binary_focal"):
        p = rng.uniform(0, 1, shape).astype("float32")
        p.flat[0], p.flat[-1] = 0.0, 1.0   # the clip's edges
        return rng.integers(0, 2, shape).astype("float32"), p
    if kind == "hinge":
        return rng.choice([-1.0, 1.0], shape).astype("float32"), rng.normal(0, 1, shape).astype("float32")
    return rng.normal(0, 1, shape).astype("float32"), rng.normal(0, 2, shape).astype("float32")


TERM_CASES = [("huber", (0.7,)), ("log_cosh", ()), ("poisson", (1e-7,)), ("squared_log", (1e-7,)),
              ("percentage", (1e-7,)), ("kl_divergence", (1e-7,)), ("hinge", ()), ("squared_hinge", ()),
              ("binary_focal", (2.0, 0.25, 1.0)), ("binary_focal_logits", (1.5, 0.25, 0.0))]


@pytest.mark.parametrize("kind, settings", TERM_CASES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (70, 41)])
def test_term_kernels_match_numpy(kernel_backend, rng, kind, settings, shape):
    y, p = _pair(kind.replace("squared_", "").replace("_logits", ""), rng, shape)
    compare_with_numpy(kernel_backend, lambda: loss_terms.term_sum(kind, y, p, 3, *settings),
                       ["loss_term_sum_partials", FINISH])
    compare_with_numpy(kernel_backend, lambda: loss_terms.term_gradient(kind, y, p, 0.25, *settings),
                       ["loss_term_backward"])


def test_target_transform_kernels_match_numpy(kernel_backend, rng):
    binary = rng.integers(0, 2, (5, 3)).astype("float32")
    compare_with_numpy(kernel_backend, lambda: loss_terms.smooth_targets(binary, 0.9, 0.05), ["affine_targets"])
    for y in (binary, binary * 2 - 1, rng.normal(0, 1, (4, 3)).astype("float32")):
        out = compare_with_numpy(kernel_backend, lambda: loss_terms.hinge_targets(y),
                                 ["count_non_binary", "hinge_targets"])
    assert_close(compare_with_numpy(kernel_backend, lambda: loss_terms.hinge_targets(binary),
                                    ["count_non_binary", "hinge_targets"])[0], binary * 2 - 1)


ROW_CASES = [("cosine", (1e-7, 0.0)), ("categorical_hinge", (0.0, 0.0)), ("categorical_focal", (0.25, 2.0)),
             ("categorical_focal_logits", (0.5, 1.5))]


@pytest.mark.parametrize("kind, settings", ROW_CASES)
@pytest.mark.parametrize("shape", [(1, 3), (19, 6), (2, 3, 3, 40)])
def test_row_kernels_match_numpy(kernel_backend, rng, kind, settings, shape):
    y = np.eye(shape[-1], dtype="float32")[rng.integers(0, shape[-1], shape[:-1])]
    p = rng.uniform(0.01, 1, shape).astype("float32") if kind == "categorical_focal" else \
        rng.normal(0, 2, shape).astype("float32")
    if kind == "cosine":
        y = rng.normal(0, 1, shape).astype("float32")
        p.reshape(-1, shape[-1])[0] = 0.0   # a zero row: the norm's floor
    compare_with_numpy(kernel_backend, lambda: loss_rows.row_sum(kind, y, p, 2, *settings),
                       ["loss_rows_forward", FINISH])
    compare_with_numpy(kernel_backend, lambda: loss_rows.row_gradient(kind, y, p, 0.5, *settings),
                       ["loss_rows_backward"])


@pytest.mark.parametrize("tversky, alpha, beta", [(False, 0.5, 0.5), (True, 0.3, 0.7)])
@pytest.mark.parametrize("shape", [(1, 1), (2, 9, 9, 1), (3, 50, 50, 2)])
def test_overlap_kernels_match_numpy(kernel_backend, rng, tversky, alpha, beta, shape):
    y = rng.integers(0, 2, shape).astype("float32")
    p = rng.uniform(0, 1, shape).astype("float32")

    def forward_backward():
        value, stats = loss_overlap.overlap_forward(y, p, tversky, alpha, beta)
        return value, loss_overlap.overlap_backward(y, p, stats, tversky, alpha, beta)
    compare_with_numpy(kernel_backend, forward_backward,
                       ["overlap_sum_partials", "overlap_finish", "overlap_backward"])


@pytest.mark.parametrize("index", [0, 8, 11, 15, 17, 19], ids=[IDS[i] for i in [0, 8, 11, 15, 17, 19]])
def test_loss_objects_on_kernels_match_keras(kernel_backend, index):
    name, kwargs, _ = CASES[index]
    with gn.backend.use(kernel_backend) as be:
        loss = getattr(gn.losses, name)(**kwargs)
        value, grad = loss.compute(be.asarray(KERAS[f"{index}_y"]), be.asarray(KERAS[f"{index}_p"]))
        grad = be.to_numpy(grad)
    assert value == pytest.approx(float(KERAS[f"{index}_value"]), rel=2e-5, abs=1e-6)
    assert_close(grad, KERAS[f"{index}_grad"], rtol=2e-4, atol=2e-6)
