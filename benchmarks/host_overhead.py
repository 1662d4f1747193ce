"""What gpunet's Python costs per kernel launch, measured on the CPU with no GPU and no kernel run.

    python benchmarks/host_overhead.py                  # both model cases, 200 steps each
    python benchmarks/host_overhead.py --steps 50 --repeats 5

The models of ``cases.py`` (small CNN batch 64, encoder-decoder batch 32) take training steps
(``model._train_step`` on data already on the backend, as gpu_vs_torch.py steps them) on the
``noop`` backend: every op takes its kernel branch and the launch runs everything the cuda
backend runs in Python before CuPy's own launch (argument checks, grid and scalar arguments),
then returns without computing. Printed per case: launches per step, the host time of a whole
step, that time per launch (everything gpunet's Python does for the step, spread over its
launches), and the launch path alone per launch (the step's launches replayed through
``launch.run``, the call every op makes: its count, ``pack`` and the backend's checks). Times are CPU time of this process (``time.process_time``), so a busy
machine slows them less than wall time; on an idle one the two agree. On a GPU, CuPy adds its
own launch cost (a few µs) on top of these.

Beside it, when torch is importable, PyTorch's CPU cost per op for the same model: its twin
(cases.torch_twin) stepping on the ``meta`` device (dispatch and autograd, no compute), the
step's time divided by the ATen ops it dispatched. Without torch the gpunet figures print alone.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import gpunet as gn  # noqa: E402
from gpunet.primitives import launch  # noqa: E402
import cases  # noqa: E402

CASES = {"cnn": (64, (28, 28, 1), 10, "sparse_categorical_crossentropy"),
         "autoencoder": (32, (32, 32, 1), 0, "mse")}


def _model(kind):
    batch, shape, classes, loss = CASES[kind]
    gn.utils.set_random_seed(0)
    model = cases.gn_cnn() if kind == "cnn" else cases.gn_autoencoder()
    model.compile(optimizer=gn.optimizers.SGD(learning_rate=0.01), loss=loss)
    x, y = cases.make_data(np.random.default_rng(0), (batch, *shape), classes)
    return model, x, y


def _median_seconds(fn, steps, repeats):
    """Median CPU seconds of this process per call: other processes on the cores do not count."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(steps):
            fn()
        times.append((time.process_time() - start) / steps)
    return statistics.median(times)


def gpunet_case(kind, steps, repeats):
    """(launches per step, host seconds per step, launch-path seconds per launch) on ``noop``."""
    with gn.backend.use("noop") as be:
        model, x, y = _model(kind)
        xb, yb = be.asarray(x), be.asarray(y, dtype=y.dtype if y.dtype.kind in "iu" else np.float32)
        step = lambda: model._train_step(xb, yb)   # noqa: E731
        for _ in range(3):
            step()
        recorded, real_launch = [], be.launch
        be.launch = lambda *call: recorded.append(call)
        step()
        be.launch = real_launch
        per_step = _median_seconds(step, steps, repeats)

        def replay():   # launch.run as the ops call it: the count, pack, the backend's checks
            for file, kernel, grid, block, arguments in recorded:
                launch.run(file, kernel, grid, block, *arguments)
        per_launch_path = _median_seconds(replay, max(1, steps // 4), repeats) / len(recorded)
    return len(recorded), per_step, per_launch_path


def torch_case(torch, kind):
    """(ATen ops per step, CPU seconds per op) of the torch twin stepping on the meta device."""
    from torch.utils._python_dispatch import TorchDispatchMode
    with gn.backend.use("numpy"):
        pair = cases.ModelPair(torch, kind, CASES[kind][0], device="meta")

    def step():
        pair.torch_opt.zero_grad(set_to_none=True)
        pair.torch_loss(pair.twin(pair.tx), pair.ty).backward()
        pair.torch_opt.step()

    class Count(TorchDispatchMode):
        ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.ops += 1
            return func(*args, **(kwargs or {}))

    for _ in range(3):
        step()
    with Count():
        step()
    return Count.ops, _median_seconds(step, 50, 5) / Count.ops


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median printed)")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError as exc:
        torch, why = None, f"torch is not importable here ({exc}); gpunet's figures alone"
    print(f"{'case':<12} {'launches':>8} {'step µs':>9} {'µs/launch':>10} {'launch path µs':>15}   torch (meta device)")
    for kind in args.cases:
        launches, step, path = gpunet_case(kind, args.steps, args.repeats)
        line = f"{kind:<12} {launches:>8} {step * 1e6:>9.1f} {step / launches * 1e6:>10.2f} {path * 1e6:>15.2f}"
        if torch is not None:
            try:
                ops, per_op = torch_case(torch, kind)
                line += f"   {ops} ops, {per_op * 1e6:.2f} µs/op"
            except Exception as exc:   # a torch build without meta kernels for some op
                line += f"   failed: {type(exc).__name__}: {exc}".split("\n")[0]
        print(line)
    if torch is None:
        print(why)


if __name__ == "__main__":
    main()
