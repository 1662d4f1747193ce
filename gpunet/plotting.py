"""Training curves as a PNG: ``gn.utils.plot_history(history, path)``.

matplotlib is an optional dependency (``pip install matplotlib``, or ``pip install -e ".[examples]"``
from a checkout); it is imported only when a plot is drawn, and through
``matplotlib.figure.Figure`` rather than ``pyplot``, so a plot never opens a window, needs no
display and leaves the user's pyplot backend alone.
"""

__all__ = ["plot_history"]

_INSTALL_HINT = ("gpunet.utils.plot_history draws with matplotlib, which is not installed. "
                 "Install it with: pip install matplotlib  (or, from a checkout of gpunet: "
                 "pip install -e \".[examples]\")")


def _import_figure():
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    return Figure


def _history_dict(history):
    """The per-epoch dict of a History (``.history``) or of a plain dict, checked."""
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise TypeError(f"plot_history takes the History that fit() returns, or its .history dict; "
                        f"received {type(history).__name__}.")
    if not any(len(values) for values in logs.values()):
        raise ValueError("plot_history: the history is empty (no epoch was trained); nothing to draw.")
    return logs


def _values(logs, key):
    """The per-epoch values of ``key`` as a list ([] when absent); NumPy arrays are accepted too."""
    values = logs.get(key)
    return [] if values is None else [float(v) for v in values]


def _panels(logs):
    """Quantities to draw, one panel each: 'loss' first, then the metrics, then the learning rate
    when it changed (a constant rate is noise). ``val_x`` shares the panel of ``x``."""
    names = [k for k in logs if not k.startswith("val_")]
    names += [k[4:] for k in logs if k.startswith("val_") and k[4:] not in logs]
    ordered = [n for n in names if n == "loss"] + [n for n in names if n not in ("loss", "learning_rate")]
    rates = _values(logs, "learning_rate")
    return ordered + (["learning_rate"] if len(set(rates)) > 1 else [])


def plot_history(history, path, title=None, dpi=100):
    """Draw each quantity of ``history`` per epoch, training and validation, into a PNG at ``path``.

    history: the ``History`` that ``model.fit`` returns, or its ``.history`` dict of per-epoch
    lists (``{"loss": [...], "val_loss": [...], "accuracy": [...], ...}``). One panel per
    quantity: ``loss`` first, each metric next (``val_<name>`` drawn in the panel of ``<name>``),
    ``learning_rate`` last (log scale) when a schedule or callback changed it. Epochs are
    numbered from 1. Returns ``path``.

    Raises ImportError (saying ``pip install matplotlib``) when matplotlib is missing.
    """
    logs = _history_dict(history)
    Figure = _import_figure()
    panels = _panels(logs)
    if not panels:
        raise ValueError(f"plot_history: nothing to draw in a history holding only {sorted(logs)}.")
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(4.2 * columns, 3.2 * rows))
    for index, name in enumerate(panels):
        axes = figure.add_subplot(rows, columns, index + 1)
        for key, label, style in ((name, "training", "-"), (f"val_{name}", "validation", "--")):
            values = _values(logs, key)
            if len(values):
                axes.plot(range(1, len(values) + 1), values, style, marker="o", markersize=3, label=label)
        if name == "learning_rate":
            axes.set_yscale("log")
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.grid(True, alpha=0.3)
        axes.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=dpi)
    return path
