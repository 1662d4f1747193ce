"""class_weight -> sample_weight, and the checks sample weights get before they reach a loss."""
import numpy as np

__all__ = ["class_weight_to_sample_weight", "check_sample_weight"]


def class_weight_to_sample_weight(y, class_weight, where="fit", output_rank=None):
    """One weight per sample from ``{class: weight}`` (classes absent from the dict weigh 1), as
    Keras 3: y of integer labels (N,) / (N, 1) or one-hot rows (N, C) (their argmax).

    Targets with more axes (segmentation: (N, H, W) labels or (N, H, W, C) one-hot) get one weight
    per pixel, (N, H, W), which Keras refuses: the weighted loss then counts each pixel by its class.
    ``output_rank`` (the model output's rank) tells (N, H, W) labels from (N, H, C) one-hot rows.
    """
    if not isinstance(class_weight, dict):
        raise TypeError(f"{where}: class_weight must be a dict {{class index: weight}}; "
                        f"received {type(class_weight).__name__}.")
    y = np.asarray(y)
    labels_already = y.ndim > 2 and output_rank is not None and y.ndim == output_rank - 1
    if y.ndim > 1 and not labels_already:
        y = y[..., 0] if y.shape[-1] == 1 else np.argmax(y, axis=-1)
    labels = np.round(y).astype(np.int64)
    table = {int(k): float(v) for k, v in class_weight.items()}
    weights = np.ones(labels.shape, dtype=np.float32)
    for label, weight in table.items():
        weights[labels == label] = weight
    return weights


def check_sample_weight(sample_weight, row_shape, where):
    """sample_weight as float32 of ``row_shape`` (the predictions' shape without the class / last
    axis, batch first): accepts (N,) one weight per sample, broadcast over the rows, or one weight
    per row (per pixel for segmentation), with or without a trailing axis of 1; a clear error otherwise."""
    w = np.asarray(sample_weight, dtype=np.float32)
    row_shape, count = tuple(row_shape), row_shape[0]
    if w.shape in ((count,), (count, 1)) and w.shape != row_shape:
        w = np.broadcast_to(w.reshape((count,) + (1,) * (len(row_shape) - 1)), row_shape)
    elif w.shape == row_shape + (1,):
        w = w.reshape(row_shape)
    if w.shape != row_shape:
        per_row = f" or {row_shape} (one per output row, e.g. per pixel)" if len(row_shape) > 1 else ""
        raise ValueError(f"{where}: sample_weight must have shape ({count},) (one weight per sample){per_row}; "
                         f"received shape {np.shape(sample_weight)}.")
    if not np.all(np.isfinite(w)):
        raise ValueError(f"{where}: sample_weight contains NaN or inf.")
    return np.ascontiguousarray(w)
