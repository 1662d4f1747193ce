"""The data side of the training loop (mixed into Trainer): from x, y, sample_weight and
class_weight - arrays, a PyDataset, a generator or a Dataset - to EpochIterators of host batches,
checked, weighted, and uploaded to the active backend one batch ahead of the step."""
import math

import numpy as np

from .. import backend
from .adapters import ArrayAdapter, EpochIterator, get_adapter, is_array_data, reject_extra_arrays, take, unpack
from .weights import check_sample_weight, class_weight_to_sample_weight

__all__ = ["DataMixin", "narrow_labels", "uploaded"]


def narrow_labels(y):
    """Integer targets as int32 when they fit (the kernels' label type: no conversion in the step);
    a list (several outputs) element by element."""
    if isinstance(y, list):
        return [narrow_labels(t) for t in y]
    if y is None or y.dtype.kind not in "iu" or y.dtype == np.int32 or y.size == 0:
        return y
    return y.astype(np.int32) if -2 ** 31 <= y.min() and y.max() < 2 ** 31 else y


def uploaded(upload, batches, ahead=True):
    """``(step, device batch or None)`` for ``batches.epoch()``; with ``ahead`` batch k+1's upload
    is queued before batch k is handed over, so the copy runs while batch k computes (the compute
    stream waits for a batch's copy when it is taken; the host does not). Without ``ahead`` (data
    parallel: a batch's shard tells the ranks its size) each batch is made when its step starts."""
    device, pending = backend.current(), None
    for step, batch in batches.epoch():
        if not ahead:
            yield _ready(device, (step, upload(batch, step)))
            continue
        current = (step, upload(batch, step))
        if pending is not None:
            yield _ready(device, pending)
        pending = current
    if pending is not None:
        yield _ready(device, pending)


def _ready(device, pending):
    step, up = pending
    if up is None:
        return step, None
    arrays, events = up
    device.wait_events(events)
    return step, arrays


class DataMixin:
    def _row_shape(self, count):
        """Shape of the per-row losses (and so of sample weights) of ``count`` samples (a list of
        them for several outputs)."""
        if self._many_outputs:
            return [(count, *shape[1:-1]) for shape in self.output_shape]
        return (count, *self.output_shape[1:-1])

    def _checked_weights(self, sample_weight, count, where):
        if self._many_outputs:
            return self._outputs.sample_weights(sample_weight, self._row_shape(count), where)
        return check_sample_weight(sample_weight, self._row_shape(count), f"{where}: sample_weight")

    def _weights_to_backend(self, w):
        if w is None:
            return None
        if isinstance(w, list):
            return [self._weights_to_backend(a) for a in w]
        return backend.current().asarray(w, dtype=self.inputs[0].layer.dtype)

    def _array_weights(self, y, sample_weight, class_weight, where):
        """Whole-array sample weights (from sample_weight or class_weight), checked; or None."""
        if sample_weight is not None and class_weight is not None:
            raise ValueError(f"{where}: pass sample_weight or class_weight, not both.")
        if class_weight is not None:
            if self._many_outputs:
                raise ValueError(f"{where}: class_weight is supported for models with one output only (as in "
                                 f"Keras); pass per-output sample_weight instead.")
            sample_weight = class_weight_to_sample_weight(y, class_weight, where, len(self.output_shape))
        if sample_weight is None:
            return None
        count = len(next(t for t in y if t is not None)) if isinstance(y, list) else len(y)
        return self._checked_weights(sample_weight, count, where)

    def _iterator(self, x, y, sample_weight, batch_size, shuffle, steps, where, class_weight=None,
                  targets=True, steps_name="steps_per_epoch"):
        """An EpochIterator of host batches ``(x, y, sample_weight)`` for arrays or a dataset."""
        if not is_array_data(x):
            reject_extra_arrays(x, y, sample_weight, where)
            return EpochIterator(get_adapter(x, where), steps, where, steps_name, class_weight)
        if targets:
            xs, y = self._prepare(x, y, where)
            w = self._array_weights(y, sample_weight, class_weight, where)
        else:
            xs, w = self._prepare_x(x, where), None
        return EpochIterator(ArrayAdapter(xs, narrow_labels(y), w, batch_size, shuffle), steps, where, steps_name)

    def _upload_batch(self, batch, batches, step, targets=True):
        """``((xb, yb, wb, count), events)`` for a host batch of the EpochIterator ``batches``, its
        arrays queued with ``upload_async``; None for a data-parallel idle step. Batches not from
        arrays (checked whole beforehand) are checked here, their errors naming the batch, and get
        the iterator's class_weight."""
        if batch is None:
            return None
        xs, y, w = batch
        if not getattr(batch, "checked", False):
            xs, y, w = self._check_batch(xs, y, w, batches, f"{batches.where}: batch {step}", targets)
        device, events = backend.current(), []

        def up(a, dtype):
            array, event = device.upload_async(a, dtype)
            events.append(event)
            return array
        dtype = self.inputs[0].layer.dtype
        xb = [up(a, t.layer.dtype) for a, t in zip(xs, self.inputs)]
        yb = None if y is None else [None if t is None else up(t, t.dtype if t.dtype.kind in "iu" else dtype)
                                     for t in (y if isinstance(y, list) else [y])]
        wb = None if w is None else [None if a is None else up(a, dtype) for a in (w if isinstance(w, list) else [w])]
        many = isinstance(y, list)
        return ((xb if self._many_inputs else xb[0], yb if many or yb is None else yb[0],
                 wb if isinstance(w, list) or wb is None else wb[0], len(xs[0])), events)

    def _check_batch(self, xs, y, w, batches, here, targets):
        try:
            if targets:
                if y is None:
                    raise ValueError("it has no targets: fit and evaluate need batches (x, y) or "
                                     "(x, y, sample_weight); received x alone.")
                xs, y = self._prepare(xs, y, here)
                y = narrow_labels(y)
                if batches.class_weight is not None:
                    w = self._array_weights(y, w, batches.class_weight, here)
            else:
                xs = self._prepare_x(xs, here)
            if w is not None:
                w = self._checked_weights(w, len(xs[0]), here)
        except ValueError as error:   # every message names the batch (the model's own checks do not)
            if str(error).startswith(here):
                raise
            raise ValueError(f"{here}: {error}") from None
        return xs, y, w

    def _validation(self, xs, y, w, split, validation_data, where="fit"):
        """((train xs, y, w), validation) where validation is None, arrays (xs, y, w) from
        validation_split, or validation_data itself (a tuple of arrays, a dataset or a generator)."""
        if validation_data is not None:
            if is_array_data(validation_data) and (not isinstance(validation_data, (list, tuple))
                                                        or len(validation_data) not in (2, 3)):
                what = f"a {type(validation_data).__name__}" + (
                    f" of length {len(validation_data)}" if hasattr(validation_data, "__len__") else "")
                raise ValueError(f"validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                                 f"sample_weight_val), a PyDataset or a generator; received {what}.")
            return (xs, y, w), validation_data
        if not isinstance(split, (int, float, np.floating)) or not 0.0 <= split < 1.0:
            raise ValueError(f"validation_split must be a fraction in [0, 1); received {split!r}.")
        if split == 0:
            return (xs, y, w), None
        if xs is None:
            raise ValueError(f"{where}: validation_split needs arrays; with a PyDataset or a generator "
                             f"pass validation_data instead.")
        count = len(xs[0])
        cut = int(math.ceil(count * (1.0 - split)))
        if cut in (0, count):
            raise ValueError(f"validation_split={split} of {count} samples leaves "
                             f"{cut} for training and {count - cut} for validation; both need at least one.")
        part = take
        head, tail = slice(cut), slice(cut, None)
        return ([a[head] for a in xs], part(y, head), part(w, head)), \
            ([a[tail] for a in xs], part(y, tail), part(w, tail))

    def _fit_data(self, x, y, sample_weight, class_weight, batch_size, shuffle, steps_per_epoch,
                  validation_split, validation_data, validation_steps, validation_batch_size):
        """(training EpochIterator, validation EpochIterator or None) for fit."""
        if is_array_data(x):
            xs, y = self._prepare(x, y, "fit")
            w = self._array_weights(y, sample_weight, class_weight, "fit")
            (xs, y, w), validation = self._validation(xs, y, w, validation_split, validation_data)
            train = EpochIterator(ArrayAdapter(xs, narrow_labels(y), w, batch_size, shuffle), steps_per_epoch, "fit")
        else:
            reject_extra_arrays(x, y, sample_weight, "fit")
            _, validation = self._validation(None, None, None, validation_split, validation_data)
            train = EpochIterator(get_adapter(x, "fit"), steps_per_epoch, "fit", class_weight=class_weight)
        if validation is None:
            return train, None
        where = "fit: validation_data"
        if isinstance(validation, tuple) and len(validation) == 3 and isinstance(validation[0], list) \
                and validation_data is None:   # from validation_split: already checked
            adapter = ArrayAdapter(*validation, validation_batch_size, False)
            return train, EpochIterator(adapter, validation_steps, where, "validation_steps")
        if is_array_data(validation):
            vx, vy, vw = unpack(validation, where)
            return train, self._iterator(vx, vy, vw, validation_batch_size, False, validation_steps, where,
                                         steps_name="validation_steps")
        return train, self._iterator(validation, None, None, validation_batch_size, False, validation_steps,
                                     where, steps_name="validation_steps")
