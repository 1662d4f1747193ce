"""Losses (value and gradient) and the reductions metrics need.

Conventions (Keras's): ``y_true`` first, predictions second; the class axis is the last one;
every loss is reduced by "sum_over_batch_size", i.e. the per-sample loss (a sum over classes
for cross-entropies, a mean over the last axis for mse, mae and binary cross-entropy) averaged
over all remaining elements. Forward functions return that mean as a 0-d array (float() it);
backward functions return the gradient of that mean with respect to the predictions, in their
dtype. Sparse labels are integer arrays of the predictions' shape without the class axis.

On a kernel backend (``backend.current().runs_kernels``) every function runs kernels of
``kernels/loss.cu``; the ``_..._kernel`` helpers at the end launch them. Means and sums are
deterministic two-step reductions (per-block partial sums, then one block adds them) and come
back as 0-d float32 arrays; counts come back as 0-d int64 arrays. Sparse labels are cast to
int32 for the kernels.

Dtypes (mixed precision): predictions / logits may be float32, bfloat16 or float16 (float64 on
the numpy backend only); their gradients come back in that dtype. Targets and sample weights are
float32 (a 16-bit one is widened, exactly), as Keras's Loss converts y_true to its float32
dtype; loss values, sums and the fused softmax's ``probs`` are float32. Both backends widen a
16-bit input, compute in float32 and round once, where a gradient is stored
(``precision.widen`` / ``precision.narrow``), so they agree to within one unit in the last place
of the 16-bit type. The softmax cross-entropy backward takes ``dtype``, the logits' dtype, since
its input ``probs`` is float32.
"""
import numpy as np

from .. import backend
from . import cast, launch, precision

EPSILON = 1e-7   # Keras's backend epsilon: probabilities are clipped to [EPSILON, 1 - EPSILON]
_FILE = "loss.cu"
_MAX_BLOCKS = 2048      # grid-stride gradient kernels
_MAX_PARTIALS = 256     # blocks of a reduction (threads loop past it); sum_partials_finish adds one partial per thread
_ROWS_PER_BLOCK = 8     # row kernels: one warp per row, 256-thread blocks


def _rows(pred):
    """Number of per-sample losses of a cross-entropy: every element but the class axis."""
    return pred.size // pred.shape[-1]


def _wide(*arrays):
    """The NumPy reference's inputs: 16-bit arrays widened to float32 (exact), others as they are."""
    return tuple(precision.widen(a) for a in arrays)


def value_dtype(dtype):
    """The dtype of a loss value or sum over predictions of ``dtype``: float32 for 16-bit ones."""
    return precision.FLOAT32 if np.dtype(dtype) in precision.HALF else np.dtype(dtype)


def _valid_labels(labels, num_classes):
    return (labels >= 0) & (labels < num_classes)


def one_hot(labels, num_classes, dtype):
    """Integer labels (...,) -> one-hot (..., num_classes) in ``dtype``."""
    return (labels[..., None] == np.arange(num_classes)).astype(dtype)


# -- softmax cross-entropy from logits (fused: the stable form of softmax + cross-entropy) ------

def _log_softmax(logits):
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def softmax_cross_entropy_forward(y_true, logits):
    """Mean of ``-sum(y_true * log_softmax(logits))`` over rows; y_true and logits (..., C).

    Returns ``(loss, probs)``; probs (..., C) is what backward needs, float32 for 16-bit logits
    (computed from the widened logits). The row maximum is subtracted before exponentiating, so
    logits of 1e4 give a finite loss.
    """
    if backend.current().runs_kernels:
        return _softmax_cross_entropy_forward_kernel(y_true, logits, sparse=False)
    log_probs = _log_softmax(precision.widen(logits))
    loss = -np.sum(precision.widen(y_true) * log_probs) / _rows(logits)
    return loss, np.exp(log_probs)


def softmax_cross_entropy_backward(y_true, probs, dtype=None):
    """d(mean loss)/d(logits) = ``(probs * sum(y_true) - y_true) / rows``; ``(p - y) / rows`` for one-hot.

    ``dtype``: the logits' dtype, the gradient's (default: probs'); rounded to it once."""
    dtype = np.dtype(probs.dtype if dtype is None else dtype)
    if backend.current().runs_kernels:
        probs = float_targets("softmax_cross_entropy_backward", probs)   # float32, as forward gives it
        return _row_gradient_kernel("softmax_cross_entropy_backward", y_true, probs, dtype=dtype)
    y_true, probs = _wide(y_true, probs)
    total = np.sum(y_true, axis=-1, keepdims=True)
    return precision.narrow((probs * total - y_true) / _rows(probs), dtype)


def sparse_softmax_cross_entropy_forward(labels, logits):
    """As :func:`softmax_cross_entropy_forward` with integer labels (...,); returns ``(loss, probs)``."""
    if backend.current().runs_kernels:
        return _softmax_cross_entropy_forward_kernel(labels, logits, sparse=True)
    log_probs = _log_softmax(precision.widen(logits))
    valid = _valid_labels(labels, logits.shape[-1])
    picked = np.take_along_axis(log_probs, np.where(valid, labels, 0)[..., None], axis=-1)
    picked = np.where(valid[..., None], picked, np.nan)   # as the kernel: a bad label's row is NaN
    return -np.sum(picked) / _rows(logits), np.exp(log_probs)


def sparse_softmax_cross_entropy_backward(labels, probs, dtype=None):
    """d(mean loss)/d(logits) = ``(probs - one_hot(labels)) / rows``; a label outside [0, C)
    is no class (its row is ``probs / rows``), on every backend. ``dtype`` as in
    :func:`softmax_cross_entropy_backward`."""
    dtype = np.dtype(probs.dtype if dtype is None else dtype)
    if backend.current().runs_kernels:
        probs = float_targets("sparse_softmax_cross_entropy_backward", probs)
        return _sparse_softmax_cross_entropy_backward_kernel(labels, probs, dtype)
    probs = precision.widen(probs)
    dx = (probs - one_hot(labels, probs.shape[-1], probs.dtype)) / probs.dtype.type(_rows(probs))
    return precision.narrow(dx, dtype)


# -- categorical cross-entropy on probabilities -----------------------------------------------

def _normalised_clipped(y_pred, eps):
    # Keras rescales each row to sum 1 before clipping, so unnormalised scores are accepted.
    y_pred = precision.widen(y_pred)
    scale = np.sum(y_pred, axis=-1, keepdims=True)
    q = y_pred / scale
    return scale, q, np.clip(q, eps, 1 - eps)


def categorical_crossentropy_forward(y_true, y_pred, eps=EPSILON):
    """Mean over rows of ``-sum(y_true * log(clip(p / sum(p), eps, 1 - eps)))``; both (..., C)."""
    if backend.current().runs_kernels:
        return _categorical_crossentropy_forward_kernel(y_true, y_pred, eps, sparse=False)
    _, _, clipped = _normalised_clipped(y_pred, eps)
    return -np.sum(precision.widen(y_true) * np.log(clipped)) / _rows(y_pred)


def categorical_crossentropy_backward(y_true, y_pred, eps=EPSILON):
    """d(mean loss)/d(y_pred), through the row normalisation; zero where the clip is active."""
    if backend.current().runs_kernels:
        return _row_gradient_kernel("categorical_crossentropy_backward", y_true, y_pred, *_clip_range(eps))
    scale, q, clipped = _normalised_clipped(y_pred, eps)
    dq = -precision.widen(y_true) / clipped * ((q >= eps) & (q <= 1 - eps)) / _rows(y_pred)
    dp = (dq - np.sum(dq * q, axis=-1, keepdims=True)) / scale
    return precision.narrow(dp, y_pred.dtype)


def sparse_categorical_crossentropy_forward(labels, y_pred, eps=EPSILON):
    """:func:`categorical_crossentropy_forward` with integer labels (...,)."""
    if backend.current().runs_kernels:
        return _categorical_crossentropy_forward_kernel(labels, y_pred, eps, sparse=True)
    loss = categorical_crossentropy_forward(one_hot(labels, y_pred.shape[-1], y_pred.dtype), y_pred, eps)
    # A label outside [0, C) has an all-zero one-hot row that would cost nothing: NaN instead,
    # as the kernel gives (the Loss objects refuse such labels before they get here).
    return loss if _valid_labels(labels, y_pred.shape[-1]).all() else loss * np.nan


def sparse_categorical_crossentropy_backward(labels, y_pred, eps=EPSILON):
    if backend.current().runs_kernels:
        return _row_gradient_kernel("sparse_categorical_crossentropy_backward", labels, y_pred, *_clip_range(eps))
    return categorical_crossentropy_backward(one_hot(labels, y_pred.shape[-1], y_pred.dtype), y_pred, eps)


# -- binary cross-entropy ---------------------------------------------------------------------

def binary_crossentropy_forward(y_true, y_pred, eps=EPSILON):
    """Mean of ``-(y log p + (1 - y) log(1 - p))`` with p clipped to [eps, 1 - eps]; same shapes."""
    if backend.current().runs_kernels:
        return _elementwise_sum_kernel("binary_crossentropy_sum_partials", y_true, y_pred, True, *_clip_range(eps))
    y_true, y_pred = _wide(y_true, y_pred)
    p = np.clip(y_pred, eps, 1 - eps)
    return -np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))


def binary_crossentropy_backward(y_true, y_pred, eps=EPSILON):
    """d(mean loss)/d(y_pred) = ``(p - y) / (p (1 - p)) / size``; zero where the clip is active."""
    if backend.current().runs_kernels:
        return _elementwise_gradient_kernel("binary_crossentropy_backward", y_true, y_pred, *_clip_range(eps),
                                            launch.f32(y_pred.size))
    dtype, (y_true, y_pred) = y_pred.dtype, _wide(y_true, y_pred)
    p = np.clip(y_pred, eps, 1 - eps)
    inside = (y_pred >= eps) & (y_pred <= 1 - eps)
    return precision.narrow((p - y_true) / (p * (1 - p)) * inside / y_pred.size, dtype)


def binary_crossentropy_from_logits_forward(y_true, logits):
    """Mean of the logistic loss in its stable form ``max(x, 0) - x y + log(1 + exp(-|x|))``."""
    if backend.current().runs_kernels:
        return _elementwise_sum_kernel("binary_crossentropy_from_logits_sum_partials", y_true, logits, True)
    y_true, logits = _wide(y_true, logits)
    return np.mean(np.maximum(logits, 0) - logits * y_true + np.log1p(np.exp(-np.abs(logits))))


def binary_crossentropy_from_logits_backward(y_true, logits):
    """d(mean loss)/d(logits) = ``(sigmoid(x) - y) / size``."""
    if backend.current().runs_kernels:
        return _elementwise_gradient_kernel("binary_crossentropy_from_logits_backward", y_true, logits,
                                            launch.f32(logits.size))
    dtype, (y_true, logits) = logits.dtype, _wide(y_true, logits)
    e = np.exp(-np.abs(logits))
    sigmoid = np.where(logits >= 0, 1 / (1 + e), e / (1 + e))
    return precision.narrow((sigmoid - y_true) / logits.size, dtype)


# -- regression -------------------------------------------------------------------------------

def mse_forward(y_true, y_pred):
    """Mean squared error over all elements (same shapes)."""
    if backend.current().runs_kernels:
        return _elementwise_sum_kernel("squared_error_sum_partials", y_true, y_pred, True)
    y_true, y_pred = _wide(y_true, y_pred)
    return np.mean((y_pred - y_true) ** 2)


def mse_backward(y_true, y_pred):
    if backend.current().runs_kernels:
        return _elementwise_gradient_kernel("mse_backward", y_true, y_pred, launch.f32(2 / y_pred.size))
    dtype, (y_true, y_pred) = y_pred.dtype, _wide(y_true, y_pred)
    return precision.narrow((y_pred - y_true) * (2 / y_pred.size), dtype)


def mae_forward(y_true, y_pred):
    """Mean absolute error over all elements (same shapes)."""
    if backend.current().runs_kernels:
        return _elementwise_sum_kernel("absolute_error_sum_partials", y_true, y_pred, True)
    y_true, y_pred = _wide(y_true, y_pred)
    return np.mean(np.abs(y_pred - y_true))


def mae_backward(y_true, y_pred):
    if backend.current().runs_kernels:
        return _elementwise_gradient_kernel("mae_backward", y_true, y_pred, launch.f32(y_pred.size))
    dtype, (y_true, y_pred) = y_pred.dtype, _wide(y_true, y_pred)
    return precision.narrow(np.sign(y_pred - y_true) / y_pred.size, dtype)


# -- reductions for metrics (sums, so that metrics can total them over batches) ----------------

def count_argmax_equal(y_true, y_pred):
    """How many rows have ``argmax(y_true) == argmax(y_pred)`` over the last axis."""
    if backend.current().runs_kernels:
        return _count_rows_kernel("count_argmax_equal", y_true, y_pred)
    y_true, y_pred = _wide(y_true, y_pred)
    return np.count_nonzero(np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1))


def count_label_equal(labels, y_pred):
    """How many rows have ``argmax(y_pred) == labels``; labels (...,), y_pred (..., C)."""
    if backend.current().runs_kernels:
        return _count_rows_kernel("count_label_equal", labels, y_pred)
    return np.count_nonzero(np.argmax(precision.widen(y_pred), axis=-1) == labels)


def count_binary_equal(y_true, y_pred, threshold=0.5):
    """How many elements have ``(y_pred > threshold) == y_true`` (y_true of 0s and 1s)."""
    if backend.current().runs_kernels:
        return _count_binary_equal_kernel(y_true, y_pred, threshold)
    y_true, y_pred = _wide(y_true, y_pred)
    return np.count_nonzero((y_pred > threshold).astype(y_true.dtype) == y_true)


def sum_squared_error(y_true, y_pred):
    if backend.current().runs_kernels:
        return _elementwise_sum_kernel("squared_error_sum_partials", y_true, y_pred, False)
    y_true, y_pred = _wide(y_true, y_pred)
    return np.sum((y_pred - y_true) ** 2)


def sum_absolute_error(y_true, y_pred):
    if backend.current().runs_kernels:
        return _elementwise_sum_kernel("absolute_error_sum_partials", y_true, y_pred, False)
    y_true, y_pred = _wide(y_true, y_pred)
    return np.sum(np.abs(y_pred - y_true))


# -- kernel paths -------------------------------------------------------------------------------

def _clip_range(eps):
    """The clip bounds as the kernels take them: float32 ``eps`` and ``1 - eps`` (rounded once, as NumPy does)."""
    return launch.f32(eps), launch.f32(1 - eps)


def float_targets(op, y_true):
    """Targets (or sample weights) as the kernels read them: float32 on the backend, a 16-bit
    array widened (exactly; Keras's Loss converts y_true to float32 too). Other dtypes are a
    TypeError naming ``op``."""
    if getattr(y_true, "dtype", None) in precision.HALF:
        y_true = cast.cast(launch.inputs(op, y_true, dtype=precision.FLOATS)[0], np.float32)
    return launch.inputs(op, y_true)[0]


def predictions(op, y_pred):
    """Predictions as the templated kernels read them: float32, bfloat16 or float16 on the backend."""
    return launch.inputs(op, y_pred, dtype=precision.FLOATS)[0]


def _dense_kernel_arrays(op, y_true, y_pred):
    """(float32 targets, predictions in their own dtype) of one shape, on the backend."""
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(f"{op} needs y_true of the predictions' shape {tuple(y_pred.shape)}; "
                         f"received shape {tuple(y_true.shape)}.")
    return float_targets(op, y_true), predictions(op, y_pred)


def _target_kernel_arrays(op, targets, y_pred, sparse):
    """(targets, y_pred) for a row kernel: float32 targets or int32 labels (...,); y_pred float32 / 16-bit."""
    if not sparse:
        return _dense_kernel_arrays(op, targets, y_pred)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"{op} needs integer labels; received dtype {targets.dtype}.")
    if tuple(targets.shape) != tuple(y_pred.shape[:-1]):
        raise ValueError(f"{op} needs labels of shape {tuple(y_pred.shape[:-1])} for predictions of shape "
                         f"{tuple(y_pred.shape)}; received shape {tuple(targets.shape)}.")
    y_pred = predictions(op, y_pred)
    if targets.dtype == np.int32:   # the training loop uploads labels as int32 when they fit
        return launch.array(targets, np.int32), y_pred
    # The kernels take int32 labels and treat one outside [0, C) as invalid: a label that int32
    # cannot hold becomes -1 rather than wrapping around into a valid class.
    xp = backend.current().xp
    wide = targets.astype(np.int64)
    return launch.array(xp.where((wide < 0) | (wide > 2 ** 31 - 1), -1, wide), np.int32), y_pred


def _rows_cols(op, y_pred):
    launch.i32(y_pred.size, f"{op}: elements")
    cols = int(y_pred.shape[-1])
    return (y_pred.size // cols if cols else 0), cols


def _row_blocks(rows):
    """Blocks of a row reduction: a warp per row up to the partial-sum cap, then warps loop."""
    return launch.blocks_for(rows, _ROWS_PER_BLOCK, cap=_MAX_PARTIALS)


def _finish_sum(partial, divisor):
    """One block adds the per-block partials in a fixed order: a 0-d float32 array sum / divisor."""
    out = launch.empty((1,))
    launch.run(_FILE, "sum_partials_finish", 1, launch.THREADS, partial, partial.size, out, launch.f32(divisor))
    return out.reshape(())


def _softmax_cross_entropy_forward_kernel(targets, logits, sparse):
    kernel = ("sparse_" if sparse else "") + "softmax_cross_entropy_forward"
    targets, logits = _target_kernel_arrays(kernel, targets, logits, sparse)
    rows, cols = _rows_cols(kernel, logits)
    probs, partial = launch.empty(logits.shape), launch.empty((_row_blocks(rows),))
    launch.run(_FILE, kernel, partial.size, launch.THREADS, targets, logits, probs, partial, rows, cols)
    return _finish_sum(partial, rows), probs


def _categorical_crossentropy_forward_kernel(targets, y_pred, eps, sparse):
    kernel = ("sparse_" if sparse else "") + "categorical_crossentropy_forward"
    targets, y_pred = _target_kernel_arrays(kernel, targets, y_pred, sparse)
    rows, cols = _rows_cols(kernel, y_pred)
    partial = launch.empty((_row_blocks(rows),))
    launch.run(_FILE, kernel, partial.size, launch.THREADS, targets, y_pred, partial, rows, cols, *_clip_range(eps))
    return _finish_sum(partial, rows)


def _row_gradient_kernel(kernel, targets, y_pred, *settings, dtype=None):
    """``kernel(targets, y_pred, dx, rows, cols, *settings, rows)``: a gradient computed row by row,
    dx of ``dtype`` (default y_pred's)."""
    targets, y_pred = _target_kernel_arrays(kernel, targets, y_pred, kernel.startswith("sparse_"))
    rows, cols = _rows_cols(kernel, y_pred)
    dx = launch.empty(y_pred.shape, y_pred.dtype if dtype is None else dtype)
    blocks = launch.blocks_for(rows, _ROWS_PER_BLOCK, cap=_MAX_BLOCKS)
    launch.run(_FILE, kernel, blocks, launch.THREADS, targets, y_pred, dx, rows, cols, *settings, launch.f32(rows))
    return dx


def _sparse_softmax_cross_entropy_backward_kernel(labels, probs, dtype):
    kernel = "sparse_softmax_cross_entropy_backward"
    labels, probs = _target_kernel_arrays(kernel, labels, probs, sparse=True)
    rows, cols = _rows_cols(kernel, probs)
    dx = launch.empty(probs.shape, dtype)
    launch.run(_FILE, kernel, launch.blocks_for(dx.size, cap=_MAX_BLOCKS), launch.THREADS,
               labels, probs, dx, dx.size, cols, launch.f32(rows))
    return dx


def _elementwise_sum_kernel(kernel, y_true, y_pred, mean, *settings):
    """Sum (or mean, when ``mean``) over all elements of ``kernel``'s per-element term: 0-d float32."""
    y_true, y_pred = _dense_kernel_arrays(kernel, y_true, y_pred)
    n = launch.i32(y_pred.size, f"{kernel}: elements")
    partial = launch.empty((launch.blocks_for(n, cap=_MAX_PARTIALS),))
    launch.run(_FILE, kernel, partial.size, launch.THREADS, y_true, y_pred, partial, n, *settings)
    return _finish_sum(partial, n if mean else 1)


def _elementwise_gradient_kernel(kernel, y_true, y_pred, *settings):
    y_true, y_pred = _dense_kernel_arrays(kernel, y_true, y_pred)
    dx = launch.empty(y_pred.shape, y_pred.dtype)
    n = launch.i32(dx.size, f"{kernel}: elements")
    launch.run(_FILE, kernel, launch.blocks_for(n, cap=_MAX_BLOCKS), launch.THREADS, y_true, y_pred, dx, n, *settings)
    return dx


def _count(kernel, blocks, *args):
    """Launch ``kernel`` with a zeroed counter as its third argument; the count as a 0-d int64 array."""
    count = launch.zeros((1,), np.uint64)
    launch.run(_FILE, kernel, blocks, launch.THREADS, *args[:2], count, *args[2:])
    return count.view(np.int64).reshape(())


def _count_rows_kernel(kernel, targets, y_pred):
    targets, y_pred = _target_kernel_arrays(kernel, targets, y_pred, sparse=kernel == "count_label_equal")
    rows, cols = _rows_cols(kernel, y_pred)
    return _count(kernel, _row_blocks(rows), targets, y_pred, rows, cols)


def _count_binary_equal_kernel(y_true, y_pred, threshold):
    y_true, y_pred = _dense_kernel_arrays("count_binary_equal", y_true, y_pred)
    n = launch.i32(y_pred.size, "count_binary_equal: elements")
    return _count("count_binary_equal", launch.blocks_for(n, cap=_MAX_PARTIALS), y_true, y_pred, n,
                  launch.f32(threshold))
