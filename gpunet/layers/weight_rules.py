"""Keras's regularizer and constraint arguments for layers with a kernel and a bias (Dense,
Conv2D, Conv2DTranspose, ...): ``kernel_regularizer``, ``bias_regularizer``,
``activity_regularizer``, ``kernel_constraint``, ``bias_constraint``.

As in Keras: ``layer.losses`` holds the penalties (the weights' now, the output's of the last
call, divided by its batch size); training adds them to the loss and their gradients
to the weights' (and, for the activity penalty, to the output's) gradient; the constraints
rescale the weights in place after every optimizer step (``apply_constraints``).
"""
import numpy as np

from .. import constraints, regularizers

__all__ = ["WeightRulesMixin"]


class WeightRulesMixin:
    """Put before the other bases: ``class Dense(WeightRulesMixin, ActivationMixin, Layer)``.

    Expects the layer to keep ``kernel`` / ``bias`` (None without one), to fill ``grads`` as
    ``[dkernel, dbias]`` in ``_linear_backward``, and to route ``backward(dy)`` through it."""

    _weight_rules = True   # False: a layer whose Keras twin names its weights' rules otherwise

    def __init__(self, *args, kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        given = {"kernel_regularizer": kernel_regularizer, "bias_regularizer": bias_regularizer,
                 "activity_regularizer": activity_regularizer, "kernel_constraint": kernel_constraint,
                 "bias_constraint": bias_constraint}
        if not self._weight_rules and any(v is not None for v in given.values()):
            raise TypeError(f"{type(self).__name__} got unexpected argument(s): "
                            f"{', '.join(k for k, v in given.items() if v is not None)}.")
        super().__init__(*args, **kwargs)
        owner = f"{type(self).__name__} '{self.name}'"
        self.kernel_regularizer = _checked(regularizers.get, kernel_regularizer, owner, "kernel_regularizer")
        self.bias_regularizer = _checked(regularizers.get, bias_regularizer, owner, "bias_regularizer")
        self.activity_regularizer = _checked(regularizers.get, activity_regularizer, owner, "activity_regularizer")
        self.kernel_constraint = _checked(constraints.get, kernel_constraint, owner, "kernel_constraint")
        self.bias_constraint = _checked(constraints.get, bias_constraint, owner, "bias_constraint")
        self._activity = None   # (output, penalty) of the last training call

    # -- penalties -------------------------------------------------------------------------
    def __init_subclass__(cls, **kwargs):
        # A layer's own forward / backward / _linear_backward (defined below this mixin in the
        # class) get the rules' steps around them; an inner super() call runs them once only.
        super().__init_subclass__(**kwargs)
        for name, around in (("forward", _forward_rules), ("backward", _backward_rules),
                             ("_linear_backward", _weight_gradient_rules)):
            if name in cls.__dict__:
                setattr(cls, name, _once(name, cls.__dict__[name], around))

    @property
    def fusable_softmax(self):
        # The output's penalty needs the gradient with respect to the output itself.
        return self.activity_regularizer is None and super().fusable_softmax

    def regularization_losses(self):
        """The penalties (0-d backend arrays): kernel, bias, then the last training call's output."""
        found = []
        if self.kernel_regularizer is not None and self.kernel is not None:
            found.append(self.kernel_regularizer(self.kernel))
        if self.bias_regularizer is not None and self.bias is not None:
            found.append(self.bias_regularizer(self.bias))
        if self._activity is not None:
            found.append(self._activity[1])
        return found

    @property
    def losses(self):
        """Keras's ``layer.losses``: this layer's regularization penalties."""
        return self.regularization_losses()

    def apply_constraints(self):
        """Rescale the kernel and bias in place by their constraints (after an optimizer step)."""
        if self.kernel_constraint is not None and self.kernel is not None:
            self.kernel_constraint(self.kernel)
        if self.bias_constraint is not None and self.bias is not None:
            self.bias_constraint(self.bias)

    def get_config(self):
        if not self._weight_rules:
            return super().get_config()
        config = {**super().get_config(),
                  "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                  "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                  "kernel_constraint": constraints.serialize(self.kernel_constraint),
                  "bias_constraint": constraints.serialize(self.bias_constraint)}
        if self.activity_regularizer is not None:   # Keras's Layer.get_config lists it only when set
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config


def _once(name, method, around):
    """``method`` with ``around(self, call, *args)`` added on its outermost call only."""
    depth_key = f"_rules_depth{name}"

    def wrapped(self, *args, **kwargs):
        depth = self.__dict__.get(depth_key, 0)
        if depth:
            return method(self, *args, **kwargs)
        self.__dict__[depth_key] = 1
        try:
            return around(self, lambda *a, **k: method(self, *a, **k), *args, **kwargs)
        finally:
            self.__dict__[depth_key] = 0
    wrapped.__name__, wrapped.__doc__ = method.__name__, method.__doc__
    return wrapped


def _forward_rules(self, call, x, training=False):
    y = call(x, training=training)
    self._activity = None
    if self.activity_regularizer is not None:   # every call, as Keras (evaluate's loss has it too)
        batch = max(int(y.shape[0]), 1) if y.ndim else 1
        self._activity = (y, self.activity_regularizer(y, divisor=batch))
    return y


def _backward_rules(self, call, dy):
    if self._activity is not None:
        output, _ = self._activity
        dy = self.activity_regularizer.add_gradient(output, dy.copy(), 1.0 / max(int(output.shape[0]), 1))
    return call(dy)


def _weight_gradient_rules(self, call, dz):
    dx = call(dz)
    if self.grads:
        # The gradient of a weight is at that weight's place among the trainable ones.
        place = {id(w): i for i, w in enumerate(self.trainable_weights)}
        for rule, weight in ((self.kernel_regularizer, self.kernel), (self.bias_regularizer, self.bias)):
            if rule is not None and weight is not None and id(weight) in place:
                rule.add_gradient(weight, self.grads[place[id(weight)]])
    return dx


def _checked(get, identifier, owner, what):
    try:
        return get(identifier)
    except ValueError as error:
        raise ValueError(f"{owner} {what}: {error}") from None


def add_penalties(value, penalties):
    """``value + sum(penalties)`` for 0-d backend arrays, added on the device (no host read);
    ``value`` itself when there are none."""
    if not penalties:
        return value
    from .. import backend
    from ..primitives import launch
    device = backend.current()
    values = [device.asarray(v, dtype=np.float32).reshape(()) for v in [value, *penalties]]
    if device.runs_kernels:   # one launch through an address table: no host op, so a graph can hold it
        out = launch.empty((1,))
        launch.run("loss.cu", "sum_scalars", 1, launch.THREADS, launch.address_table(values), len(values), out,
                   launch.f32(1))
        return out.reshape(())
    return np.asarray(np.sum(device.xp.stack(values), dtype=np.float64), dtype=np.float32)


def _held(layer):
    """The layers under ``layer``: a model's ``layers``, a call() layer's tracked sublayers."""
    if hasattr(layer, "layers"):
        return layer.layers
    if hasattr(layer, "call"):
        from ..autodiff import layer_call
        return layer_call.tracked_layers(layer)
    return []


def model_regularization_losses(model):
    """Every penalty of the layers under ``model`` (nested models and the layers call() layers
    hold included), in layer order."""
    found = []
    for layer in _held(model):
        if hasattr(layer, "regularization_losses"):
            found.extend(layer.regularization_losses())
        found.extend(model_regularization_losses(layer))
    return found


def apply_model_constraints(model):
    """``apply_constraints`` on every layer under ``model`` that has constraints."""
    for layer in _held(model):
        if hasattr(layer, "apply_constraints"):
            layer.apply_constraints()
        apply_model_constraints(layer)
