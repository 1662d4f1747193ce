"""Data-parallel throughput: training samples per second on 1 and N ranks, and the scaling efficiency.

    python benchmarks/data_parallel.py                    # numpy, 1 and 2 ranks, 1 BLAS thread each
    python benchmarks/data_parallel.py --backend cuda --ranks 1 2 4 8   # a GPU node: NCCL

The script launches itself under ``mpiexec -n N`` for each rank count; every rank trains the
benchmark CNN (benchmarks/cases.py, 28x28x1, two convs, two dense) with ``fit`` on random data,
the *global* batch fixed (``--batch``, split over the ranks), so N ranks do the work of one
with N times the hardware. Each rank count runs ``--repeats`` times; the table gives the median
samples/s and the spread (max - min over median), and efficiency = rate(N) / (N * rate(1)).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))


def worker(args):
    import gpunet as gn
    from cases import gn_cnn
    gn.set_backend(args.backend)
    gn.distribute.set_distribution(gn.distribute.DataParallel())
    gn.utils.set_random_seed(0)
    model = gn_cnn()
    model.compile(gn.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    samples = args.batch * args.steps
    x = rng.standard_normal((samples, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, samples)
    model.fit(x[:args.batch * 2], y[:args.batch * 2], batch_size=args.batch, verbose=0)   # warm up
    start = time.perf_counter()
    model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, shuffle=False)
    gn.backend.current().synchronize()
    seconds = time.perf_counter() - start
    if gn.distribute.distribution().is_chief:
        print(json.dumps({"samples_per_s": samples / seconds}), flush=True)


def run(ranks, args):
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    mpiexec = mpiexec if os.path.exists(mpiexec) else shutil.which("mpiexec")
    command = [mpiexec, "-n", str(ranks), sys.executable, os.path.abspath(__file__), "--worker",
               "--backend", args.backend, "--batch", str(args.batch), "--steps", str(args.steps)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", GPUNET_NUM_THREADS="1")
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["samples_per_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=64, help="global batch (split over the ranks)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    print(f"backend {args.backend}, global batch {args.batch}, {args.steps} steps, {os.cpu_count()} cores, "
          f"1 BLAS thread per rank; median of {args.repeats} runs")
    print(f"{'ranks':>5} {'samples/s':>10} {'spread':>7} {'efficiency':>10}")
    base = None
    for ranks in args.ranks:
        rates = sorted(run(ranks, args) for _ in range(args.repeats))
        median = rates[len(rates) // 2]
        base = base or median / ranks
        print(f"{ranks:>5} {median:>10.1f} {(rates[-1] - rates[0]) / median:>6.0%} "
              f"{median / (ranks * base):>10.0%}", flush=True)


if __name__ == "__main__":
    main()
