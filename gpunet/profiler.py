"""What a training run asks of the device: kernels, launches, syncs and transfers per step.

    with gn.profiler.profile() as prof:
        model.fit(x, y, epochs=1, verbose=0)
    print(prof.summary())
    prof.launches_per_step, prof.syncs_per_step, prof.h2d_bytes, prof.d2h_bytes

It listens at the backend's launch and transfer points (``gpunet.backend.hooks``) and at the
step marks of the training loop, nowhere else. Per kernel: launches, total and mean time, FLOPs
and bytes from the shapes where known, and the fraction of the device's roof. Times are CUDA
events on the cuda backend (read when the summary is made, after the steps) and the wall time
of the CPU emulation on cudasim (marked "wall", with no device roof). The numpy backend runs no
kernels: it shows steps, syncs (none) and transfers (none) only.

A *sync* is a point where the host waits for the device: a device-to-host read, a
``synchronize()``, or an upload from pageable memory (``backend.asarray`` of host data, which
CuPy copies synchronously); ``upload_async`` from pinned memory is not one.
"""
import dataclasses
import time

import numpy as np

from .backend import hooks

__all__ = ["profile", "Profile", "device_roof"]


@dataclasses.dataclass
class KernelStats:
    file: str
    kernel: str
    launches: int = 0
    flops: float = 0.0     # summed over launches where known (None: unknown)
    bytes: float = 0.0
    timers: list = dataclasses.field(default_factory=list)
    flops_known: bool = True

    def seconds(self):
        return sum(t() for t in self.timers)


@dataclasses.dataclass
class StepStats:
    kind: str
    launches: int = 0
    syncs: int = 0
    h2d_bytes: int = 0
    d2h_bytes: int = 0
    seconds: float = 0.0


_GEMM = ("M", "K", "N")
_CONV = ("batch", "out_h", "out_w", "cout", "kh", "kw", "cin")


def kernel_flops(signature, args):
    """FLOPs of one launch from its scalar arguments (a multiply-add counts 2), or None if unknown.

    Known: the GEMMs (``M, K, N``) and the implicit-GEMM convolutions (``batch, out_h, out_w,
    cout, kh, kw, cin``: the dense count, an upper bound for strided input gradients).
    """
    scalars = {p.name: int(a) for p, a in zip(signature.params, args) if not p.pointer}
    if all(name in scalars for name in _GEMM):
        return 2.0 * scalars["M"] * scalars["K"] * scalars["N"]
    if all(name in scalars for name in _CONV):
        return 2.0 * float(np.prod([scalars[name] for name in _CONV]))
    return None


def kernel_bytes(signature, args):
    """Compulsory bytes of one launch: every array argument read or written once."""
    return float(sum(a.nbytes for p, a in zip(signature.params, args) if p.pointer))


# FP32 lanes per SM by compute capability major.minor (CUDA programming guide's throughput table).
_FP32_LANES = {(7, 0): 64, (7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 9): 128, (9, 0): 128, (10, 0): 128, (12, 0): 128}


# FP32 FLOP/s (no tensor cores) and DRAM bytes/s, NVIDIA's datasheets, when attributes fail.
_DATASHEET = {"H200": (67e12, 4.8e12), "H100 PCIe": (51e12, 2.0e12), "H100": (67e12, 3.35e12),
              "A100": (19.5e12, 2.0e12), "L40S": (91.6e12, 0.864e12), "V100": (15.7e12, 0.9e12)}


def device_roof():
    """``(peak FP32 FLOP/s, DRAM bytes/s, description)`` of the cuda device, or None on other backends."""
    from . import backend
    device = backend.current()
    if device.name != "cuda":
        return None
    cp = device.xp
    try:
        runtime, index = cp.cuda.runtime, cp.cuda.Device().id
        attribute = lambda code: runtime.deviceGetAttribute(code, index)
        sms, clock_khz = attribute(16), attribute(13)                # MultiProcessorCount, ClockRate
        mem_khz, bus_bits = attribute(36), attribute(37)             # MemoryClockRate, GlobalMemoryBusWidth
        major, minor = attribute(75), attribute(76)                  # ComputeCapabilityMajor / Minor
        lanes = _FP32_LANES.get((major, minor), 128 if major >= 9 else 64)
        flops = 2.0 * sms * lanes * clock_khz * 1e3
        bandwidth = 2.0 * mem_khz * 1e3 * bus_bits / 8
        return flops, bandwidth, f"sm_{major}{minor}: {flops / 1e12:.1f} TFLOP/s FP32, {bandwidth / 1e12:.2f} TB/s"
    except Exception:   # an attribute this CUDA version lacks: the datasheet, if the GPU is listed
        name = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["name"].decode()
        peaks = next((p for key, p in _DATASHEET.items() if key in name), None)
        return (*peaks, f"{name} (datasheet)") if peaks else None


class Profile:
    """Collects what the hooks report between ``__enter__`` and ``__exit__`` (see the module doc)."""

    def __init__(self):
        from . import backend
        self.backend = backend.current().name
        self.timing = {"cuda": "CUDA events", "cudasim": "wall (CPU emulation)"}.get(self.backend, "none")
        self.kernels, self.steps = {}, []
        self.launches = self.syncs = self.h2d_bytes = self.d2h_bytes = 0
        self.graph_kernels = 0   # kernels run inside replayed CUDA graphs (each replay: one launch)
        self._step, self._context, self._started = None, None, 0.0

    def __enter__(self):
        self._context = hooks.observe(self)
        self._context.__enter__()
        return self

    def __exit__(self, *exc):
        self._context.__exit__(*exc)
        return False

    # -- what the hooks call ------------------------------------------------------------
    def step_begin(self, kind):
        self._step, self._started = StepStats(kind), time.perf_counter()

    def step_end(self, kind):
        if self._step is not None:
            self._step.seconds = time.perf_counter() - self._started
            self.steps.append(self._step)
        self._step = None

    def launch(self, source, signature, grid, block, args, seconds):
        key = (source.path.name, signature.name)
        stats = self.kernels.setdefault(key, KernelStats(*key))
        stats.launches += 1
        stats.timers.append(seconds)
        flops = kernel_flops(signature, args)
        stats.flops_known = stats.flops_known and flops is not None
        stats.flops += flops or 0.0
        stats.bytes += kernel_bytes(signature, args)
        self.launches += 1
        if self._step is not None:
            self._step.launches += 1

    def graph_launch(self, kernels, seconds):
        """A replayed CUDA graph (jit_compile=True): one host call, listed as the kernel "cuda_graph"."""
        stats = self.kernels.setdefault(("(graph)", "cuda_graph"), KernelStats("(graph)", "cuda_graph"))
        stats.launches += 1
        stats.timers.append(seconds)
        stats.flops_known = False
        self.launches += 1
        self.graph_kernels += kernels
        if self._step is not None:
            self._step.launches += 1

    def transfer(self, direction, nbytes, sync):
        self.syncs += bool(sync)
        self.h2d_bytes += nbytes if direction == "h2d" else 0
        self.d2h_bytes += nbytes if direction == "d2h" else 0
        if self._step is not None:
            self._step.syncs += bool(sync)
            self._step.h2d_bytes += nbytes if direction == "h2d" else 0
            self._step.d2h_bytes += nbytes if direction == "d2h" else 0

    # -- what a test or a person reads ----------------------------------------------------
    def _mean(self, field, kind=None):
        steps = [s for s in self.steps if kind is None or s.kind == kind]
        return sum(getattr(s, field) for s in steps) / len(steps) if steps else 0.0

    @property
    def launches_per_step(self):
        """Mean kernel launches per step (all kinds of step; ``per_step("launches", "train")`` for one)."""
        return self._mean("launches")

    @property
    def syncs_per_step(self):
        """Mean host-device synchronisations per step."""
        return self._mean("syncs")

    def per_step(self, field, kind=None):
        """Mean of ``field`` ("launches", "syncs", "h2d_bytes", "d2h_bytes", "seconds") over steps of ``kind``."""
        return self._mean(field, kind)

    def summary(self, top=None):
        """The per-kernel and per-step tables as Markdown text (see docs/performance.md)."""
        return "\n".join(_kernel_table(self, top) + [""] + _step_table(self))


def _kernel_table(prof, top):
    roof = device_roof() if prof.backend == "cuda" else None
    head = (f"Kernels on {prof.backend} (time: {prof.timing}"
            + (f"; roof {roof[2]}" if roof else "; no device roof") + ")")
    lines = [head, "",
             "| kernel | file | launches | total ms | mean us | GFLOP | MB | % of roof |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    rows = sorted(prof.kernels.values(), key=lambda k: -k.seconds())
    for stats in rows[:top] if top else rows:
        seconds = stats.seconds()
        flops = stats.flops if stats.flops_known else None
        fraction = "-"
        if roof and seconds > 0:
            floor = max((flops or 0.0) / roof[0], stats.bytes / roof[1])
            fraction = f"{100 * floor / seconds:.0f}%"
        lines.append(f"| {stats.kernel} | {stats.file} | {stats.launches} | {seconds * 1e3:.2f} | "
                     f"{seconds / stats.launches * 1e6:.0f} | {'-' if flops is None else f'{flops / 1e9:.3f}'} | "
                     f"{stats.bytes / 1e6:.2f} | {fraction} |")
    return lines


def _step_table(prof):
    lines = ["| step | steps | launches / step | syncs / step | h2d KB / step | d2h KB / step | ms / step |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for kind in dict.fromkeys(s.kind for s in prof.steps):
        count = sum(s.kind == kind for s in prof.steps)
        lines.append(f"| {kind} | {count} | {prof.per_step('launches', kind):.1f} | {prof.per_step('syncs', kind):.1f} | "
                     f"{prof.per_step('h2d_bytes', kind) / 1e3:.1f} | {prof.per_step('d2h_bytes', kind) / 1e3:.1f} | "
                     f"{prof.per_step('seconds', kind) * 1e3:.1f} |")
    lines.append(f"Whole run: {prof.launches} launches, {prof.syncs} syncs, {prof.h2d_bytes / 1e3:.1f} KB up, "
                 f"{prof.d2h_bytes / 1e3:.1f} KB down.")
    return lines


def profile():
    """``with profile() as prof:`` record launches, syncs and transfers of the block (see the module doc)."""
    return Profile()
