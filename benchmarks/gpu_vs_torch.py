"""gpunet's cuda backend (the kernels in kernels/*.cu) against PyTorch with cuDNN, on one GPU.

    python benchmarks/gpu_vs_torch.py                  # every case, median of 50 after warm-up
    python benchmarks/gpu_vs_torch.py --cases train --repeats 100
    python benchmarks/gpu_vs_torch.py --precision tf32  # also mixed_float16, mixed_bfloat16 (autocast)
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
import unet_case                # noqa: E402  (the U-Net case and its torch twin)
import gpunet as gn             # noqa: E402


class DeviceCase:
    """One model pair (cases.ModelPair, unet_case.UNetPair) with its batch already on the device:
    ``gn_step`` / ``gn_predict``, and ``torch_step`` in the chosen precision."""

    def __init__(self, pair, precision, device):
        self.pair, self.model = pair, pair.model
        # The training loop's own conversions, done once: data is device-resident on both sides.
        self.xb, self.yb = self.model._to_backend([pair.x]), self.model._targets_to_backend(pair.y)
        self.torch_step = torch_step(pair, precision, device)

    def gn_step(self):
        return self.model._train_step(self.xb, self.yb)

    def gn_predict(self):
        return self.model.forward(self.xb, training=False)

    def torch_predict(self):
        return self.pair.torch_predict()


PRECISIONS = ("float32", "tf32", "mixed_float16", "mixed_bfloat16")


def set_precision(torch, precision):
    """Both libraries in one precision, set before the models are built (gpunet's policy decides
    the layers' dtypes when they are created). float32: no TF32 anywhere (torch's cuDNN allows TF32
    convs by default, so it is switched off); tf32: TF32 products on both sides; mixed_*: gpunet's
    dtype policy against torch autocast (+ GradScaler for float16), float32 leftovers as TF32."""
    tf32 = precision != "float32"
    gn.config.set_float32_matmul_precision("high" if tf32 else "highest")
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    if precision.startswith("mixed_"):
        gn.mixed_precision.set_global_policy(precision)


def torch_step(pair, precision, device):
    """A torch training step of ``pair`` in ``precision``: plain, or autocast (+ GradScaler)."""
    if not precision.startswith("mixed_"):
        return pair.torch_step
    torch = pair.torch
    dtype = torch.float16 if precision == "mixed_float16" else torch.bfloat16
    scaler = torch.amp.GradScaler(device) if dtype == torch.float16 else None

    def step():
        pair.torch_opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=dtype):
            loss = pair.torch_loss(pair.twin(pair.tx), pair.ty)
        if scaler is None:
            loss.backward()
            pair.torch_opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(pair.torch_opt)
            scaler.update()
        return float(loss.detach())
    return step


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


def model_cases(torch, names, device, batches, precision):
    out = []
    pairs = [("small CNN 28x28x1", shared.ModelPair(torch, "cnn", batches[0], device)),
             ("encoder-decoder 32x32x1", shared.ModelPair(torch, "autoencoder", batches[1], device)),
             (f"U-Net {batches[3]}x{batches[3]}x3, 32-256 ch", unet_case.UNetPair(torch, batches[2], device,
                                                                               size=batches[3]))]
    for (label, pair), batch in zip(pairs, batches):
        case = DeviceCase(pair, precision, device)
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
    parser.add_argument("--precision", default="float32", choices=PRECISIONS,
                        help="float32 (no TF32 on either side), tf32, or a mixed policy against torch "
                             "autocast (mixed_bfloat16 needs CuPy's ml_dtypes bfloat16 arrays: experimental in CuPy)")
    parser.add_argument("--dry-run", action="store_true",
                        help="no GPU needed: cudasim against torch on the CPU, batch 2, ops skipped")
    args = parser.parse_args(argv)
    import torch
    device, clocks = setup(torch, args.dry_run)
    set_precision(torch, args.precision)
    batches = (2, 2, 1, 32) if args.dry_run else (64, 32, 16, 128)   # CNN, enc-dec, U-Net batch, U-Net size
    repeats, warmup = (1, 0) if args.dry_run else (args.repeats, args.warmup)
    gpu = "dry run (cudasim vs torch CPU)" if args.dry_run else torch.cuda.get_device_name()
    print(f"gpunet {gn.__version__} {gn.get_backend()} backend | torch {torch.__version__}, cuDNN "
          f"{torch.backends.cudnn.version()} | {gpu} | {args.precision} | median of {repeats}")
    cases = model_cases(torch, args.cases, device, batches, args.precision)
    if "ops" in args.cases and not args.dry_run:    # op shapes are full size: far too slow on cudasim
        cases += shared.op_cases(torch, device)
    width = max(len(c[0]) for c in cases) + 2
    print(f"{'case':<{width}}{'gpunet ms':>10}{'torch ms':>10}{'ratio':>8}")
    for name, gn_fn, torch_fn in cases:
        g, t = time_pair(gn_fn, torch_fn, clocks, repeats, warmup)
        print(f"{name:<{width}}{g * 1e3:>10.3f}{t * 1e3:>10.3f}{g / t:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
