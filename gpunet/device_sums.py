"""Sums of per-batch device scalars that the host reads only when something needs the value.

A training step's loss and a metric's batch total are 0-d backend arrays; reading one with
``float()`` makes the host wait for the device. :class:`DeviceSum` keeps them as they come and
reads all that have gathered in one transfer when ``value()`` is asked for (a progress-bar
refresh, a callback that wants batch logs, the end of an epoch)::

    total = DeviceSum()
    total.add(loss_value, weight=batch_size)   # no read
    total.value()                              # one device-to-host read of every pending value
"""
import numpy as np

from . import backend

__all__ = ["DeviceSum", "read_scalars"]


def read_scalars(values):
    """The 0-d backend arrays (or numbers) ``values`` as one float64 NumPy vector, in one read."""
    device = backend.current()
    stacked = device.xp.stack([device.asarray(v, dtype=np.float64).reshape(()) for v in values])
    return np.asarray(device.to_numpy(stacked), dtype=np.float64)


class DeviceSum:
    """``sum(weight_i * value_i)`` over added values, in float64 on the host when read."""

    def __init__(self):
        self.reset()

    def reset(self, value=0.0):
        self._host, self._values, self._weights = float(value), [], []

    def add(self, value, weight=1):
        """Add ``weight * value``; ``value`` a 0-d backend array (not read now) or a number (added on
        the host at once: a number never goes to the device and back)."""
        if isinstance(value, (int, float, np.integer, np.floating)):
            self._host += float(value) * weight
            return
        self._values.append(value)
        self._weights.append(weight)

    def value(self):
        """The sum so far, a float: reads what was added since the last read, in one transfer."""
        if self._values:
            for value, weight in zip(read_scalars(self._values).tolist(), self._weights):
                self._host += value * weight   # in order, as a running Python sum would
            self._values, self._weights = [], []
        return self._host
