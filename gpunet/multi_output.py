"""Training a model with several outputs: a loss, a loss weight and metrics per output (Keras 3).

    model = gn.Model(inputs, [classes, boxes])        # output layers named "cls" and "reg"
    model.compile("adam", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  loss_weights={"cls": 1.0, "reg": 0.5}, metrics={"cls": ["accuracy"]})
    model.fit(x, {"cls": labels, "reg": targets})     # or a list in the outputs' order

The total loss is ``sum(loss_weight_k * loss_k)``; the logs hold it as "loss", each output's
unweighted loss as "<output>_loss" and each metric as "<output>_<metric>", where <output> is the
name of the layer that makes the output, as Keras 3 names them. A subclassed model whose call()
returns a dict is named by its keys; one returning a list logs "<loss>_loss" per output (the loss
as given: "mse_loss") and its metrics under their own names, as Keras 3 does. ``weighted_metrics``
(per output too) get the sample weights; one whose name is taken logs as "<output>_weighted_<metric>".
Targets, sample weights (one array for every output, or one per output) and losses come as a list
in the outputs' order or a dict by output name.
"""
import numpy as np

from . import backend, losses, metrics as metrics_module
from .primitives import weighted_loss

__all__ = ["CompiledOutputs", "per_output", "log_names"]


def log_names(plain, weighted):
    """Keras 3's log names (its CompileMetrics.result) for metrics named ``plain`` then ``weighted``,
    each a name or an ``(output name, metric name)`` pair: "<output>_<name>"; a repeated name gets
    "_1", "_2", ...; a weighted metric whose name is taken becomes "[<output>_]weighted_<name>"."""
    full = lambda prefix, name: f"{prefix}_{name}" if prefix else name
    pairs = lambda names: [n if isinstance(n, tuple) else (None, n) for n in names]
    counters, out = {}, []
    for prefix, name in pairs(plain):
        key = full(prefix, name)
        if key in counters:
            counters[key] += 1
            key = f"{key}_{counters[key] - 1}"
        else:
            counters[key] = 1
        out.append(key)
    for prefix, name in pairs(weighted):
        key = full(prefix, name)
        if key in counters:
            key = full(prefix, f"weighted_{name}")
            if key in counters:
                counters[key] += 1
                key = f"{key}_{counters[key] - 1}"
            else:
                counters[key] = 1
        else:
            counters[key] = 1
        out.append(key)
    return out


def per_output(value, names, what, default=None, single_ok=True):
    """``value`` as a list with one entry per output: a dict by output name, a list / tuple in the
    outputs' order, or (single_ok) one value for every output; None gives ``default`` for each."""
    if value is None:
        return [default] * len(names)
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"{what}: unknown output name(s) {unknown}; the model's outputs are {names}.")
        return [value.get(name, default) for name in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(f"{what}: the model has {len(names)} outputs {names}; received a list of "
                             f"{len(value)}. Give one entry per output, or a dict by output name.")
        return list(value)
    if not single_ok:
        raise ValueError(f"{what}: the model has {len(names)} outputs {names}; give a list with one entry "
                         f"per output or a dict by output name; received {type(value).__name__}.")
    return [value] * len(names)


class LossTracker(metrics_module.MeanMetric):
    """The running mean of one output's (unweighted) loss, weighted by batch size, as Keras logs it."""

    def record(self, value, count):
        self._total.add(value, count)   # a 0-d backend array is not read here
        self._count.add(int(count))


def _metric_list(entry, loss, what):
    entries = [] if entry is None else entry if isinstance(entry, (list, tuple)) else [entry]
    return [metrics_module.get(m, loss=loss) for m in entries]


def _loss_log_names(specs, objects):
    """Keras 3's names for the outputs of a subclassed model returning a list: each output's loss
    as given (a string as written, else the loss's name), "_1", "_2" added where one repeats (Keras
    would log both under one key, the later one overwriting): "mse_loss", "mse_loss_1"."""
    names, seen = [], {}
    for spec, loss in zip(specs, objects):
        name = spec if isinstance(spec, str) else getattr(loss, "name", None) or getattr(spec, "__name__", "loss")
        count = seen.get(name, 0)
        seen[name] = count + 1
        names.append(f"{name}_loss" if not count else f"{name}_loss_{count}")
    return names


class CompiledOutputs:
    """What compile made of per-output losses, loss weights and metrics; runs the loss side of a step."""

    def __init__(self, names, loss, loss_weights, metrics, weighted_metrics=None, named_by_loss=False):
        self.names = names
        self.loss_specs = per_output(loss, names, "compile: loss")
        self.losses = [None if l is None else losses.get(l) for l in self.loss_specs]
        if all(l is None for l in self.losses):
            raise ValueError(f"compile: every output of {names} has loss None; give at least one a loss.")
        self.loss_weights = [float(w) for w in per_output(loss_weights, names, "compile: loss_weights", 1.0,
                                                          single_ok=False)]
        logged = _loss_log_names(self.loss_specs, self.losses) if named_by_loss else [f"{n}_loss" for n in names]
        self.trackers = [LossTracker(name=n) for n, l in zip(logged, self.losses) if l is not None]
        self.metrics = []   # (output index, metric renamed as its log names it, weighted?)
        self.metric_specs, self.weighted_metric_specs = {}, {}   # output name -> what rebuilds them (saving)
        for weighted, given, specs in ((False, metrics, self.metric_specs),
                                       (True, weighted_metrics, self.weighted_metric_specs)):
            for k, (name, entry) in enumerate(zip(names, self._per_output_metrics(given, weighted))):
                for metric in _metric_list(entry, self.losses[k], "compile: metrics"):
                    specs.setdefault(name, []).append(
                        metric.name if isinstance(entry, str) or isinstance(entry, (list, tuple)) and
                        metric.name in entry else {"class_name": type(metric).__name__, "config": metric.get_config()})
                    self.metrics.append((k, metric, weighted))
        # "<output>_<metric>" (unless named_by_loss: a subclassed model's list outputs keep the metrics' own names)
        prefix = lambda k, m: None if named_by_loss or m.name.startswith(f"{names[k]}_") else names[k]
        split = lambda weighted: [(prefix(k, m), m.name) for k, m, w in self.metrics if w == weighted]
        for (_, metric, _), log_name in zip(self.metrics, log_names(split(False), split(True))):
            metric.name = log_name

    def _per_output_metrics(self, metrics, weighted=False):
        what = "compile: weighted_metrics" if weighted else "compile: metrics"
        if metrics is None or isinstance(metrics, dict):
            return per_output(metrics, self.names, what)
        if not isinstance(metrics, (list, tuple)):
            raise TypeError(f"{what} must be a list or a dict by output name; received {metrics!r}.")
        return per_output(list(metrics), self.names, what)

    def training_config(self, optimizer_config):
        """The compile settings as saved files hold them (see gpunet.saving.model_file)."""
        loss = [spec if spec is None or isinstance(spec, str) else losses.serialize(loss)
                for spec, loss in zip(self.loss_specs, self.losses)]
        return {"loss": loss, "loss_weights": self.loss_weights, "metrics": self.metric_specs or None,
                "weighted_metrics": self.weighted_metric_specs or None, "optimizer_config": optimizer_config}

    @property
    def all_metrics(self):
        """Loss trackers first, then the metrics (the order of the logs and of metrics_names)."""
        return self.trackers + [m for _, m, _ in self.metrics]

    # -- targets and weights ---------------------------------------------------------------------
    def targets(self, y, count, output_shapes, where):
        """y as a list aligned with the outputs (None where an output has no loss), checked."""
        if y is None or not isinstance(y, (list, tuple, dict)):
            raise ValueError(f"{where}: the model has {len(self.names)} outputs {self.names}; y must be a list "
                             f"with one target array per output or a dict by output name; received "
                             f"{type(y).__name__}.")
        ys = per_output(y, self.names, f"{where}: y", single_ok=False)
        out = []
        for name, loss, target, shape in zip(self.names, self.losses, ys, output_shapes):
            if loss is None:
                out.append(None)
                continue
            if target is None:
                raise ValueError(f"{where}: output '{name}' has a loss but no targets.")
            target = np.asarray(target)
            if target.ndim == 0 or len(target) != count:
                raise ValueError(f"{where}: x has {count} samples but the targets of output '{name}' have "
                                 f"{len(target) if target.ndim else 'none (a scalar)'}; they must match.")
            loss.check_targets(target, shape, where=f"{where}: y['{name}']")
            out.append(target)
        return out

    def sample_weights(self, sample_weight, row_shapes, where):
        """One checked weight array (or None) per output from one array for all or one per output."""
        from .data.weights import check_sample_weight
        if sample_weight is None:
            return None
        if isinstance(sample_weight, (list, tuple, dict)):
            entries = per_output(sample_weight, self.names, f"{where}: sample_weight", single_ok=False)
        else:
            entries = [sample_weight] * len(self.names)
        return [None if w is None or loss is None else check_sample_weight(w, rows, f"{where}: sample_weight['{n}']")
                for n, loss, w, rows in zip(self.names, self.losses, entries, row_shapes)]

    # -- one step ---------------------------------------------------------------------------------
    def losses_and_gradients(self, ys, y_preds, ws, with_gradients):
        """(total loss, [dy per output or None]); records each output's loss and updates the metrics."""
        total, dys, values = self.compute(ys, y_preds, ws, with_gradients)
        self.record(ys, y_preds, values, ws)
        return total, dys

    def compute(self, ys, y_preds, ws, with_gradients):
        """``(total, dys, values)``: the weighted total loss (0-d, on the device, one weighted_total
        launch), the gradient per output (None without gradients) and each output's loss (None
        without a loss); no metric or tracker is touched (what a captured step runs: gpunet.jit)."""
        device, dys, values = backend.current(), [], []
        ws = ws or [None] * len(self.names)
        for loss, weight, y, p, w in zip(self.losses, self.loss_weights, ys, y_preds, ws):
            if loss is None:   # no loss: a zero gradient, so its layers still fill their (zero) grads
                dys.append(device.zeros(tuple(p.shape), p.dtype) if with_gradients else None)
                values.append(None)
                continue
            if with_gradients:
                value, dy = loss.device_compute(y, p, w)
                if weight != 1.0:   # d(weight * loss) = weight * d(loss): scale every row by it
                    dy = weighted_loss.scale_rows(dy, device.asarray(np.full(p.shape[:-1], weight), dtype=p.dtype))
                dys.append(dy)
            else:
                value = loss.device_value(y, p, w)
            values.append(value)
        pairs = [(v, weight) for v, weight in zip(values, self.loss_weights) if v is not None]
        total = weighted_loss.weighted_total([v for v, _ in pairs], [w for _, w in pairs])
        return total, dys, values

    def record(self, ys, y_preds, values, ws):
        """Each output's loss into its tracker (weighted by batch size) and the metrics updated (the
        weighted ones with the output's sample weights)."""
        ws = ws or [None] * len(self.names)
        trackers = iter(self.trackers)
        for value, p in zip(values, y_preds):
            if value is not None:
                next(trackers).record(value, len(p))
        for k, metric, weighted in self.metrics:
            if ys[k] is None:
                continue
            if weighted and ws[k] is not None:
                metric.update_state(ys[k], y_preds[k], sample_weight=ws[k])
            else:
                metric.update_state(ys[k], y_preds[k])
