"""gn.profiler over a few training steps of the benchmark models: per-kernel times and per-step
launches, syncs and transfers (the tables of docs/profiling.md).

    python benchmarks/profile_step.py                        # the active backend, both models
    python benchmarks/profile_step.py --backend cudasim --batch 4 --steps 2   # no GPU needed
    python benchmarks/profile_step.py --model autoencoder --steps 20          # the U-Net-like case
    python benchmarks/profile_step.py --model unet --steps 10                 # the U-Net case, batch 16
    python benchmarks/profile_step.py --backend cudasim --model unet --size 16 --batch 1 --steps 2

One warm-up epoch runs first (NVRTC compiles, cudasim builds, allocator growth), then
``--steps`` steps of ``model.fit(..., verbose=0)`` and one ``evaluate`` and ``predict`` are
profiled. The models and data are benchmarks/cases.py's (the small CNN with sparse
cross-entropy, the encoder-decoder with mse) and benchmarks/unet_case.py's U-Net (binary
cross-entropy on a sigmoid mask, 128x128x3 unless ``--size``; gpu_vs_torch.py's U-Net case).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cases as shared          # noqa: E402
import gpunet as gn             # noqa: E402
import unet_case                # noqa: E402

MODELS = {"cnn": ("small CNN 28x28x1", shared.gn_cnn, (28, 28, 1), 10, "sparse_categorical_crossentropy"),
          "autoencoder": ("encoder-decoder 32x32x1", shared.gn_autoencoder, (32, 32, 1), 0, "mse")}
BATCHES = {"cnn": 64, "autoencoder": 32, "unet": 16}


def _unet(size):
    """The U-Net case at ``size`` x ``size`` x 3 (a multiple of 8: three poolings)."""
    if size < 8 or size % 8:
        raise SystemExit(f"profile_step.py: --size must be a multiple of 8 (the U-Net pools three times); "
                         f"received {size}.")
    return (f"U-Net {size}x{size}x3", lambda: unet_case.gn_unet(size), (size, size, 3), 0, "binary_crossentropy")


def profile_model(kind, batch, steps, top=None, size=128):
    """``(title, profile)`` of ``steps`` fit steps (after a warm-up epoch) of one benchmark model."""
    title, build, shape, classes, loss = _unet(size) if kind == "unet" else MODELS[kind]
    rng = np.random.default_rng(0)
    gn.utils.set_random_seed(0)
    x, y = shared.make_data(rng, (batch * steps, *shape), classes)
    model = build()
    model.compile(optimizer=gn.optimizers.SGD(learning_rate=0.01), loss=loss)
    model.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0, shuffle=False)   # warm-up
    with gn.profiler.profile() as prof:
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        model.evaluate(x[:batch], y[:batch], batch_size=batch, verbose=0)
        model.predict(x[:batch], batch_size=batch, verbose=0)
    return f"{title}, batch {batch}, {steps} training steps on {gn.get_backend()}", prof


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="numpy, cuda or cudasim (default: gpunet's choice)")
    parser.add_argument("--model", choices=[*MODELS, "unet", "both"], default="both",
                        help="both: the CNN and the encoder-decoder")
    parser.add_argument("--batch", type=int, default=None,
                        help="default: 64 for the CNN, 32 for the encoder-decoder, 16 for the U-Net")
    parser.add_argument("--size", type=int, default=128, help="the U-Net's image side (default 128)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--top", type=int, default=None, help="show only the N slowest kernels")
    args = parser.parse_args(argv)
    if args.backend:
        gn.set_backend(args.backend)
    for kind in (MODELS if args.model == "both" else [args.model]):
        batch = args.batch or BATCHES[kind]
        title, prof = profile_model(kind, batch, args.steps, args.top, args.size)
        print(f"### {title}\n")
        print(prof.summary(top=args.top))
        print(f"\nlaunches per train step {prof.per_step('launches', 'train'):.1f}, "
              f"syncs per step {prof.syncs_per_step:.1f}\n", flush=True)


if __name__ == "__main__":
    main()
