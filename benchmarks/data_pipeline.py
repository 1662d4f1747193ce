"""Does the input pipeline keep the device busy? A PyDataset whose __getitem__ sleeps 20 ms (a
slow disk, a slow decoder) is trained with workers=1 and workers=4, against the same dataset
without the sleep; with 4 workers the epoch should take within 10% of the no-sleep time.

    python benchmarks/data_pipeline.py                   # the active backend (GPUNET_BACKEND)
    python benchmarks/data_pipeline.py --backend cuda --batches 64

The model is sized so that a training step costs more than 20 ms / 4 workers; each epoch is
timed after one warm-up epoch and the best of --repeats is printed.
"""
import argparse
import time

import numpy as np

import gpunet as gn
from gpunet import layers


class Batches(gn.utils.PyDataset):
    """``batches`` random (x, y) batches of 32 images 32x32x3; each __getitem__ sleeps ``delay`` seconds."""

    def __init__(self, batches, delay, **kwargs):
        super().__init__(**kwargs)
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((batches, 32, 32, 32, 3)).astype(np.float32)
        self.y = rng.integers(0, 10, (batches, 32))
        self.delay = delay

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        if self.delay:
            time.sleep(self.delay)
        return self.x[index], self.y[index]


def model(width):
    net = gn.Sequential([layers.Input((32, 32, 3)), layers.Conv2D(width, 3, padding="same", activation="relu"),
                         layers.MaxPooling2D(), layers.Conv2D(2 * width, 3, padding="same", activation="relu"),
                         layers.MaxPooling2D(), layers.Flatten(), layers.Dense(10), layers.Softmax()])
    net.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return net


def epoch_seconds(net, dataset, repeats):
    net.fit(dataset, epochs=1, verbose=0)   # warm-up: kernels compiled, buffers allocated
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        net.fit(dataset, epochs=1, verbose=0)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None)
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--width", type=int, default=32, help="filters of the first conv (the step's cost)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.020)
    args = parser.parse_args()
    if args.backend:
        gn.set_backend(args.backend)
    net = model(args.width)
    plain = epoch_seconds(net, Batches(args.batches, 0.0), args.repeats)
    step = plain / args.batches
    print(f"backend {gn.get_backend()}: {args.batches} batches of 32, a training step {1000 * step:.1f} ms")
    print(f"  no sleep                   {plain:7.3f} s / epoch")
    for workers in (1, 4):
        seconds = epoch_seconds(net, Batches(args.batches, args.delay, workers=workers), args.repeats)
        print(f"  sleep {1000 * args.delay:.0f} ms, workers={workers}     {seconds:7.3f} s / epoch  "
              f"({100 * (seconds / plain - 1):+.1f}% vs no sleep)")
    if step < args.delay / 4:
        print(f"  (a step of {1000 * step:.1f} ms is shorter than {1000 * args.delay:.0f} ms / 4 workers: "
              f"no pipeline can hide the sleep; raise --width)")


if __name__ == "__main__":
    main()
