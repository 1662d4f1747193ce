"""Losses (values, gradients, softmax fusion, target checks) and metrics on hand-checked examples."""
import numpy as np
import pytest

from checks import assert_close, check_backward
from gpunet import losses, metrics
from gpunet.primitives import activation

# float64 checks of the NumPy reference ops: they stay on numpy under any GPUNET_BACKEND
# (the kernels are compared with them in test_kernels_*.py)
pytestmark = pytest.mark.reference


def _softmax(z):
    return activation.softmax_forward(np.asarray(z, dtype=np.float64))


def _check_loss_gradient(loss, y_true, y_pred):
    """d(loss)/d(y_pred) from compute() against central differences of loss(y_true, y_pred)."""
    saved = {}

    def forward(p):
        saved["p"] = p
        return loss(y_true, p)

    check_backward(forward, lambda dy: loss.compute(y_true, saved["p"])[1] * dy, [y_pred])


# -- gradients ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5)])
@pytest.mark.parametrize("from_logits", [False, True])
def test_categorical_crossentropy_gradients(shape, from_logits, rng):
    y_true = rng.uniform(0, 1, shape)     # soft labels not summing to 1 exercise the general gradient
    scores = rng.standard_normal(shape)
    # Unnormalised positive scores: Keras rescales rows to sum 1 before the log.
    y_pred = scores if from_logits else np.exp(scores) / 3
    _check_loss_gradient(losses.CategoricalCrossentropy(from_logits=from_logits), y_true, y_pred)


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 3)])
@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_categorical_crossentropy_gradients(shape, from_logits, rng):
    labels = rng.integers(0, shape[-1], shape[:-1])
    scores = rng.standard_normal(shape)
    y_pred = scores if from_logits else _softmax(scores)
    _check_loss_gradient(losses.SparseCategoricalCrossentropy(from_logits=from_logits), labels, y_pred)


@pytest.mark.parametrize("from_logits", [False, True])
def test_binary_crossentropy_gradients(from_logits, rng):
    y_true = rng.uniform(0, 1, (4, 3))
    scores = rng.standard_normal((4, 3))
    y_pred = scores if from_logits else activation.sigmoid_forward(scores)
    _check_loss_gradient(losses.BinaryCrossentropy(from_logits=from_logits), y_true, y_pred)


@pytest.mark.parametrize("loss", [losses.MeanSquaredError(), losses.MeanAbsoluteError()], ids=["mse", "mae"])
@pytest.mark.parametrize("shape", [(6,), (3, 4), (2, 2, 3)])
def test_regression_gradients(loss, shape, rng):
    _check_loss_gradient(loss, rng.standard_normal(shape), rng.standard_normal(shape))


@pytest.mark.parametrize("loss_class, labels", [
    (losses.CategoricalCrossentropy, np.eye(4)[[0, 3, 1, 1, 2]]),
    (losses.SparseCategoricalCrossentropy, np.array([0, 3, 1, 1, 2])),
])
def test_fused_softmax_crossentropy_matches_the_unfused_loss(loss_class, labels, rng):
    loss = loss_class()
    assert loss.fuses_softmax and not loss_class(from_logits=True).fuses_softmax
    logits = rng.standard_normal((5, 4))
    value, dlogits, probs = loss.compute_from_logits(labels, logits)
    assert_close(probs, _softmax(logits))
    assert_close(value, loss(labels, probs), rtol=1e-9)
    assert_close(dlogits, (probs - np.eye(4)[[0, 3, 1, 1, 2]]) / 5, rtol=1e-9)
    saved = {}

    def forward(z):
        saved["z"] = z
        return loss.compute_from_logits(labels, z)[0]

    check_backward(forward, lambda dy: loss.compute_from_logits(labels, saved["z"])[1] * dy, [logits])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_crossentropy_with_logits_of_1e4_is_finite(dtype):
    logits = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4]], dtype=dtype)
    value, dlogits, probs = losses.get("sparse_categorical_crossentropy").compute_from_logits(np.array([0, 1]), logits)
    # Sample 0 is certain and right (loss 0); sample 1's true logit is 1e4 below the top (loss 1e4).
    assert np.isfinite(value) and np.all(np.isfinite(dlogits)) and np.all(np.isfinite(probs))
    assert_close(value, 5e3, rtol=1e-6)
    assert_close(dlogits, np.array([[0, 0, 0], [1, -1, 0]]) / 2, atol=1e-6)
    assert dlogits.dtype == dtype
    one_hot = losses.CategoricalCrossentropy(from_logits=True).compute(np.eye(3)[[0, 1]], logits)
    assert_close(one_hot[0], 5e3, rtol=1e-6)


# -- values by hand -------------------------------------------------------------------------

def test_loss_values_by_hand():
    assert_close(losses.get("sparse_categorical_crossentropy")([0, 2], np.array([[0.7, 0.2, 0.1], [0.2, 0.3, 0.5]])),
                 -(np.log(0.7) + np.log(0.5)) / 2)
    # Rows are rescaled to sum 1, as Keras does: [1.4, 0.4, 0.2] is [0.7, 0.2, 0.1].
    assert_close(losses.get("categorical_crossentropy")([[1, 0, 0]], np.array([[1.4, 0.4, 0.2]])), -np.log(0.7))
    # A zero probability on the true class is clipped to 1e-7.
    assert_close(losses.get("categorical_crossentropy")([[0, 1]], np.array([[1.0, 0.0]])), -np.log(1e-7), rtol=1e-6)
    assert_close(losses.get("binary_crossentropy")([[1, 0]], np.array([[0.8, 0.4]])), -(np.log(0.8) + np.log(0.6)) / 2)
    assert_close(losses.BinaryCrossentropy(from_logits=True)([[1.0]], np.array([[0.0]])), np.log(2))
    assert_close(losses.get("mse")([[1, 2], [3, 4]], np.array([[1.0, 0.0], [3.0, 7.0]])), (4 + 9) / 4)
    assert_close(losses.get("mae")([[1, 2], [3, 4]], np.array([[1.0, 0.0], [3.0, 7.0]])), (2 + 3) / 4)


def test_clipped_probabilities_give_zero_finite_gradients():
    # Where the clip to [1e-7, 1 - 1e-7] is active the loss is flat, as in Keras.
    _, grad = losses.get("binary_crossentropy").compute(np.array([[1.0, 0.0]]), np.array([[0.0, 0.5]]))
    assert_close(grad, [[0.0, 0.5 / 0.25 / 2]])
    _, grad = losses.get("categorical_crossentropy").compute(np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]]))
    assert_close(grad, [[0.0, 0.0]])


def test_targets_of_shape_n_fit_outputs_of_shape_n_1():
    # Without alignment, (3,) - (3, 1) would broadcast to (3, 3) and give a wrong mean.
    value, grad = losses.get("mse").compute(np.array([1.0, 2.0, 3.0]), np.array([[1.0], [2.0], [5.0]]))
    assert_close(value, 4 / 3)
    assert grad.shape == (3, 1)
    value = losses.get("sparse_categorical_crossentropy")(np.array([[1], [0]]), np.array([[0.5, 0.5], [1.0, 0.0]]))
    assert_close(value, np.log(2) / 2, rtol=1e-6)


def test_compute_keeps_float32(rng):
    y_pred = _softmax(rng.standard_normal((3, 4))).astype(np.float32)
    for name in ["categorical_crossentropy", "binary_crossentropy", "mse", "mae"]:
        _, grad = losses.get(name).compute(np.eye(4)[[0, 1, 2]], y_pred)
        assert grad.dtype == np.float32, name
    _, grad = losses.get("sparse_categorical_crossentropy").compute([0, 1, 2], y_pred)
    assert grad.dtype == np.float32


# -- target checks --------------------------------------------------------------------------

def test_sparse_label_out_of_range_names_the_label_and_the_class_count():
    loss = losses.get("sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"fit's y: .*label 10, but the model outputs 10 classes \(valid labels are 0 to 9\)"):
        loss.check_targets(np.array([3, 10, 2]), (None, 10), "fit's y")
    with pytest.raises(ValueError, match=r"label -1"):
        loss.check_targets(np.array([-1, 0]), (None, 10), "y")
    # Inside a step the range is not read on the host (that would wait for the device): a bad
    # label makes the loss NaN, and check_targets (above) names it before fit / evaluate start.
    value, _ = loss.compute(np.array([0, 3]), np.full((2, 3), 1 / 3))
    assert np.isnan(value)
    with pytest.raises(ValueError, match=r"integer class labels; received 1.5"):
        loss.check_targets(np.array([0.0, 1.5]), (None, 3), "y")


def test_check_targets_rejects_shape_mismatches_with_hints():
    with pytest.raises(ValueError, match=r"expects targets of shape \(4, 10\) .* received shape \(4,\)\. "
                                         r"Integer class labels need loss='sparse_categorical_crossentropy'"):
        losses.get("categorical_crossentropy").check_targets(np.zeros(4), (None, 10), "y")
    with pytest.raises(ValueError, match=r"One-hot targets need loss='categorical_crossentropy'"):
        losses.get("sparse_categorical_crossentropy").check_targets(np.eye(3), (None, 3), "y")
    with pytest.raises(ValueError, match=r"received shape \(5, 2\)"):
        losses.get("mse").check_targets(np.zeros((5, 2)), (None, 3), "validation_data")
    with pytest.raises(ValueError, match=r"NaN or inf"):
        losses.get("mse").check_targets(np.array([[np.nan]]), (None, 1), "y")
    # Accepted without complaint: labels (N,) or (N, 1); regression targets (N,) for outputs (N, 1).
    losses.get("sparse_categorical_crossentropy").check_targets(np.array([[0], [2]]), (None, 3), "y")
    losses.get("mse").check_targets(np.zeros(5), (None, 1), "y")


def test_compute_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"predictions' shape \(2, 3\); received shape \(2, 4\)"):
        losses.get("categorical_crossentropy").compute(np.eye(4)[[0, 1]], np.full((2, 3), 1 / 3))


# -- lookup and config ----------------------------------------------------------------------

@pytest.mark.parametrize("identifier, cls", [
    ("categorical_crossentropy", losses.CategoricalCrossentropy),
    ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
    ("binary_crossentropy", losses.BinaryCrossentropy),
    ("mse", losses.MeanSquaredError), ("mean_squared_error", losses.MeanSquaredError),
    ("MAE", losses.MeanAbsoluteError), ("mean_absolute_error", losses.MeanAbsoluteError),
    ("MeanSquaredError", losses.MeanSquaredError), (losses.BinaryCrossentropy, losses.BinaryCrossentropy),
])
def test_get_resolves_names_and_classes(identifier, cls):
    assert type(losses.get(identifier)) is cls


def test_get_returns_objects_and_rejects_unknown_names():
    loss = losses.CategoricalCrossentropy(from_logits=True)
    assert losses.get(loss) is loss and losses.get(None) is None
    with pytest.raises(ValueError, match=r"Unknown loss 'not_a_loss'; expected one of 'categorical_crossentropy', .*'mae'"):
        losses.get("not_a_loss")


def test_keras_loss_configs_load_unless_they_ask_for_what_gpunet_lacks():
    keras_config = {"name": "sparse_categorical_crossentropy", "reduction": "sum_over_batch_size",
                    "from_logits": True, "ignore_class": None, "axis": -1, "dtype": None}
    assert losses.SparseCategoricalCrossentropy.from_config(keras_config).from_logits
    with pytest.raises(ValueError, match=r"does not support ignore_class=3 \(only the default None\)"):
        losses.SparseCategoricalCrossentropy.from_config({"ignore_class": 3})
    with pytest.raises(ValueError, match=r"MeanSquaredError cannot be rebuilt from config keys \['delta'\]"):
        losses.MeanSquaredError.from_config({"delta": 1.0})


@pytest.mark.parametrize("loss", [losses.CategoricalCrossentropy(from_logits=True), losses.SparseCategoricalCrossentropy(),
                                  losses.BinaryCrossentropy(from_logits=True, name="bce"), losses.MeanSquaredError()])
def test_loss_config_round_trips(loss):
    again = type(loss).from_config(loss.get_config())
    assert again.get_config() == loss.get_config()
    assert losses.get(losses.serialize(loss)).get_config() == loss.get_config()
    assert (again.name, again.from_logits) == (loss.name, loss.from_logits)


def test_loss_names_and_flags():
    assert losses.get("mse").name == "mean_squared_error"
    assert losses.get("sparse_categorical_crossentropy").name == "sparse_categorical_crossentropy"
    assert not losses.get("binary_crossentropy").fuses_softmax and not losses.get("mse").fuses_softmax
    with pytest.raises(TypeError, match="does not fuse with a softmax"):
        losses.get("mse").compute_from_logits(np.zeros((1, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="reduction='sum_over_batch_size' only; received 'sum'"):
        losses.MeanSquaredError(reduction="sum")


# -- metrics --------------------------------------------------------------------------------

PROBS = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]])
LABELS = np.array([1, 2, 2, 0])      # rows 0 and 2 are right: accuracy 0.5


def test_accuracies_by_hand():
    assert metrics.SparseCategoricalAccuracy()(LABELS, PROBS) == 0.5
    assert metrics.CategoricalAccuracy()(np.eye(3)[LABELS], PROBS) == 0.5
    # Elements: (0.9 > 0.5) == 1 yes, (0.2 > 0.5) == 1 no, (0.6 > 0.5) == 0 no, (0.1 > 0.5) == 0 yes.
    assert metrics.BinaryAccuracy()(np.array([[1, 1], [0, 0]]), np.array([[0.9, 0.2], [0.6, 0.1]])) == 0.5
    assert metrics.BinaryAccuracy(threshold=0.7)(np.array([[1, 1], [0, 0]]), np.array([[0.9, 0.2], [0.6, 0.1]])) == 0.75


def test_metrics_total_batches_weighted_by_size_until_reset():
    metric = metrics.SparseCategoricalAccuracy()
    metric.update_state(LABELS[:1], PROBS[:1])       # 1 of 1 right
    metric.update_state(LABELS[1:], PROBS[1:])       # 1 of 3 right
    assert metric.result() == pytest.approx(2 / 4)   # not the mean of batch means, (1 + 1/3) / 2
    metric.reset_state()
    assert metric.result() == 0.0
    metric.update_state(LABELS[1:2], PROBS[1:2])
    assert metric.result() == 0.0


def test_regression_metrics_by_hand():
    y_true, y_pred = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 0.0], [3.0, 7.0]])
    assert metrics.get("mse")(y_true, y_pred) == pytest.approx(13 / 4)
    mae = metrics.get("mae")
    mae.update_state(y_true, y_pred)
    mae.update_state(np.zeros((1, 2)), np.array([[1.0, 1.0]]))
    assert mae.result() == pytest.approx((5 + 2) / 6)
    assert metrics.get("mse")(np.array([1.0, 2.0]), np.array([[1.0], [4.0]])) == pytest.approx(2.0)


@pytest.mark.parametrize("loss, kind", [
    ("sparse_categorical_crossentropy", metrics.SparseCategoricalAccuracy),
    ("categorical_crossentropy", metrics.CategoricalAccuracy),
    (losses.BinaryCrossentropy(from_logits=True), metrics.BinaryAccuracy),
])
@pytest.mark.parametrize("name", ["accuracy", "acc"])
def test_accuracy_is_resolved_from_the_loss_and_keeps_its_name(loss, kind, name):
    metric = metrics.get(name, loss=loss)
    assert type(metric) is kind and metric.name == name


@pytest.mark.parametrize("y_true, y_pred, expected", [
    (LABELS, PROBS, 0.5),                                       # labels (N,): sparse
    (LABELS[:, None], PROBS, 0.5),                              # labels (N, 1): sparse
    (np.eye(3)[LABELS], PROBS, 0.5),                            # one-hot: categorical
    (np.array([[1.0], [0.0]]), np.array([[0.8], [0.7]]), 0.5),  # one output: binary
])
def test_accuracy_without_a_deciding_loss_reads_the_shapes(y_true, y_pred, expected):
    metric = metrics.get("accuracy", loss="mse")
    assert metric(y_true, y_pred) == expected and metric.name == "accuracy"
    metric.reset_state()
    assert metric.result() == 0.0


def test_metric_lookup():
    assert type(metrics.get("mse")) is metrics.MeanSquaredError and metrics.get("mse").name == "mse"
    assert metrics.get("mean_absolute_error").name == "mean_absolute_error"
    assert metrics.get("CategoricalAccuracy").name == "categorical_accuracy"
    assert type(metrics.get(metrics.BinaryAccuracy)) is metrics.BinaryAccuracy
    metric = metrics.BinaryAccuracy(threshold=0.3, name="ba")
    assert metrics.get(metric) is metric
    assert metrics.BinaryAccuracy.from_config(metric.get_config()).threshold == 0.3
    with pytest.raises(ValueError, match=r"Unknown metric 'f1'; expected one of 'accuracy', 'acc', .*'mae'"):
        metrics.get("f1")
    with pytest.raises(ValueError, match=r"integer labels of shape \(4,\) .* received shape \(4, 2\)"):
        metrics.SparseCategoricalAccuracy().update_state(np.zeros((4, 2)), PROBS)
