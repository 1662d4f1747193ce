"""Learning-rate schedules: ``schedule(step) -> float``, with ``step`` the optimizer's ``iterations``.

    opt = gn.optimizers.SGD(learning_rate=gn.optimizers.schedules.CosineDecay(0.1, decay_steps=1000))
"""
import math
import numbers
import types

__all__ = ["LearningRateSchedule", "ExponentialDecay", "CosineDecay", "schedules",
           "serialize_schedule", "deserialize_schedule"]


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_positive(owner, what, value):
    if not _is_number(value) or value <= 0:
        raise ValueError(f"{owner}: {what} must be a number > 0; received {what}={value!r}.")


def _check_range(owner, what, value, low, high, high_open=False):
    """Raise a ValueError naming ``owner`` unless ``low <= value <= high`` (``< high`` if open)."""
    inside = _is_number(value) and low <= value and (value < high if high_open else value <= high)
    if not inside:
        bound = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
        raise ValueError(f"{owner}: {what} must be a number in {bound}; received {what}={value!r}.")


class LearningRateSchedule:
    """Base of learning-rate schedules: ``schedule(step) -> float``.

    ``step`` is the optimizer's ``iterations``: 0 for the first update. Subclasses define
    ``__call__`` and ``get_config`` (for saving); any plain callable ``step -> lr`` works too.
    Built-in schedules also have ``device_form()``: the update kernels evaluate them from the
    step count in device memory, so a captured training step (``jit_compile=True``) sees the
    rate advance; another callable is evaluated on the host, and cannot be captured.
    """

    def __call__(self, step):
        raise NotImplementedError(f"{type(self).__name__} must define __call__(step).")

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} must define get_config() to be saved.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``; ``staircase`` floors the exponent."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        _check_positive("ExponentialDecay", "decay_steps", decay_steps)
        self.initial_learning_rate, self.decay_steps = initial_learning_rate, decay_steps
        self.decay_rate, self.staircase, self.name = decay_rate, staircase, name

    def __call__(self, step):
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        return self.initial_learning_rate * self.decay_rate ** exponent

    def device_form(self):
        """``(1, numbers)``: kernels/optim_state.cuh evaluates this formula from the device step
        count (None for a subclass with its own ``__call__``)."""
        if type(self).__call__ is not ExponentialDecay.__call__:
            return None
        return 1, (self.initial_learning_rate, self.decay_steps, self.decay_rate, float(bool(self.staircase)))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay from the start rate to ``alpha`` times it over ``decay_steps``, then flat.

    ``rate * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps)) + alpha)``.
    With ``warmup_target``, the rate first rises linearly from ``initial_learning_rate`` to
    ``warmup_target`` over ``warmup_steps``, and the decay then starts from ``warmup_target``.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        _check_positive("CosineDecay", "decay_steps", decay_steps)
        self.initial_learning_rate, self.decay_steps, self.alpha = initial_learning_rate, decay_steps, alpha
        self.name, self.warmup_target, self.warmup_steps = name, warmup_target, warmup_steps

    def _decay(self, step, start_rate):
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return start_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            rise = self.warmup_target - self.initial_learning_rate
            return rise * (step / self.warmup_steps) + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def device_form(self):
        """``(2, numbers)`` for kernels/optim_state.cuh (a NaN warmup target: none); None for a
        subclass with its own ``__call__``."""
        if type(self).__call__ is not CosineDecay.__call__ or type(self)._decay is not CosineDecay._decay:
            return None
        target = math.nan if self.warmup_target is None else self.warmup_target
        return 2, (self.initial_learning_rate, self.decay_steps, self.alpha, target, self.warmup_steps)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


def _subclasses(base):
    found = {}
    for sub in base.__subclasses__():
        found[sub.__name__] = sub
        found.update(_subclasses(sub))
    return found


def serialize_schedule(schedule):
    """``{"class_name": ..., "config": ...}`` for a schedule object (Keras's layout)."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize_schedule(config, custom_objects=None):
    """The schedule a ``serialize_schedule`` dict (or a Keras-saved one) describes."""
    known = {**_subclasses(LearningRateSchedule), **(custom_objects or {})}
    name = config.get("class_name")
    if name not in known:
        raise ValueError(f"Unknown learning-rate schedule {name!r}; known: {', '.join(sorted(known))}.")
    return known[name].from_config(dict(config["config"]))


schedules = types.SimpleNamespace(
    LearningRateSchedule=LearningRateSchedule, ExponentialDecay=ExponentialDecay,
    CosineDecay=CosineDecay, serialize=serialize_schedule, deserialize=deserialize_schedule)
