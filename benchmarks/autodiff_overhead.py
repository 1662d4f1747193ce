"""What the tape costs, on the numpy backend (issue 15's targets).

1. Python per recorded op: chains of ``ops.add`` on 4-element tensors (``--ops`` per tape, 20
   tapes), recorded by a GradientTape versus not recorded (``gn.autodiff.paused``); the
   difference divided by the ops is the tape's cost per op (target <= 20 us). The backward
   walk's cost per node is printed too.
2. A Dice loss written with gn.ops (value and gradient through ``model.compile(loss=fn)``'s
   wrapper) versus the same loss built in (``gn.losses.Dice`` where this gpunet has it, else
   the same formula written as one fused NumPy forward and backward): time per
   ``compute(y_true, y_pred)`` on a (16, 128, 128, 1) batch (target: at most 1.5x).

    python benchmarks/autodiff_overhead.py [--ops 100] [--repeats 7]

Times are CPU seconds of this process (``time.process_time``), best of ``--repeats``, so that
other work on a shared machine does not count; on an idle machine wall time is the same.
"""
import argparse
import time

import numpy as np

import gpunet as gn
from gpunet import ops
from gpunet.autodiff import functions, paused

EPS = 1e-7


def best_of(fn, repeats, rounds=1):
    times = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(rounds):
            fn()
        times.append((time.process_time() - start) / rounds)
    return min(times)


def tape_cost(count, repeats):
    x = ops.convert_to_tensor(np.ones(4, np.float32))

    def chain():
        y = x
        for _ in range(count):
            y = ops.add(y, x)
        return y

    def unrecorded():
        with paused():
            chain()

    def recorded():
        with gn.GradientTape() as tape:
            tape.watch(x)
            chain()

    def recorded_and_walked():
        with gn.GradientTape() as tape:
            tape.watch(x)
            y = chain()
        tape.gradient(y, x)
    raw = np.ones(4, np.float32)

    def numpy_chain():
        y = raw
        for _ in range(count):
            y = np.add(y, raw)
    plain, taped, walked, numpy_only = (best_of(f, repeats, rounds=20) for f in
                                        (unrecorded, recorded, recorded_and_walked, numpy_chain))
    return {"numpy add": numpy_only / count, "gn.ops add, no tape": plain / count,
            "gn.ops add, recorded": taped / count, "tape cost per recorded op": (taped - plain) / count,
            "backward walk per node": (walked - taped) / count}


def gn_ops_dice(y_true, y_pred):
    inter = ops.sum(y_true * y_pred)
    return 1.0 - (2.0 * inter + EPS) / (ops.sum(y_true) + ops.sum(y_pred) + EPS)


class FusedDice(gn.losses.Loss):
    """The same Dice as one NumPy forward and one backward (what a built-in loss does)."""

    default_name = "fused_dice"

    def _value(self, y_true, y_pred):
        inter, total = np.sum(y_true * y_pred), np.sum(y_true) + np.sum(y_pred)
        return 1.0 - (2.0 * inter + EPS) / (total + EPS)

    def _gradient(self, y_true, y_pred):
        inter, total = np.sum(y_true * y_pred), np.sum(y_true) + np.sum(y_pred)
        numerator, denominator = 2.0 * inter + EPS, total + EPS
        return ((numerator - 2.0 * y_true * denominator) / denominator ** 2).astype(y_pred.dtype)


def dice_cost(repeats, shape=(16, 128, 128, 1)):
    rng = np.random.default_rng(0)
    y_true = (rng.random(shape) > 0.7).astype(np.float32)
    y_pred = rng.random(shape).astype(np.float32)
    built_in = gn.losses.Dice() if hasattr(gn.losses, "Dice") else FusedDice()
    custom = functions.LossFunctionWrapper(gn_ops_dice)
    (v1, g1), (v2, g2) = custom.compute(y_true, y_pred), built_in.compute(y_true, y_pred)
    assert abs(v1 - v2) < 1e-4 and np.allclose(g1, g2, rtol=1e-3, atol=1e-9), "the two Dice losses disagree"
    t_custom = best_of(lambda: custom.compute(y_true, y_pred), repeats, rounds=5)
    t_built_in = best_of(lambda: built_in.compute(y_true, y_pred), repeats, rounds=5)
    return type(built_in).__name__, t_custom, t_built_in


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    gn.set_backend("numpy")
    print(f"tape cost, numpy backend, chains of {args.ops} ops, CPU time per op, best of {args.repeats}:")
    for what, seconds in tape_cost(args.ops, args.repeats).items():
        print(f"  {what:28s} {seconds * 1e6:7.2f} us")
    name, t_custom, t_built_in = dice_cost(args.repeats)
    print(f"Dice loss on (16, 128, 128, 1), value and gradient, best of {args.repeats}:")
    print(f"  gn.ops function + tape       {t_custom * 1e3:7.2f} ms")
    print(f"  built in ({name:10s})        {t_built_in * 1e3:7.2f} ms")
    print(f"  ratio                        {t_custom / t_built_in:7.2f}x  (target <= 1.5x)")


if __name__ == "__main__":
    main()
