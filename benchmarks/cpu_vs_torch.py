"""gpunet (numpy backend) against PyTorch on the CPU: the same models, batch and initial weights.

    python benchmarks/cpu_vs_torch.py                 # every case, 2 threads a side
    python benchmarks/cpu_vs_torch.py --threads 1 --repeats 30 --cases train predict
    python benchmarks/cpu_vs_torch.py --memory        # also peak memory of a training step

Each case runs both libraries in one process, interleaved (gpunet, torch, torch, gpunet, ...),
after warm-up; the median of the repeats is printed with the ratio gpunet / torch (below 1:
gpunet is faster). Both sides get the same number of threads: torch's intra-op pool, NumPy's
OpenBLAS pool and gpunet's pool for memory-bound passes. Before the first step the two models
are checked to give the same loss from the same weights, so the two sides time one computation.

Idle threads of one library's pool spin and steal the cores of the other's, which turns the
ratios into noise: this script sets ``OMP_WAIT_POLICY=PASSIVE`` and ``OPENBLAS_THREAD_TIMEOUT=4``
(unless the environment sets them) before NumPy or torch is imported, and prints them. Another
process busy on the same cores is worse still (see ForeignLoad); the script reports one.
PyTorch is a benchmark-only dependency (see README.md here).
"""
import os

# Defaults only, so that their effect can be measured: OMP_WAIT_POLICY=ACTIVE python ...
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse      # noqa: E402  (the environment above must be set before NumPy loads)
import gc            # noqa: E402
import json          # noqa: E402
import statistics    # noqa: E402
import subprocess    # noqa: E402
import sys           # noqa: E402
import time          # noqa: E402

import numpy as np   # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import gpunet as gn  # noqa: E402
from cases import ModelPair, op_cases  # noqa: E402

gn.set_backend("numpy")


# -- the model cases on the CPU --------------------------------------------------------------

class ModelCase(ModelPair):
    """One model in both libraries (cases.ModelPair), gpunet stepping through train_on_batch."""

    def gn_step(self):
        return self.model.train_on_batch(self.x, self.y)

    def gn_predict(self):
        return self.model.predict(self.x, batch_size=len(self.x), verbose=0)

    def check_same(self):
        """Same weights, same data: the two losses agree before timing starts (float32 tolerance)."""
        a, b = self.gn_step(), self.torch_step()
        if abs(a - b) > 1e-4 * max(1.0, abs(b)):
            raise AssertionError(f"gpunet loss {a} differs from torch loss {b}: the twins diverge.")


# -- timing -----------------------------------------------------------------------------------

class ForeignLoad:
    """CPU time other processes used while a block ran, as a fraction of all cores (Linux).

    Another process on the same cores makes a BLAS thread miss its partner at every barrier
    (a scheduler tick, 4 ms, each time), so a result measured next to one is not a result.
    """

    def __enter__(self):
        self._start = self._sample()
        return self

    def __exit__(self, *exc):
        (busy0, own0, t0), (busy1, own1, t1) = self._start, self._sample()
        ticks = os.sysconf("SC_CLK_TCK")
        other = (busy1 - busy0) / ticks - (own1 - own0)
        self.fraction = max(0.0, other) / max(1e-9, (t1 - t0) * (os.cpu_count() or 1))

    @staticmethod
    def _sample():
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except OSError:
            fields = [0] * 5
        busy = sum(fields) - fields[3] - fields[4]      # minus idle and iowait
        times = os.times()
        return busy, times.user + times.system, time.monotonic()


def time_pair(gn_fn, torch_fn, repeats, warmup):
    """Median seconds of each callable, run interleaved, alternating which goes first."""
    for _ in range(warmup):
        gn_fn(), torch_fn()
    times = ([], [])
    for r in range(repeats):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for side in order:
            fn = (gn_fn, torch_fn)[side]
            start = time.perf_counter()
            fn()
            times[side].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def model_cases(torch, names):
    """(name, gpunet callable, torch callable) for the requested model cases."""
    out = []
    for kind, batch in (("cnn", 64), ("autoencoder", 32)):
        case = ModelCase(torch, kind, batch)
        case.check_same()
        label = "small CNN 28x28x1" if kind == "cnn" else "encoder-decoder 32x32x1"
        if "train" in names:
            out.append((f"train step: {label}, batch {batch}", case.gn_step, case.torch_step))
        if "predict" in names:
            out.append((f"predict: {label}, batch {batch}", case.gn_predict, case.torch_predict))
    return out


# -- peak memory: one fresh process per side ----------------------------------------------------

def _status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def measure_step_memory(torch, kind, side, steps=3):
    """Bytes by which the process's peak RSS rises over ``steps`` training steps (run in a child)."""
    batch = 64 if kind == "cnn" else 32
    case = ModelCase(torch, kind, batch)
    step = case.gn_step if side == "gpunet" else case.torch_step
    np.ones((64, 64), np.float32) @ np.ones((64, 64), np.float32)   # thread pools and BLAS buffers
    torch.ones(64, 64) @ torch.ones(64, 64)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                       # resets VmHWM to the current RSS
    base = _status("VmRSS")
    for _ in range(steps):
        step()
    return _status("VmHWM") - base


def memory_table(threads):
    rows = []
    for kind in ("cnn", "autoencoder"):
        peaks = {}
        for side in ("gpunet", "torch"):
            out = subprocess.run([sys.executable, __file__, "--threads", str(threads), "--_memory-child",
                                  kind, side], capture_output=True, text=True, check=True)
            peaks[side] = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append((f"train step memory: {kind}", peaks["gpunet"], peaks["torch"]))
    return rows


# -- main -------------------------------------------------------------------------------------

def set_threads(torch, threads):
    import threadpoolctl
    torch.set_num_threads(threads)
    threadpoolctl.threadpool_limits(threads)
    try:
        from gpunet.primitives import parallel
        parallel.set_num_threads(threads)
    except ImportError:
        pass


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=["train", "predict", "ops"],
                        choices=["train", "predict", "ops"])
    parser.add_argument("--only", default="", help="run the cases whose name contains this text")
    parser.add_argument("--memory", action="store_true", help="also peak memory of a training step")
    parser.add_argument("--_memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import torch
    set_threads(torch, args.threads)
    if args._memory_child:
        print(json.dumps(measure_step_memory(torch, *args._memory_child)))
        return
    import threadpoolctl
    blas = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    print(f"gpunet {gn.__version__} (numpy {np.__version__}, "
          f"{', '.join(p['internal_api'] + ' ' + str(p.get('architecture')) for p in blas)}) | "
          f"torch {torch.__version__} | {args.threads} threads a side | median of {args.repeats} | "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} "
          f"OPENBLAS_THREAD_TIMEOUT={os.environ['OPENBLAS_THREAD_TIMEOUT']}")
    tuned = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ]
    if tuned:   # they pin OpenBLAS's kernel choice: say so next to the numbers they change
        print("note: " + ", ".join(f"{k}={os.environ[k]}" for k in tuned) + " set in the environment")
    cases = model_cases(torch, args.cases) + (op_cases(torch) if "ops" in args.cases else [])
    cases = [c for c in cases if args.only in c[0]]
    width = max(len(c[0]) for c in cases) + 2
    print(f"{'case':<{width}}{'gpunet ms':>10}{'torch ms':>10}{'ratio':>8}")
    for name, gn_fn, torch_fn in cases:
        with ForeignLoad() as load:
            g, t = time_pair(gn_fn, torch_fn, args.repeats, args.warmup)
        note = f"   (other processes used {load.fraction:.0%} of the CPUs: noise)" if load.fraction > 0.05 else ""
        print(f"{name:<{width}}{g * 1e3:>10.2f}{t * 1e3:>10.2f}{g / t:>8.2f}{note}", flush=True)
    if args.memory:
        for name, g, t in memory_table(args.threads):
            print(f"{name:<{width}}{g / 2**20:>8.1f}MB{t / 2**20:>8.1f}MB{g / t:>8.2f}")


if __name__ == "__main__":
    main()
