"""The part of ``Optimizer`` that keeps the step count in device memory (a mixin).

On a kernel backend an optimizer holds a :class:`~gpunet.primitives.optim_state.StepState`
(made by ``build``): the fused update kernel takes the rate of the schedule, Adam's step and a
LossScaleOptimizer's skip flag from it and counts the step there, so a captured training step
(a CUDA graph) replays with the right numbers. The host keeps a mirror of the count while it
can follow it (``_host_iterations``; None after steps only the device saw) and reads the
device only when asked.
"""
from .primitives import optim_state

__all__ = ["DeviceStep"]


class DeviceStep:
    """``iterations`` (host mirror or device read), the fused kernels' ``(state, settings)``, one step."""

    # -- the step count: on a kernel backend it lives in device memory ---------------------
    @property
    def iterations(self):
        """Updates applied so far, an int. On a kernel backend the update kernel counts them in
        device memory (so that a captured step replays correctly); reading this after steps the
        host could not follow (a LossScaleOptimizer's, a replayed graph's) reads the device."""
        if self._host_iterations is None:
            self._host_iterations = int(self._step.get(optim_state.ITERATIONS))
        return self._host_iterations

    @iterations.setter
    def iterations(self, value):
        self._host_iterations = int(value)
        if self._step is not None:
            self._step.set(optim_state.ITERATIONS, self._host_iterations)
            self._device_stale = False

    def _device_step(self):
        """``(StepState, settings)`` for the fused update kernels, or None (numpy, or a rate the
        device cannot evaluate: a plain callable)."""
        if self._step is None:
            return None
        form = optim_state.schedule_form(self._learning_rate)
        if form is None:
            return None
        if self._device_stale:   # steps the host counted alone (the per-parameter path)
            self._step.set(optim_state.ITERATIONS, self._host_iterations)
            self._device_stale = False
        return self._step, self._step.settings(form, *self._kernel_betas(), growth_steps=self._growth_steps)

    def _kernel_betas(self):
        """``(beta_1, beta_2)`` for the kernel's Adam bias correction; (0, 0): none."""
        return 0.0, 0.0

    # -- one step ------------------------------------------------------------------------
    def _step_once(self, indices, params, grads):
        """Update with (clipped) gradients and count the step; True when the device counted it
        (a fused kernel read the rate from the device state), False when the host did."""
        step = self._device_step()
        # the rate on the host: unknown (None) only while the device alone knows the step count
        lr = None if step is not None and self._host_iterations is None else self.current_learning_rate()
        counted = self._update_all(indices, params, grads, lr, step)
        if counted:
            if self._host_iterations is not None:
                self._host_iterations += 1
            return True
        self._host_iterations = self.iterations + 1
        self._device_stale = self._step is not None
        return False

