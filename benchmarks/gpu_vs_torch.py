"""gpunet's cuda backend (the kernels in kernels/*.cu) against PyTorch with cuDNN, on one GPU.

    python benchmarks/gpu_vs_torch.py                  # every case, median of 50 after warm-up
    python benchmarks/gpu_vs_torch.py --cases train --repeats 100
    python benchmarks/gpu_vs_torch.py --dry-run         # no GPU: cudasim against torch on the CPU,
                                                       # tiny batches, to check the script itself

The cases are those of ``cpu_vs_torch.py`` (the same models, batches, initial weights and op
shapes). Data is on the device before timing starts, on both sides. Each library is timed with
its own CUDA events (CuPy's for gpunet, torch.cuda's for torch) recorded on its current stream
around one call, interleaved as in the CPU benchmark; a training step ends with ``float(loss)``
on both sides, a host sync that both libraries' training loops also make. cuDNN autotuning
(``torch.backends.cudnn.benchmark``) is on, as a tuned PyTorch setup would have it; the first
warm-up calls pay for it and for gpunet's NVRTC compiles.
"""
import argparse
import os
import statistics
import sys
import time


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cases as shared          # noqa: E402  (the same models, twins and op cases)
import gpunet as gn             # noqa: E402


class DeviceModelCase(shared.ModelPair):
    """One model on both sides with its batch already on the device; ``step`` and ``predict``."""

    def __init__(self, torch, kind, batch, device, lr=0.01, seed=0):
        super().__init__(torch, kind, batch, device, lr, seed)
        # The training loop's own conversions, done once: data is device-resident on both sides.
        self.xb, self.yb = self.model._to_backend([self.x]), self.model._targets_to_backend(self.y)

    def gn_step(self):
        return self.model._train_step(self.xb, self.yb)

    def gn_predict(self):
        return self.model.forward(self.xb, training=False)


class Clock:
    """Times one call on a device with a library's events; plain wall time in a dry run."""

    def __init__(self, event_type, synchronize):
        self.event_type, self.synchronize = event_type, synchronize

    def __call__(self, fn):
        if self.event_type is None:
            start = time.perf_counter()
            fn()
            self.synchronize()
            return time.perf_counter() - start
        begin, end = self.event_type(), self.event_type()
        begin.record()
        fn()
        end.record()
        end.synchronize()
        return self.elapsed(begin, end)

    def elapsed(self, begin, end):
        raise NotImplementedError


class CupyClock(Clock):
    def elapsed(self, begin, end):
        xp = gn.backend.current().xp
        return xp.cuda.get_elapsed_time(begin, end) / 1e3


class TorchClock(Clock):
    def elapsed(self, begin, end):
        return begin.elapsed_time(end) / 1e3


def time_pair(gn_fn, torch_fn, clocks, repeats, warmup):
    """Median seconds of each side, interleaved, alternating which side goes first."""
    for _ in range(warmup):
        clocks[0](gn_fn), clocks[1](torch_fn)
    times = ([], [])
    for r in range(repeats):
        for side in ((0, 1) if r % 2 == 0 else (1, 0)):
            times[side].append(clocks[side]((gn_fn, torch_fn)[side]))
    return statistics.median(times[0]), statistics.median(times[1])


def setup(torch, dry_run):
    """Backend, torch device and the two clocks."""
    if dry_run:
        gn.set_backend("cudasim")
        return "cpu", (CupyClock(None, lambda: None), TorchClock(None, lambda: None))
    gn.set_backend("cuda")
    if not torch.cuda.is_available():
        raise SystemExit("torch sees no GPU: install a CUDA build of torch, or use --dry-run.")
    torch.backends.cudnn.benchmark = True
    xp = gn.backend.current().xp
    return "cuda", (CupyClock(xp.cuda.Event, gn.backend.current().synchronize),
                    TorchClock(lambda: torch.cuda.Event(enable_timing=True), torch.cuda.synchronize))


def model_cases(torch, names, device, batches):
    out = []
    for kind, batch in zip(("cnn", "autoencoder"), batches):
        case = DeviceModelCase(torch, kind, batch, device)
        label = "small CNN 28x28x1" if kind == "cnn" else "encoder-decoder 32x32x1"
        if "train" in names:
            out.append((f"train step: {label}, batch {batch}", case.gn_step, case.torch_step))
        if "predict" in names:
            out.append((f"predict: {label}, batch {batch}", case.gn_predict, case.torch_predict))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--cases", nargs="+", default=["train", "predict", "ops"],
                        choices=["train", "predict", "ops"])
    parser.add_argument("--dry-run", action="store_true",
                        help="no GPU needed: cudasim against torch on the CPU, batch 2, ops skipped")
    args = parser.parse_args(argv)
    import torch
    device, clocks = setup(torch, args.dry_run)
    batches = (2, 2) if args.dry_run else (64, 32)
    repeats, warmup = (1, 0) if args.dry_run else (args.repeats, args.warmup)
    gpu = "dry run (cudasim vs torch CPU)" if args.dry_run else torch.cuda.get_device_name()
    print(f"gpunet {gn.__version__} {gn.get_backend()} backend | torch {torch.__version__}, cuDNN "
          f"{torch.backends.cudnn.version()} | {gpu} | median of {repeats}")
    cases = model_cases(torch, args.cases, device, batches)
    if "ops" in args.cases and not args.dry_run:    # op shapes are full size: far too slow on cudasim
        cases += shared.op_cases(torch, device)
    width = max(len(c[0]) for c in cases) + 2
    print(f"{'case':<{width}}{'gpunet ms':>10}{'torch ms':>10}{'ratio':>8}")
    for name, gn_fn, torch_fn in cases:
        g, t = time_pair(gn_fn, torch_fn, clocks, repeats, warmup)
        print(f"{name:<{width}}{g * 1e3:>10.3f}{t * 1e3:>10.3f}{g / t:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
