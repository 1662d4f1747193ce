"""What models print: the progress of fit / evaluate / predict (``model.summary()`` is in summary.py).

verbose=1 ("auto") draws a tqdm bar per epoch with the running loss and metrics when stdout
is a terminal, replaced at the end of the epoch by one line with the epoch's results; off a
terminal (a log file: no bar spam), and with verbose=2, only that line; verbose=0 prints nothing.
"""
import shutil
import sys
import time

from tqdm import tqdm

# Shown by History and callbacks, but noise on the progress line.
_HIDDEN = ("learning_rate",)
REFRESH_SECONDS = 0.5   # how often the bar reads the running logs from the device


def resolve_verbose(verbose):
    if verbose == "auto" or verbose is True:
        return 1
    if verbose is False or verbose is None:
        return 0
    if isinstance(verbose, int) and verbose in (0, 1, 2):
        return verbose
    raise ValueError(f"verbose must be 0, 1, 2 or 'auto'; received {verbose!r}.")


def format_logs(logs):
    """``{'loss': 0.25, 'accuracy': 0.9}`` -> ``'loss: 0.2500 - accuracy: 0.9000'``."""
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items() if k not in _HIDDEN)


class Progress:
    """One pass (an epoch, an evaluation, a prediction): ``start``, ``update`` per batch, ``finish``."""

    def __init__(self, verbose, stream=None):
        level = resolve_verbose(verbose)
        self.stream = stream or sys.stdout
        terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.mode = {0: None, 1: "bar" if terminal else "line", 2: "line"}[level]
        self.bar, self.title, self.steps, self.started, self.shown = None, "", 0, 0.0, 0.0

    def start(self, steps, title):
        self.title, self.steps, self.started = title, steps, time.perf_counter()
        self.shown = 0.0   # the first step's logs show at once
        if self.mode == "bar":
            # A terminal that reports a 0x0 size (some ptys) would make tqdm draw nothing;
            # shutil falls back to 80x24 there.
            size = shutil.get_terminal_size()
            self.bar = tqdm(total=steps, desc=title, file=self.stream, unit="step", leave=False,
                            ncols=size.columns, nrows=size.lines)

    def update(self, logs):
        """One step done. ``logs``: a dict, or a function returning one, called only when the bar
        shows them (at most every REFRESH_SECONDS and on the last step), since reading the
        running logs makes the host wait for the device."""
        if self.bar is not None:
            self.bar.update(1)
            now = time.perf_counter()
            if now - self.shown >= REFRESH_SECONDS or self.bar.n >= self.steps:
                self.shown = now
                logs = logs() if callable(logs) else logs
                if logs:
                    self.bar.set_postfix_str(format_logs(logs), refresh=False)

    def finish(self, logs):
        """End the pass. The bar (if any) gives way to one full line: the validation results and
        metrics would not fit beside a bar in a narrow terminal."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.mode is not None:
            seconds = time.perf_counter() - self.started
            parts = [self.title, f"{self.steps} step" + "s" * (self.steps != 1), f"{seconds:.1f}s"]
            if self.steps:
                # Keras's per-step time: on small models the pass takes less than 0.05 s.
                parts.append(f"{1000 * seconds / self.steps:.0f}ms/step")
            if format_logs(logs):
                parts.append(format_logs(logs))
            print(" - ".join(parts), file=self.stream, flush=True)
